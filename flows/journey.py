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
  ``detractor`` alert for NPS 0-6.

A merged-away customer's journey state stays behind under its old id; the
survivor's journey continues from its own.
"""

from __future__ import annotations

import bisect
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from bytewax.operators import StatefulBatchLogic

from flows.nps import detractor_alert
from flows.resolve import Journeyed, Resolved
from flows.sentiment import SentimentScorer
from flows.settings import JourneySettings
from flows.stages import mapped_stage, next_stage
from online_models.churn import ChurnEngine
from online_models.features import CustomerFeatures
from online_models.segmentation import Segmenter
from online_models.settings import ModelSettings
from schemas.ids import output_id
from schemas.outputs import Alert


@dataclass
class JourneyState:
    """One customer's journey."""

    stage: str | None = None
    before_service: str | None = None
    samples: list[tuple[int, float]] = field(default_factory=list)  # (ms, score), sorted
    trend: float | None = None
    by_stage: dict[str, tuple[float, int]] = field(default_factory=dict)
    in_drop: bool = False
    features: CustomerFeatures = field(default_factory=CustomerFeatures)


@dataclass(frozen=True)
class Models:
    """The online models of one worker, shared by all its customers (see online_models)."""

    churn: ChurnEngine
    segments: Segmenter

    @classmethod
    def build(cls, settings: ModelSettings) -> Models:
        return cls(ChurnEngine(settings), Segmenter(settings))


class JourneyLogic(StatefulBatchLogic[Resolved, "Journeyed | Alert", bytes]):
    def __init__(
        self,
        settings: JourneySettings,
        scorer: SentimentScorer,
        state: JourneyState,
        models: Models | None = None,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.state = state
        self.models = models

    def on_batch(self, values: list[Resolved]) -> tuple[Iterable[Journeyed | Alert], bool]:
        out: list[Journeyed | Alert] = []
        for resolved in values:
            out += self._step(resolved)
        return out, StatefulBatchLogic.RETAIN

    def _step(self, resolved: Resolved) -> list[Journeyed | Alert]:
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
        out: list[Journeyed | Alert] = []
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
            out += model_alerts
        out.insert(0, Journeyed(resolved, stage, sentiment, figures))
        return out

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

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def journey_builder(
    settings: JourneySettings, scorer: SentimentScorer, models: Models | None = None
) -> Callable[[bytes | None], JourneyLogic]:
    def build(resume: bytes | None) -> JourneyLogic:
        state = pickle.loads(resume) if resume is not None else JourneyState()  # our own
        return JourneyLogic(settings, scorer, state, models)

    return build
