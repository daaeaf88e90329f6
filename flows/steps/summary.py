"""summary: the decide step's decisions and joined responses, per window (``cx.decisions``).

The decide step is keyed by customer, so what it emits comes out in no order that the
input alone decides. This step puts it back into lane order before the single-key
:class:`~flows.insights.decisions.DecisionEngine` counts it:

* the score step's output for decide (lane order) says, per lane, which items decide
  answers for and in what order (every :class:`~flows.records.Scored` and routed
  :class:`~flows.steps.respond.Responded`);
* decide hands over, per trigger, a :class:`Decided` (the NBAs sent, the actions held
  back and why) before the trigger's :class:`~flows.records.Journeyed`, which says
  "this trigger is done"; per response, a
  :class:`~flows.steps.respond.ResponseOutcome` (joined to its NBA or not);
* :class:`Resequencer`, keyed by lane, releases each lane's items in that order once
  decide is done with them, with ticks of the lane's watermark before them
  (:mod:`flows.steps.ticks`), and the engine merges the lanes as the NPS engine does.

So the summaries are byte-identical whatever the batching, the worker count, or a
restore (the state of both sides is in the same Bytewax snapshot).

>>> from flows.records import Resolved
>>> from schemas.envelope import InteractionEvent
>>> event = InteractionEvent.model_validate({"id": "e1", "source": "/doc",
...     "type": "cx.web.page.viewed", "time": "2026-03-02T10:00:00Z",
...     "data": {"channel": "web", "touchpoint": "web.home"}})
>>> resolved = Resolved("c1", event, lane="l0", seq=4, wm_ms=event.epoch_ms)
>>> Decided.of(resolved, [], [("cooldown", "offer")]).tally.held
(('cooldown', 'offer'),)
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import KeyedStream, StatefulBatchLogic

from flows.insights.decisions import Answered, DecisionEngine, DecisionItem, Tally
from flows.records import Journeyed, Resolved, Scored
from flows.steps.respond import Responded, ResponseOutcome
from flows.steps.ticks import EngineLogic, LaneSet, Stamped, Tick, engine_builder
from flows.steps.windowed import Windowing
from flows.timing import timed_logic
from schemas.outputs import DecisionSummary, NextBestAction

SUMMARY_KEY = "decisions"


@dataclass(frozen=True, slots=True)
class Decided:
    """What decide made of one trigger, for the summaries: its lane and seq, and the tally."""

    lane: str
    seq: int
    tally: Tally

    @classmethod
    def of(
        cls, resolved: Resolved, sent: Sequence[object], held: Sequence[tuple[str, str]]
    ) -> Decided:
        """Return the tally of a trigger: the NBAs among ``sent``, the ``(reason, action)``."""
        nbas = tuple((n.action, n.channel) for n in sent if isinstance(n, NextBestAction))
        tally = Tally(resolved.event.epoch_ms, nbas, tuple(held))
        return cls(resolved.lane, resolved.seq, tally)


@dataclass(frozen=True, slots=True)
class Expect:
    """Items of one lane that decide answers for, in lane order: ``(seq, stamp)`` each."""

    lane: str
    entries: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Done:
    """Triggers of one lane decide is done with (their Journeyed went out): their seqs."""

    lane: str
    seqs: tuple[int, ...]


SummaryIn = Expect | Done | Decided | ResponseOutcome


def expected(batch: Sequence[object]) -> list[SummaryIn]:
    """``flat_map_batch`` over the score step's output: what decide answers for, per lane.

    Every :class:`~flows.records.Scored` and routed
    :class:`~flows.steps.respond.Responded`, one :class:`Expect` per lane and batch
    (an item per event would cost more than the counting).
    """
    lanes: dict[str, list[tuple[int, int]]] = {}
    for item in batch:
        if isinstance(item, Scored):
            resolved = item.journeyed.resolved
        elif isinstance(item, Responded):
            resolved = item.resolved
        else:
            continue
        stamp = max(resolved.wm_ms, resolved.event.epoch_ms)
        lanes.setdefault(resolved.lane, []).append((resolved.seq, stamp))
    return [Expect(lane, tuple(entries)) for lane, entries in lanes.items()]


def handed(batch: Sequence[object]) -> list[SummaryIn]:
    """``flat_map_batch`` over decide's output: its tallies and outcomes, then what is done.

    A customer's :class:`Decided` comes before its Journeyed, so the batch's tallies go
    first and the Journeyeds, one :class:`Done` per lane, after them.
    """
    out: list[SummaryIn] = []
    done: dict[str, list[int]] = {}
    for item in batch:
        if isinstance(item, Journeyed):
            done.setdefault(item.resolved.lane, []).append(item.resolved.seq)
        elif isinstance(item, Decided | ResponseOutcome):
            out.append(item)
    return out + [Done(lane, tuple(seqs)) for lane, seqs in done.items()]


def lane_key(item: SummaryIn) -> str:
    """Key function: the item's input lane."""
    return item.resolved.lane if isinstance(item, ResponseOutcome) else item.lane


@dataclass(slots=True)
class _Lane:
    expected: deque[tuple[int, int]] = field(default_factory=deque)  # (seq, stamp)
    items: dict[int, list[DecisionItem]] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    before: int | None = None  # the lane's watermark after the last item released
    sent: int | None = None  # the latest stamp sent on


class Resequencer(StatefulBatchLogic[SummaryIn, Stamped[DecisionItem], bytes]):
    """One lane: decide's tallies in lane order, with ticks, as the engine reads them."""

    def __init__(self, lane: _Lane | None = None) -> None:
        self.lane = lane if lane is not None else _Lane()

    def on_batch(self, values: list[SummaryIn]) -> tuple[Iterable[Stamped[DecisionItem]], bool]:
        lane = self.lane
        name = ""
        for item in values:
            name = lane_key(item)
            if isinstance(item, Expect):
                lane.expected.extend(item.entries)
            elif isinstance(item, Done):
                lane.done.update(item.seqs)
            elif isinstance(item, Decided):
                lane.items.setdefault(item.seq, []).append(item.tally)
            else:  # a ResponseOutcome: a contribution when joined, and done
                resolved = item.resolved
                if item.joined:
                    r = item.response
                    answered = Answered(resolved.event.epoch_ms, r.nba_id, r.action, r.outcome)
                    lane.items.setdefault(resolved.seq, []).append(answered)
                lane.done.add(resolved.seq)
        return self._release(name), StatefulBatchLogic.RETAIN

    def _release(self, name: str) -> list[Stamped[DecisionItem]]:
        lane = self.lane
        out: list[Stamped[DecisionItem]] = []
        while lane.expected and lane.expected[0][0] in lane.done:
            seq, stamp = lane.expected.popleft()
            lane.done.discard(seq)
            items = lane.items.pop(seq, ())
            if lane.before is not None:
                stamp = max(stamp, lane.before)
            if items:
                mark = lane.before
                if mark is not None and (lane.sent is None or mark > lane.sent):
                    out.append(Stamped(name, mark, Tick(mark)))
                out += [Stamped(name, stamp, item) for item in items]
                lane.sent = stamp
            lane.before = stamp
        mark = lane.before
        if mark is not None and (lane.sent is None or mark > lane.sent):
            out.append(Stamped(name, mark, Tick(mark)))
            lane.sent = mark
        return out

    def snapshot(self) -> bytes:
        return pickle.dumps(self.lane, protocol=pickle.HIGHEST_PROTOCOL)


def resequencer(resume: bytes | None) -> Resequencer:
    """Builder of the lane-keyed step (``op.stateful_batch``)."""
    return Resequencer(pickle.loads(resume) if resume is not None else None)  # noqa: S301 (our own recovery snapshot)


def summary_builder(
    windowing: Windowing, timeouts: Mapping[str, int], lanes: LaneSet | None = None
) -> Callable[[bytes | None], EngineLogic[DecisionItem, DecisionSummary]]:
    """Return the ``op.stateful_batch`` builder of the decision summaries' engine."""
    return engine_builder(lambda snap: DecisionEngine.resume(windowing, timeouts, snap), lanes)


def summary_key(_item: object) -> str:
    """Every tally and tick goes to the one engine."""
    return SUMMARY_KEY


def summary_stream(
    for_decide: Stream[Any],
    decisions: Stream[Any],
    windowing: Windowing,
    timeouts: Mapping[str, int],
    lanes: LaneSet | None,
) -> Stream[DecisionSummary]:
    """Wire the step: decide's input and output in, ``DecisionSummary`` per window out."""
    merged: Stream[SummaryIn] = op.merge(
        "summary_in",
        op.flat_map_batch("summary_expected", for_decide, expected),
        op.flat_map_batch("summary_handed", decisions, handed),
    )
    laned: KeyedStream[SummaryIn] = op.key_on("summary_lane", merged, lane_key)
    ordered = op.stateful_batch("summary_order", laned, timed_logic("summary", resequencer))
    keyed = op.key_on("summary_key", op.key_rm("summary_unlane", ordered), summary_key)
    logic = timed_logic("summary", summary_builder(windowing, timeouts, lanes))
    return op.key_rm("summary_out", op.stateful_batch("summary", keyed, logic))
