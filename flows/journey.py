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
* the **scores** (with :class:`Models`): churn probability, segment, and the
  category interest that next-category propensity reads;
* the **decision** (with a :class:`~flows.nba.Decider`): next-best actions
  from the catalogue, under the customer's consent and contact history, which
  live here too (see :mod:`flows.nba`).

A merged-away customer's journey state (contact history and consent
included) stays behind under its old id; the survivor's journey continues
from its own. Consent withdrawn under a merged-away id still holds marketing
back: resolve reports the opt-outs of the survivor's stored profile, where
merges pool consent (:meth:`flows.nba.policy.ContactHistory.consents`).
"""

from __future__ import annotations

import bisect
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.nba import ContactHistory, Decider, build_context
from flows.nps import detractor_alert
from flows.resolve import ERASE_TYPE, Journeyed, Resolved
from flows.sentiment import SentimentScorer
from flows.settings import JourneySettings
from flows.stages import mapped_stage, next_stage
from online_models.churn import ChurnEngine
from online_models.features import CustomerFeatures
from online_models.propensity import CategoryInterest, PropensityModel
from online_models.segmentation import Segmenter
from online_models.settings import ModelSettings
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, NextBestAction

if TYPE_CHECKING:
    from flows.checkpoint import ModelCheckpoint

JourneyOut = Journeyed | Alert | NextBestAction


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
    contacts: ContactHistory = field(default_factory=ContactHistory)


@dataclass(frozen=True)
class Models:
    """The online models of one worker, shared by all its customers (see online_models)."""

    churn: ChurnEngine
    segments: Segmenter
    propensity: PropensityModel = field(default_factory=PropensityModel)

    @classmethod
    def build(cls, settings: ModelSettings) -> Models:
        churn = ChurnEngine(settings)
        churn.on_label = ModelGauges(churn)
        return cls(churn, Segmenter(settings), PropensityModel(settings))

    @property
    def churn_ready(self) -> bool:
        """Whether churn scores may drive actions: the engine is past its warm-up."""
        return self.churn.warm


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


class JourneyLogic(StatefulBatchLogic[Resolved, JourneyOut, bytes]):
    def __init__(
        self,
        settings: JourneySettings,
        scorer: SentimentScorer,
        state: JourneyState,
        models: Models | None = None,
        decider: Decider | None = None,
        checkpoint: ModelCheckpoint | None = None,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.state = state
        self.models = models
        self.decider = decider
        self.checkpoint = checkpoint

    def on_batch(self, values: list[Resolved]) -> tuple[Iterable[JourneyOut], bool]:
        out: list[JourneyOut] = []
        erased = False
        for resolved in values:
            erased = resolved.event.type == ERASE_TYPE
            if erased:
                self._forget(resolved)
            else:
                out += self._step(resolved)
        return out, StatefulBatchLogic.DISCARD if erased else StatefulBatchLogic.RETAIN

    def _forget(self, resolved: Resolved) -> None:
        """An erased customer: drop the journey, features, contacts and model snapshots."""
        self.state = JourneyState()
        if self.models is not None and resolved.customer_id is not None:
            self.models.churn.forget(resolved.customer_id)

    def _step(self, resolved: Resolved) -> list[JourneyOut]:
        event, state, conf = resolved.event, self.state, self.settings
        data = event.data
        target = mapped_stage(event.type, data.journey_stage, conf.stage_map)
        if target == "loyalty" and data.nps is not None and data.nps < 9:
            target = None  # only promoters advance to loyalty through a survey
        stage = next_stage(state.stage, state.before_service, target)
        if stage == "service" and state.stage != "service":
            state.before_service = state.stage
        state.stage = stage

        sentiment = data.sentiment
        if sentiment is None and data.text:
            sentiment = self.scorer.score(data.text)
        out: list[JourneyOut] = []
        figures: dict[str, str] = {}
        if sentiment is not None:
            figures = self._fold_sentiment(event.epoch_ms, float(sentiment), stage)
            alert = self._drop_alert(resolved, figures)
            if alert is not None:
                out.append(alert)
        detractor = detractor_alert(event, resolved.customer_id, conf.detractor_sla_hours)
        if detractor is not None:
            out.append(detractor)
        if self.models is not None and resolved.customer_id is not None:
            # score: churn (predict, then learn as labels mature) and the segment
            score, model_alerts = self.models.churn.step(
                resolved.customer_id, event, state.features, sentiment, stage
            )
            figures["churn"] = f"{score:.4f}"
            figures["segment"] = self.models.segments.assign(state.features, event.epoch_ms)
            self.models.propensity.observe(state.interest, event)
            out += model_alerts
        if self.decider is not None and resolved.customer_id is not None:
            out += self._decide(resolved, event, sentiment, stage, figures)
        out.insert(0, Journeyed(resolved, stage, sentiment, figures))
        return out

    def _decide(
        self,
        resolved: Resolved,
        event: InteractionEvent,
        sentiment: float | None,
        stage: str | None,
        figures: dict[str, str],
    ) -> list[NextBestAction]:
        """decide: the next-best actions this event triggers (see flows.nba)."""
        assert self.decider is not None and resolved.customer_id is not None
        customer_id = resolved.customer_id
        state, models, data = self.state, self.models, event.data
        now = event.epoch_ms
        if data.consent:
            state.contacts.fold_consent(now, data.consent, self.decider.settings)
        top = None
        if models is not None and self.decider.needs_propensity and state.interest.weights:
            # only customers who showed an interest: popularity alone is no signal
            best = models.propensity.top_k(state.interest, now, k=1)
            top = best[0] if best else None
        ctx = build_context(
            customer_id=customer_id,
            event_type=event.type,
            channel=data.channel,
            touchpoint=data.touchpoint,
            features=state.features,
            now_ms=now,
            nps=data.nps,
            csat=data.csat,
            sentiment=sentiment,
            amount=data.amount,
            stage=stage,
            sentiment_trend=state.trend,
            sentiment_short=state.windows[0],
            sentiment_long=state.windows[1],
            segment=figures.get("segment"),
            churn=state.features.churn_score,
            churn_ready=models is not None and models.churn_ready,
            top_category=top,
        )
        # opt-outs stored under ids merged into this one count too (flows.nba.policy)
        withdrawn = resolved.withdrawn() if resolved.opted_out else None
        return self.decider.decide(ctx, state.contacts, event.id, event.time, now, withdrawn)

    def _fold_sentiment(self, ms: int, score: float, stage: str | None) -> dict[str, str]:
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
        figures = {"sent_trend": f"{state.trend:.4f}"}
        for hours in conf.window_hours:
            recent = [s for t, s in state.samples if t > now - hours * 3_600_000]
            figures[f"sent_{hours:g}h"] = f"{sum(recent) / len(recent):.4f}"
            figures[f"sent_{hours:g}h_n"] = str(len(recent))
        for name, (total, count) in state.by_stage.items():
            figures[f"sent_stage:{name}"] = f"{total / count:.4f}"
        short, long_ = min(conf.window_hours), max(conf.window_hours)
        state.windows = (float(figures[f"sent_{short:g}h"]), float(figures[f"sent_{long_:g}h"]))
        return figures

    def _drop_alert(self, resolved: Resolved, figures: dict[str, str]) -> Alert | None:
        conf, state = self.settings, self.state
        short, long_ = min(conf.window_hours), max(conf.window_hours)
        n = int(figures[f"sent_{short:g}h_n"])
        short_mean = float(figures[f"sent_{short:g}h"])
        long_mean = float(figures[f"sent_{long_:g}h"])
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
            severity="high" if short_mean < -0.6 else "medium",
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

    def on_eof(self) -> tuple[Iterable[JourneyOut], bool]:
        if self.checkpoint is not None:
            self.checkpoint.at_eof()
        return (), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        if self.checkpoint is not None:  # the shared models, now and then (flows.checkpoint)
            self.checkpoint.maybe_export()
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def journey_builder(
    settings: JourneySettings,
    scorer: SentimentScorer,
    models: Models | None = None,
    decider: Decider | None = None,
    checkpoint: ModelCheckpoint | None = None,
) -> Callable[[bytes | None], JourneyLogic]:
    def build(resume: bytes | None) -> JourneyLogic:
        state = pickle.loads(resume) if resume is not None else JourneyState()  # our own
        return JourneyLogic(settings, scorer, state, models, decider, checkpoint)

    return build
