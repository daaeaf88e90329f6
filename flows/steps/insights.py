"""insights: the key-drivers and pockets engine as one keyed step, fed from the score step.

A survey answer's driver vector comes from the journey step
(:attr:`flows.records.Journeyed.drivers`, the customer as they were before
answering); the score step adds what only the shared models know, the churn
risk and the segment, in lane order. :func:`insight_items` takes the score
step's output, keeps the answers and puts ticks of each lane's watermark
between them (:mod:`flows.steps.ticks`), and the engine
(:mod:`flows.insights.engine`) runs under one key, as the NPS engine does.

Examples
--------
>>> from flows.records import Journeyed, Resolved, Scored
>>> from flows.insights.drivers import AnswerDrivers
>>> from schemas.envelope import InteractionEvent
>>> event = InteractionEvent.model_validate({"id": "s1", "source": "/doc",
...     "type": "cx.survey.nps", "time": "2026-03-02T10:00:00Z",
...     "data": {"channel": "survey", "touchpoint": "web.checkout", "nps": 3}})
>>> drivers = AnswerDrivers((0.0,) * 9, 3, "web.checkout", "web", "usage")
>>> journeyed = Journeyed(Resolved("c1", event, lane="l0", seq=0, wm_ms=event.epoch_ms),
...     "usage", None, drivers=drivers)
>>> (answer,) = insight_items([Scored(journeyed, 0.4, True, "seg-1")])
>>> answer.item.drivers[ALL_DRIVERS.index("churn_risk")], answer.item.segment, answer.stamp
(0.4, 'seg-1', 1772445600000)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.insights.engine import Answer, InsightsEngine
from flows.insights.settings import ALL_DRIVERS, InsightsSettings
from flows.records import Scored
from flows.steps.score import ScoreOut
from flows.steps.ticks import EngineLogic, LaneSet, Stamped, Tick, engine_builder
from flows.timing import timed_batch, timed_logic
from schemas.outputs import Alert, KeyDrivers

INSIGHTS_KEY = "insights"
_CHURN_AT = ALL_DRIVERS.index("churn_risk")


def insights_key(_item: object) -> str:
    """Every answer and tick goes to the one engine."""
    return INSIGHTS_KEY


def _answer(scored: Scored) -> Answer | None:
    drivers = scored.journeyed.drivers
    if drivers is None:
        return None
    event = scored.journeyed.resolved.event
    values = (*drivers.values[:_CHURN_AT], scored.churn, *drivers.values[_CHURN_AT:])
    return Answer(
        event.id,
        event.epoch_ms,
        values,
        drivers.nps,
        drivers.touchpoint,
        drivers.channel,
        drivers.stage,
        scored.segment,
    )


def insight_items(batch: Sequence[ScoreOut]) -> list[Stamped[Answer | Tick]]:
    """``flat_map_batch`` step: the batch's answers (with drivers) and their lanes' ticks.

    The ticks follow :func:`flows.steps.ticks.survey_items`: before each answer a tick
    of its lane's watermark (when it moved since the last stamp sent), one at the end
    of the batch. Written out here because it runs over every event: no call per item.
    """
    out: list[Stamped[Answer | Tick]] = []
    sent: dict[str, int] = {}  # the latest stamp sent per lane
    before: dict[str, int] = {}  # the lane's watermark before the current item
    for item in batch:
        if type(item) is not Scored:
            continue  # a Forget, an Alert or a response: not a survey answer
        resolved = item.journeyed.resolved
        lane, stamp = resolved.lane, resolved.wm_ms
        at = resolved.event.epoch_ms
        stamp = max(stamp, at, before.get(lane, at))
        if item.journeyed.drivers is not None:
            mark = before.get(lane)
            if mark is not None and mark > sent.get(lane, mark - 1):
                out.append(Stamped(lane, mark, Tick(mark)))
            answer = _answer(item)
            assert answer is not None  # noqa: S101 (for mypy: it has drivers)
            out.append(Stamped(lane, stamp, answer))
            sent[lane] = stamp
        before[lane] = stamp
    for lane, mark in before.items():
        if mark > sent.get(lane, mark - 1):
            out.append(Stamped(lane, mark, Tick(mark)))
    return out


def insights_stream(
    scored: Stream[ScoreOut], settings: InsightsSettings, lanes: LaneSet | None
) -> Stream[KeyDrivers | Alert]:
    """Wire the step: the score step's output in, ``KeyDrivers | Alert`` (nps_pocket) out."""
    answers = op.flat_map_batch("answers", scored, timed_batch("answers", insight_items))
    logic = timed_logic("insights", insights_builder(settings, lanes))
    keyed = op.key_on("insights_key", answers, insights_key)
    return op.key_rm("insights_out", op.stateful_batch("insights", keyed, logic))


def insights_builder(
    settings: InsightsSettings, lanes: LaneSet | None = None
) -> Callable[[bytes | None], EngineLogic[Answer | Tick, KeyDrivers | Alert]]:
    """Return the ``op.stateful_batch`` builder of the insights step."""
    return engine_builder(lambda snap: InsightsEngine.restore(settings, snap), lanes)
