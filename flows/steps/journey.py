"""journey: per customer, the journey stage, sentiment windows and sentiment alerts.

Keyed by customer_id. For each event the step works out

* the **stage** (awareness, consideration, purchase, onboarding, usage, service,
  loyalty, churned) from the event's ``journey_stage`` hint or the configurable
  mapping of event actions, through a small machine: progress never moves a
  customer backwards (a buyer who views pages stays a buyer); ``service`` is
  entered on a case or complaint and left, back to where the customer was, when
  the case is resolved; ``churned`` is left only by a purchase or a new account;
* the event's **sentiment**: ``data.sentiment`` if given, else the scorer on
  ``data.text``;
* rolling **sentiment windows** over event time (24 h and 7 d by default), an
  exponentially weighted trend, and the mean sentiment per stage;
* a ``sentiment_drop`` alert when the shortest window's mean falls below a
  threshold or more than a delta under the longest window's mean (once per
  drop; it re-arms when sentiment recovers), and the close-the-loop
  ``detractor`` alert for NPS 0-6;
* what the shared models need of the customer (:class:`~flows.records.ScoreInput`):
  the churn features, the category interest that next-category propensity
  reads, and the decision context. The models themselves run in the score
  step, in lane order (:mod:`flows.steps.score`); the decision in the decide step
  (:mod:`flows.steps.decide`).

Every event it is given yields exactly one :class:`~flows.records.Journeyed`
(the score step waits for each event's turn). A merged-away customer's journey
is forgotten (the survivor's journey continues from its own), as an erased
customer's is. With ``park_idle_seconds`` set, a customer idle that long (wall
time) is parked in the store and read back on their next event
(:mod:`flows.steps.parking`): Bytewax holds only the active customers.
"""

from __future__ import annotations

import bisect
import copy
import pickle
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic

from flows.insights.drivers import DriverMemory, observe
from flows.insights.settings import InsightsSettings
from flows.nba.context import JourneyFigures, Trigger, build_context
from flows.records import Journeyed, Resolved, ScoreInput
from flows.settings import JourneySettings
from flows.steps.detractor import detractor_alert
from flows.steps.parking import Parking, Pos, is_forget
from flows.steps.resolve import ERASE_TYPE
from flows.steps.sentiment import SentimentScorer
from flows.steps.stages import mapped_stage, next_stage
from online_models.features import CustomerFeatures
from online_models.propensity import CategoryInterest, fold_interest
from online_models.segmentation import learn_due
from online_models.settings import ModelSettings
from schemas.ids import output_id
from schemas.outputs import Alert
from schemas.vocabulary import NPS_PROMOTER_MIN
from state.profile_hash import Figure

# A sentiment drop whose short-window mean falls below this is high severity (else medium).
SENTIMENT_DROP_HIGH = -0.6
# How often a forgotten customer looks whether its tombstone is committed (flows.steps.parking).
FORGET_RECHECK_SECONDS = 5.0

JourneyOut = Journeyed | Alert


@dataclass(frozen=True)
class JourneyOptions:
    """What the journey step prepares for the steps after it."""

    models: ModelSettings = field(default_factory=ModelSettings)
    decides: bool = False  # build the decision context (the NBA catalogue is on)
    needs_propensity: bool = False  # some action reads the category propensity
    insights: InsightsSettings | None = None  # emit survey answers' driver vectors


@dataclass
class JourneyState:
    """One customer's journey."""

    stage: str | None = None
    before_service: str | None = None
    samples: list[tuple[int, float]] = field(default_factory=list)  # (ms, score), sorted
    trend: float | None = None
    by_stage: dict[str, tuple[float, int]] = field(default_factory=dict)
    in_drop: bool = False
    # mean sentiment over the shortest and longest window, as of the latest sample
    windows: tuple[float | None, float | None] = (None, None)
    features: CustomerFeatures = field(default_factory=CustomerFeatures)
    interest: CategoryInterest = field(default_factory=CategoryInterest)
    # per lane, the last input seq folded in (kept when parking is on: flows.steps.parking)
    pos: dict[str, int] = field(default_factory=dict)
    drivers: DriverMemory = field(default_factory=DriverMemory)  # flows.insights.drivers

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, giving a snapshot of an earlier version (no ``pos``) empty positions."""
        self.__dict__.update({"pos": {}, "drivers": DriverMemory(), **state})


def dump_state(state: JourneyState) -> bytes:
    """Return the journey as bytes (a snapshot, or a parked version: zlib over pickle)."""
    return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)


def load_state(data: bytes) -> JourneyState:
    """Return the journey of :func:`dump_state` (b"": a new one)."""
    if not data:
        return JourneyState()
    loaded: JourneyState = pickle.loads(zlib.decompress(data))  # noqa: S301 (our own state)
    return loaded


FORGETTING = b"forgetting:"
"""Snapshot prefix of a forgotten customer whose tombstone is not committed yet."""


class JourneyLogic(StatefulBatchLogic[Resolved, JourneyOut, bytes]):
    """The journey step's per-customer logic (see the module docstring)."""

    def __init__(  # noqa: PLR0913 (the step's parts, and the parking of this key)
        self,
        settings: JourneySettings,
        scorer: SentimentScorer,
        state: JourneyState | None,
        options: JourneyOptions | None = None,
        *,
        parking: Parking | None = None,
        forgetting: Pos | None = None,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.state = state or JourneyState()
        # with parking, a new key's journey is read back (or begun) at its first event
        self.loaded = state is not None or parking is None
        self.options = options or JourneyOptions()
        self.parking = parking
        self.customer_id = ""
        # the versions parked in the store as this journey knows them; restored from a
        # Bytewax snapshot: its positions then (flows.steps.parking.Parking.park)
        self.stored: list[Pos] | Pos | None = dict(state.pos) if state is not None else []
        self.forgetting = forgetting  # a tombstone to delete once it is committed
        self.active_at = parking.clock() if parking is not None else 0.0

    def on_batch(self, values: list[Resolved]) -> tuple[Iterable[JourneyOut], bool]:
        out: list[JourneyOut] = []
        forgot = False
        for resolved in values:
            assert resolved.customer_id is not None  # noqa: S101 (for mypy: keyed by customer)
            self.customer_id = resolved.customer_id
            forgot = resolved.event.type == ERASE_TYPE or is_forget(resolved)
            if forgot:  # erased or merged away: drop the journey, features and interest
                self._forget(resolved)
                continue
            if not self.loaded and resolved.created:
                # A customer this event created has no journey before it. Whatever a
                # crashed run parked for it holds only events after it (replayed now):
                # the first park overwrites that (stored None), so nothing is read.
                self.state, self.loaded, self.stored = JourneyState(), True, None
            elif not self.loaded:
                self._rehydrate(resolved)
            self.forgetting = None
            out += self._fold(resolved)
        if self.parking is None:
            return out, StatefulBatchLogic.DISCARD if forgot else StatefulBatchLogic.RETAIN
        self.active_at = self.parking.clock()
        done = forgot and self.forgetting is None
        return out, StatefulBatchLogic.DISCARD if done else StatefulBatchLogic.RETAIN

    def _rehydrate(self, resolved: Resolved) -> None:
        assert self.parking is not None  # noqa: S101 (not loaded only with parking)
        blob, self.stored = self.parking.rehydrate(self.customer_id, resolved.lane, resolved.seq)
        self.state, self.loaded = load_state(blob), True

    def _fold(self, resolved: Resolved) -> list[JourneyOut]:
        state = self.state
        lane, seq = resolved.lane, resolved.seq
        if self.parking is None or seq < 0:
            return self._step(resolved)
        if seq <= state.pos.get(lane, -1):
            # folded already: a replay after a crash, over several lanes (flows.steps.parking)
            self.state = copy.deepcopy(state)
            out = self._step(resolved)
            self.state = state
            return out
        state.pos[sys.intern(lane)] = seq
        return self._step(resolved)

    def _forget(self, resolved: Resolved) -> None:
        parking = self.parking
        if parking is None:
            self.state = JourneyState()
            return
        if not self.loaded:  # parked: the versions (and positions) are in the store
            self._rehydrate(resolved)
        pos = dict(self.state.pos)
        if resolved.seq >= 0:
            pos[sys.intern(resolved.lane)] = resolved.seq
        self.state = JourneyState(pos=pos)  # positions stay: they order the versions
        if parking.floor() is None:  # nothing is ever replayed: delete now
            parking.delete(self.customer_id)
            self.stored, self.forgetting = [], None
            return
        self.stored = parking.park(self.customer_id, pos, b"", self.stored)
        self.forgetting = pos

    def notify_at(self) -> datetime | None:
        parking = self.parking
        if parking is None:
            return None
        wait = parking.idle_seconds
        if self.forgetting is not None:
            wait = min(wait, FORGET_RECHECK_SECONDS)
        return datetime.fromtimestamp(self.active_at + wait, UTC)

    def on_notify(self) -> tuple[Iterable[JourneyOut], bool]:
        parking = self.parking
        assert parking is not None  # noqa: S101 (notify_at is None without parking)
        if self.forgetting is not None:
            if not parking.settled(self.forgetting):
                self.active_at = parking.clock()
                return [], StatefulBatchLogic.RETAIN
            parking.delete(self.customer_id)
            return [], StatefulBatchLogic.DISCARD
        if not self.customer_id:  # restored from an earlier version's snapshot: whose?
            self.active_at = parking.clock()
            return [], StatefulBatchLogic.RETAIN  # parked after its next event, then known
        if self.loaded:
            self.stored = parking.park(
                self.customer_id, dict(self.state.pos), dump_state(self.state), self.stored
            )
        return [], StatefulBatchLogic.DISCARD

    def _step(self, resolved: Resolved) -> list[JourneyOut]:
        event, state, conf = resolved.event, self.state, self.settings
        data = event.data
        drivers = observe(state.drivers, event, state.stage, state.features, self.options.insights)
        target = mapped_stage(event.type, data.journey_stage, conf.stage_map)
        if target == "loyalty" and data.nps is not None and data.nps < NPS_PROMOTER_MIN:
            target = None  # only promoters advance to loyalty through a survey
        stage = next_stage(state.stage, state.before_service, target)
        if stage == "service" and state.stage != "service":
            state.before_service = state.stage
        state.stage = stage

        sentiment = data.sentiment
        if sentiment is None and data.text:
            sentiment = self.scorer.score(data.text)
        out: list[JourneyOut] = []
        figures: dict[str, Figure] = {}
        if sentiment is not None:
            figures, short_n = self._fold_sentiment(event.epoch_ms, float(sentiment), stage)
            alert = self._drop_alert(resolved, short_n)
            if alert is not None:
                out.append(alert)
        detractor = detractor_alert(event, resolved.customer_id, conf.detractor_sla_hours)
        if detractor is not None:
            out.append(detractor)
        scoring = self._scoring(resolved, sentiment, stage)
        out.insert(0, Journeyed(resolved, stage, sentiment, figures, scoring, drivers))
        return out

    def _scoring(
        self, resolved: Resolved, sentiment: float | None, stage: str | None
    ) -> ScoreInput:
        """Fold the event into the customer's features and interest; what the models need."""
        state, options, event = self.state, self.options, resolved.event
        models = options.models
        now = event.epoch_ms
        features = state.features
        features.update(event, sentiment, stage, models.features)
        x = features.vector(now, models.features)
        # the segmenter learns from a customer once per interval (online_models.segmentation)
        segment_due = learn_due(features.segment_ms, now, models.segmentation)
        if segment_due:
            features.segment_ms = now
        bought = fold_interest(state.interest, event, models.propensity)
        if not options.decides:
            return ScoreInput(x, segment_due, bought)
        interest = None
        if options.needs_propensity and state.interest.weights:
            # only customers who showed an interest: popularity alone is no signal
            interest = state.interest.vector(now, models.propensity.half_life_days)
        assert resolved.customer_id is not None  # noqa: S101 (for mypy: keyed by customer)
        data = event.data
        trigger = Trigger(
            resolved.customer_id,
            event.type,
            data.channel,
            data.touchpoint,
            nps=data.nps,
            csat=data.csat,
            sentiment=sentiment,
            amount=data.amount,
        )
        short, long_ = state.windows
        journey = JourneyFigures(stage, state.trend, short, long_)
        context = build_context(trigger, journey, features, now)
        return ScoreInput(x, segment_due, bought, interest, context)

    def _fold_sentiment(
        self, ms: int, score: float, stage: str | None
    ) -> tuple[dict[str, Figure], int]:
        """Fold one score in; the profile's sentiment figures and the shortest window's count."""
        state, conf = self.state, self.settings
        bisect.insort(state.samples, (ms, score))
        horizon = state.samples[-1][0] - round(max(conf.window_hours) * 3_600_000)
        while state.samples and (
            state.samples[0][0] < horizon or len(state.samples) > conf.max_samples
        ):
            state.samples.pop(0)
        alpha = conf.ewma_alpha
        state.trend = score if state.trend is None else alpha * score + (1 - alpha) * state.trend
        if stage is not None:
            total, count = state.by_stage.get(stage, (0.0, 0))
            state.by_stage[stage] = (total + score, count + 1)
        now = state.samples[-1][0]
        figures: dict[str, Figure] = {"sent_trend": state.trend}
        means: dict[float, tuple[float, int]] = {}
        for hours in conf.window_hours:
            recent = [s for t, s in state.samples if t > now - hours * 3_600_000]
            means[hours] = (sum(recent) / len(recent), len(recent))
            figures[f"sent_{hours:g}h"], figures[f"sent_{hours:g}h_n"] = means[hours]
        for name, (total, count) in state.by_stage.items():
            figures[f"sent_stage:{name}"] = total / count
        short, long_ = min(conf.window_hours), max(conf.window_hours)
        state.windows = (means[short][0], means[long_][0])
        return figures, means[short][1]

    def _drop_alert(self, resolved: Resolved, n: int) -> Alert | None:
        conf, state = self.settings, self.state
        short, long_ = min(conf.window_hours), max(conf.window_hours)
        assert state.windows[0] is not None and state.windows[1] is not None  # noqa: S101 (set by _fold_sentiment just before; narrows for mypy)
        # the alert judges and shows the means as the profile stores them, to 4 places
        short_mean, long_mean = round(state.windows[0], 4), round(state.windows[1], 4)
        low = short_mean < conf.drop_threshold
        fell = long_mean - short_mean > conf.drop_delta
        if n < conf.drop_min_samples or not (low or fell):
            if not (low or fell):
                state.in_drop = False
            return None
        if state.in_drop:
            return None
        state.in_drop = True
        event = resolved.event
        return Alert(
            id=output_id("alert", "sentiment_drop", event.id),
            kind="sentiment_drop",
            severity="high" if short_mean < SENTIMENT_DROP_HIGH else "medium",
            customer_id=resolved.customer_id,
            time=event.time,
            due_at=event.time + timedelta(hours=24),
            message=(
                f"sentiment over {short:g} h is {short_mean:+.2f} "
                + (
                    f"(below {conf.drop_threshold:+.2f})"
                    if low
                    else f"(down from {long_mean:+.2f})"
                )
            ),
            evidence={
                "event_ids": [event.id],
                f"mean_{short:g}h": short_mean,
                f"mean_{long_:g}h": long_mean,
                "samples": n,
                "threshold": conf.drop_threshold,
                "delta": conf.drop_delta,
            },
        )

    def snapshot(self) -> bytes:
        if self.parking is None:
            return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)
        # Bytewax gives a builder no key: a restored journey must know whose it is to park
        if self.forgetting is not None:
            return FORGETTING + pickle.dumps((self.customer_id, self.forgetting))
        return pickle.dumps((self.customer_id, self.state), protocol=pickle.HIGHEST_PROTOCOL)


def journey_builder(
    settings: JourneySettings,
    scorer: SentimentScorer,
    options: JourneyOptions | None = None,
    parking: Parking | None = None,
) -> Callable[[bytes | None], JourneyLogic]:
    """Return the ``stateful_batch`` builder: a new journey, or one resumed from its snapshot.

    With ``parking``, a new key's journey is read back from the store on its first event.
    """

    def build(resume: bytes | None) -> JourneyLogic:
        if resume is None:
            return JourneyLogic(settings, scorer, None, options, parking=parking)
        customer_id, forgetting = "", None
        if resume.startswith(FORGETTING):
            customer_id, forgetting = pickle.loads(resume[len(FORGETTING) :])  # noqa: S301 (our own recovery snapshot)
            state = JourneyState(pos=dict(forgetting))
        else:
            state = pickle.loads(resume)  # noqa: S301 (our own recovery snapshot)
            if isinstance(state, tuple):  # (customer_id, journey): with parking
                customer_id, state = state
        logic = JourneyLogic(
            settings, scorer, state, options, parking=parking, forgetting=forgetting
        )
        logic.customer_id = customer_id
        return logic

    return build
