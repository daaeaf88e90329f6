"""score: the shared online models, fed each lane's events in lane order.

The models (churn, segments, category propensity: :mod:`online_models`) learn
from every customer, so what they say of one event depends on every event
before it. Bytewax hands a keyed step its keys in sorted order within a batch,
so a per-customer step would feed them in an order that changes with the
batching. This step is keyed by lane (:mod:`flows.lanes`) instead: it holds
one set of models per input partition, puts the lane's events back in input
order by their ``seq`` (the per-customer journey step before it emits exactly
one item per sequenced event; anonymous events and erase requests come
straight from resolve), and scores them in that order. The models, the
re-ordering buffer and which customers have a churn-risk alert out are this
step's Bytewax state, so a restored run scores a re-processed event exactly as
the first run did.

Per lane, not per worker: with two input partitions there are two sets of
models whatever the process count, so one and two processes give the same
scores.

The adaptive acceptance model of NBAs (:mod:`online_models.acceptance`) is lane
state too: responses (:mod:`flows.steps.respond`) reach this step in lane order,
teach it (per action and the customer's segment as last scored on the lane) and go on
to the decide step as :class:`~flows.steps.respond.Responded`; every item moves the
model to its lane watermark, so unanswered impressions time out in event time. Each
scored event carries the model's lifts for its segment to arbitration.

Examples
--------
>>> from schemas.envelope import InteractionEvent
>>> from flows.records import Resolved
>>> def item(seq, minute):
...     event = InteractionEvent.model_validate({"id": f"e{seq}", "source": "/doc",
...         "type": "cx.web.page.viewed", "time": f"2026-03-02T10:{minute:02d}:00Z",
...         "data": {"channel": "web", "touchpoint": "web.home"}})
...     resolved = Resolved("cust-1", event, lane="cx.events:0", seq=seq)
...     return Journeyed(resolved, None, None, {}, ScoreInput({"events": 1.0}))
>>> from online_models.bundle import Models
>>> from online_models.settings import ModelSettings
>>> logic = ScoreLogic(LaneModels(Models.build(ModelSettings(), ModelGauges)))
>>> logic.on_batch([item(1, 2)])[0]  # held: seq 0 has not come yet
[]
>>> [s.journeyed.resolved.seq for s in logic.on_batch([item(0, 1)])[0]]
[0, 1]
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.records import Forget, Journeyed, Resolved, Scored, ScoreInput
from flows.steps.respond import Responded, is_response, parse_response
from online_models.acceptance import AcceptanceModel, Health, Label
from online_models.bundle import Models
from online_models.churn import ChurnEngine
from schemas.outputs import Alert, IdentityErasure

log = logging.getLogger(__name__)
HEALTH_DUE_HOURS = 72  # an adaptive_model_health alert's due_at

ScoreIn = Journeyed | Resolved
ScoreOut = Scored | Forget | Alert | Responded


class ModelGauges:
    """Publish the churn model's prequential AUC and log loss as Prometheus gauges.

    Called with every label the engine learns; the figures are read every
    ``every`` labels (River's ROC AUC is not free), labelled by model name only.
    """

    def __init__(self, churn: ChurnEngine, every: int = 256) -> None:
        self.churn = churn
        self.every = every
        self.seen = 0

    def __call__(self, _item: object) -> None:
        self.seen += 1
        if self.seen % self.every:
            return
        report = self.churn.evaluation.report()
        name = self.churn.settings.churn.model
        if report["auc"] is not None:
            metrics.MODEL_AUC.labels(name).set(report["auc"])
        if report["log_loss"] is not None:
            metrics.MODEL_LOG_LOSS.labels(name).set(report["log_loss"])


@dataclass
class LaneModels:
    """A lane's models and its scoring order.

    The next ``seq`` to score, the items held until it comes, and the customers
    whose churn-risk alert is out (re-armed below the threshold).
    """

    models: Models
    next_seq: int = 0
    held: dict[int, ScoreIn] = field(default_factory=dict)
    at_risk: set[str] = field(default_factory=set)
    acceptance: AcceptanceModel | None = None
    # each customer's segment as last scored here (insertion-ordered, bounded)
    segment_of: dict[str, str] = field(default_factory=dict)
    # the lifts of each segment as of acceptance.version (not pickled)
    lift_cache: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, object]:
        """Return the attributes, without the lift cache (rebuilt from the model)."""
        return {**self.__dict__, "lift_cache": {}}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore the attributes and re-attach the churn model's gauges listener."""
        self.__dict__.update({"acceptance": None, "segment_of": {}, **state, "lift_cache": {}})
        self.models.listen(ModelGauges)  # a listener is not pickled


def _resolved(item: ScoreIn) -> Resolved:
    return item.resolved if isinstance(item, Journeyed) else item


class ScoreLogic(StatefulBatchLogic[ScoreIn, ScoreOut, bytes]):
    """The per-lane Bytewax step: re-order by ``seq``, then score each event in turn."""

    def __init__(
        self,
        lane: LaneModels,
        on_snapshot: Callable[[Models], object] | None = None,
        on_end: Callable[[Models], object] | None = None,
    ) -> None:
        self.lane = lane
        self.on_snapshot = on_snapshot
        self.on_end = on_end

    def on_batch(self, values: list[ScoreIn]) -> tuple[Iterable[ScoreOut], bool]:
        lane = self.lane
        for item in values:
            lane.held[_resolved(item).seq] = item
        out: list[ScoreOut] = []
        while lane.next_seq in lane.held:
            out += self._score(lane.held.pop(lane.next_seq))
            lane.next_seq += 1
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ScoreOut], bool]:
        # Every sequenced event reaches this step once, so nothing should be held here;
        # if something is, score it rather than lose it.
        lane, out = self.lane, []
        if lane.held:
            log.error("score: %d events held at end of input (seq gap)", len(lane.held))
        for seq in sorted(lane.held):
            out += self._score(lane.held.pop(seq))
            lane.next_seq = seq + 1
        if self.on_end is not None:
            self.on_end(lane.models)
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        if self.on_snapshot is not None:  # model export, now and then (online_models.bundle)
            self.on_snapshot(self.lane.models)
        return pickle.dumps(self.lane, protocol=pickle.HIGHEST_PROTOCOL)

    def _score(self, item: ScoreIn) -> list[ScoreOut]:
        out: list[ScoreOut] = []
        acceptance = self.lane.acceptance
        if acceptance is not None:
            resolved = _resolved(item)
            out += self._learnt(acceptance, acceptance.advance(resolved.wm_ms))
            if isinstance(item, Resolved) and is_response(resolved):
                return out + self._respond(acceptance, item)
        if isinstance(item, Resolved):  # anonymous, or an erase request
            return out + self._forget(item)
        return out + self._model(item)

    def _respond(self, acceptance: AcceptanceModel, item: Resolved) -> list[ScoreOut]:
        """Learn from a response routed to its customer (none: dead-lettered by respond)."""
        if item.customer_id is None:
            return []
        response = parse_response(item.event)  # valid: checked by the respond step
        segment = self.lane.segment_of.get(item.customer_id, "")
        action = response.action
        out: list[ScoreOut] = []
        if action in acceptance.priors:  # an action of the catalogue: learnt
            t_ms = item.event.epoch_ms
            labels = acceptance.observe(response.nba_id, action, segment, response.outcome, t_ms)
            metrics.NBA_RESPONSES.labels(action, response.outcome).inc()
            out += self._learnt(acceptance, labels)
        out.append(Responded(item, response, segment))
        return out

    def _learnt(self, acceptance: AcceptanceModel, labels: list[Label]) -> list[ScoreOut]:
        """Publish the figures of what the model just learnt; its health alerts."""
        for label in labels:
            if label.outcome == "no_response":
                metrics.NBA_RESPONSES.labels(label.action, label.outcome).inc()
            n, rate, auc = acceptance.figures(label.action)
            metrics.NBA_MODEL_ANSWERS.labels(label.action).set(n)
            if rate is not None:
                metrics.NBA_ACCEPTANCE.labels(label.action).set(rate)
            if auc is not None:
                metrics.NBA_MODEL_AUC.labels(label.action).set(auc)
        if not acceptance.health:
            return []
        return [health_alert(h) for h in acceptance.collect_health()]

    def _lifts(self, customer_id: str, segment: str) -> dict[str, float] | None:
        lane = self.lane
        acceptance = lane.acceptance
        if acceptance is None:
            return None
        segment_of = lane.segment_of
        if segment_of.get(customer_id) != segment:
            segment_of.pop(customer_id, None)
            segment_of[customer_id] = segment
            if len(segment_of) > acceptance.settings.max_customers:
                del segment_of[next(iter(segment_of))]
        if not acceptance.actions:
            return None
        cached = lane.lift_cache.get(segment)
        if cached is None or cached[0] != acceptance.version:
            cached = lane.lift_cache[segment] = (acceptance.version, acceptance.lifts(segment))
        return cached[1]

    def _model(self, item: Journeyed) -> list[ScoreOut]:
        models, lane = self.lane.models, self.lane
        resolved, scoring = item.resolved, item.scoring
        assert resolved.customer_id is not None and scoring is not None  # noqa: S101 (for mypy: a Journeyed is known and scored)
        customer_id, event = resolved.customer_id, resolved.event
        churn = models.churn
        out: list[ScoreOut] = list(churn.observe(customer_id, event))
        score = churn.score(customer_id, event, scoring.x)
        at_risk, alert = churn.risk_check(
            customer_id, event, customer_id in lane.at_risk, score, scoring.x
        )
        if at_risk:
            lane.at_risk.add(customer_id)
        else:
            lane.at_risk.discard(customer_id)
        if alert is not None:
            out.append(alert)
        segment = models.segments.assign_vector(scoring.x, scoring.segment_due)
        if scoring.bought is not None:
            models.propensity.learn_purchase(*scoring.bought)
        top = None
        if scoring.interest:
            best = models.propensity.top_k_vector(scoring.interest, k=1)
            top = best[0] if best else None
        lifts = self._lifts(customer_id, segment)
        out.append(Scored(item, score, models.churn_ready, segment, top, lifts))
        return out

    def _forget(self, item: Resolved) -> list[ScoreOut]:
        out: list[ScoreOut] = []
        for erasure in item.outputs:
            if isinstance(erasure, IdentityErasure):
                self.lane.models.churn.forget(erasure.customer_id)
                self.lane.at_risk.discard(erasure.customer_id)
                self.lane.segment_of.pop(erasure.customer_id, None)
                out.append(Forget(erasure.customer_id))
        return out


def health_alert(health: Health) -> Alert:
    """Return the ``adaptive_model_health`` alert of a finding of the acceptance model."""
    time = datetime.fromtimestamp(health.t_ms / 1000, UTC)
    if health.check == "auc_stuck":
        message = (
            f"acceptance model of {health.action}: AUC {health.figures['auc']:.3f} after "
            f"{health.figures['responses']} responses (no better than chance)"
        )
    else:
        message = (
            f"responses to {health.action} down week on week: "
            f"{health.figures['responses_last_week']} after "
            f"{health.figures['responses_week_before']}"
        )
    return Alert(
        id=health.id,
        kind="adaptive_model_health",
        severity="medium",
        time=time,
        due_at=time + timedelta(hours=HEALTH_DUE_HOURS),
        message=message,
        evidence={"check": health.check, "action": health.action, **health.figures},
    )


def score_lane(item: ScoreIn) -> str:
    """Key function: the item's lane."""
    return _resolved(item).lane


def score_builder(
    new_models: Callable[[], Models],
    on_snapshot: Callable[[Models], object] | None = None,
    on_end: Callable[[Models], object] | None = None,
    new_acceptance: Callable[[], AcceptanceModel] | None = None,
) -> Callable[[bytes | None], ScoreLogic]:
    """Builder for ``op.stateful_batch`` keyed by lane; ``new_models`` starts a new lane.

    ``new_acceptance`` starts a new lane's acceptance model (None: no adaptive model).
    """

    def build(resume: bytes | None) -> ScoreLogic:
        # Bytewax's own recovery store is the only source of these bytes.
        if resume is not None:
            lane = pickle.loads(resume)  # noqa: S301 (our own recovery snapshot)
        else:
            lane = LaneModels(new_models())
            lane.acceptance = new_acceptance() if new_acceptance is not None else None
        return ScoreLogic(lane, on_snapshot, on_end)

    return build


__all__ = ["LaneModels", "ModelGauges", "ScoreInput", "ScoreLogic", "score_builder"]
