"""Per-customer churn features: a small picklable state, and its vector at a time.

The journey step (keyed by customer) keeps one :class:`CustomerFeatures` per
customer, calls :meth:`CustomerFeatures.update` with every event (and the
sentiment and stage it worked out), and :meth:`CustomerFeatures.vector` gives
the plain ``dict[str, float]`` the River models read.

Everything runs on event time. Counters that should fade (events per channel,
complaints, exit signals, ...) are exponentially decayed with a half-life
(:attr:`FeatureSettings.half_life_days`); they are kept as of the latest event
and decayed on read, so an update costs one ``exp``, and they enter the vector
as rates per week over the time the customer has been seen. An event older than the
latest one (out of order for this customer) adds its increments already
decayed to the latest time; it never moves the clock back.

Memory is bounded: a fixed set of counters, at most ``max_open_cases`` open
cases (the oldest is forgotten), a handful of scalars. Durations and counts
enter the vector through ``log1p`` so a linear model is not dominated by a few
heavy customers.

>>> from schemas.envelope import InteractionEvent
>>> def event(n, day, etype, **data):
...     data = {"channel": "web", "touchpoint": "web.home", **data}
...     time = f"2026-03-{day:02d}T10:00:00Z"
...     return InteractionEvent.model_validate(
...         {"id": f"e{n}", "source": "/t", "type": etype, "time": time, "data": data})
>>> f = CustomerFeatures()
>>> f.update(event(1, 2, "cx.web.page.viewed"), None, "awareness")
>>> f.update(event(2, 4, "cx.order.placed", amount=50.0), 0.5, "purchase")
>>> f.update(event(3, 5, "cx.web.page.viewed", attributes={"page": "/account/close"}), None, None)
>>> x = f.vector(f.last_ms)
>>> x["stage_purchase"], x["has_ordered"], x["sent_last"], round(x["gap_days"], 3)
(1.0, 1.0, 0.5, 0.693)
>>> x["exits"] > 0, x["exit_fresh"], x["open_cases"]
(True, 1.0, 0.0)
>>> len(x) == len(CustomerFeatures().vector(0))  # the same keys for every customer
True
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, field

from online_models.settings import DAY_MS, HOUR_MS, FeatureSettings
from schemas.envelope import InteractionEvent
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, NPS_DETRACTOR_MAX, action_of

DEFAULT_FEATURES = FeatureSettings()
FRICTION_SUFFIXES = (".crashed", ".failed")
EXIT_FRESH_DAYS = 3.0  # exit_fresh = exp(-days since the last exit signal / this)

_log1p = math.log1p
_LN2 = math.log(2.0)


@functools.lru_cache(maxsize=64)
def _prefixed(prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Feature names built once (and so hashed once), not per vector."""
    return tuple(sys.intern(prefix + name) for name in names)


_CHANNEL_KEYS = {c: "ch_" + c for c in (*DEFAULT_FEATURES.channels, "other")}


@dataclass(slots=True)
class CustomerFeatures:
    """One customer's feature state (see the module docstring).

    ``churn_score`` and ``at_risk`` are the churn engine's memory of this
    customer (its latest score; whether a ``churn_risk`` alert is out and not
    yet re-armed), ``segment`` and ``segment_ms`` the segmenter's (the label;
    when it last learnt from them): they live here so that everything per
    customer is keyed, snapshotted and erased together.
    """

    first_ms: int | None = None
    last_ms: int | None = None
    gap_ms: int = 0
    events: int = 0
    decayed: dict[str, float] = field(default_factory=dict)  # as of last_ms
    spend: float = 0.0
    orders: int = 0
    last_order_ms: int | None = None
    sentiment_last: float | None = None
    sentiment_sum: float = 0.0
    sentiment_n: int = 0
    sentiment_trend: float | None = None
    nps_last: int | None = None
    nps_sum: int = 0
    nps_n: int = 0
    csat_last: int | None = None
    csat_sum: int = 0
    csat_n: int = 0
    open_cases: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (opened, sla)
    exits: int = 0
    last_exit_ms: int | None = None
    stage: str | None = None
    account: bool = False
    churn_score: float | None = None
    at_risk: bool = False
    segment: str | None = None
    segment_ms: int | None = None

    def update(
        self,
        event: InteractionEvent,
        sentiment: float | None,
        stage: str | None,
        conf: FeatureSettings = DEFAULT_FEATURES,
    ) -> None:
        """Fold one event in; ``stage`` None keeps the current stage."""
        t = event.epoch_ms
        weight = self._advance(t, conf)
        data = event.data
        bump = self._bump
        bump("events", weight)
        channel = data.channel if data.channel in conf.channels else "other"
        bump(_CHANNEL_KEYS.get(channel) or "ch_" + channel, weight)
        if stage is not None:
            self.stage = stage
        if not self.account and not conf.account_identifiers.isdisjoint(data.identifiers):
            self.account = True
        if data.amount is not None and data.amount > 0:
            self.spend += float(data.amount)
            self.orders += 1
            if self.last_order_ms is None or t > self.last_order_ms:
                self.last_order_ms = t
        if sentiment is not None:
            self._sentiment(float(sentiment), weight, channel in conf.service_channels, conf)
        if data.nps is not None:
            self.nps_last = data.nps
            self.nps_sum += data.nps
            self.nps_n += 1
            if data.nps <= NPS_DETRACTOR_MAX:
                bump("detractors", weight)
        if data.csat is not None:
            self.csat_last = data.csat
            self.csat_sum += data.csat
            self.csat_n += 1
        if event.type.endswith(FRICTION_SUFFIXES):
            bump("friction", weight)
        self._case(event, t, conf)
        if _is_exit(event, conf):
            bump("exits", weight)
            self.exits += 1
            if self.last_exit_ms is None or t > self.last_exit_ms:
                self.last_exit_ms = t

    def vector(self, now_ms: int, conf: FeatureSettings = DEFAULT_FEATURES) -> dict[str, float]:
        """Return the features as of ``now_ms`` (normally the time of the latest event)."""
        first = self.first_ms if self.first_ms is not None else now_ms
        last = self.last_ms if self.last_ms is not None else now_ms
        half_life = conf.half_life_days
        tenure = max(0, now_ms - first) / DAY_MS
        # Decayed counts become rates per week over the time the customer has been seen
        # (at most a decay window), so a customer seen for two days does not look quiet
        # next to one seen for months: the features mean the same from the first day.
        exposure = max(1.0, half_life / _LN2 * (1.0 - 0.5 ** (tenure / half_life)))
        per_week = 0.5 ** (max(0, now_ms - last) / (half_life * DAY_MS)) * 7.0 / exposure
        counts = self.decayed
        x: dict[str, float] = {
            "account": 1.0 if self.account else 0.0,
            "tenure_days": _log1p(tenure),
            "gap_days": _log1p(self.gap_ms / DAY_MS),  # recency: since the event before
            "activity": _log1p(counts.get("events", 0.0) * per_week),
            "rate": _log1p(self.events / max(tenure, 1.0)),
        }
        for key in _prefixed("ch_", conf.channels):
            x[key] = _log1p(counts.get(key, 0.0) * per_week)
        x["ch_other"] = _log1p(counts.get("ch_other", 0.0) * per_week)
        ordered = self.last_order_ms is not None
        since_order = (
            (now_ms - self.last_order_ms) / DAY_MS if self.last_order_ms is not None else tenure
        )
        x["spend"] = _log1p(self.spend)
        x["orders"] = _log1p(self.orders)
        x["has_ordered"] = 1.0 if ordered else 0.0
        x["order_idle_days"] = _log1p(max(0.0, since_order))
        n = self.sentiment_n
        x["has_sentiment"] = 1.0 if n else 0.0
        x["sent_last"] = self.sentiment_last or 0.0
        x["sent_mean"] = self.sentiment_sum / n if n else 0.0
        x["sent_trend"] = self.sentiment_trend or 0.0
        x["negative"] = _log1p(counts.get("negative", 0.0) * per_week)
        x["nps"] = self.nps_last / 10 if self.nps_last is not None else 0.0
        x["nps_mean"] = self.nps_sum / self.nps_n / 10 if self.nps_n else 0.0
        x["nps_missing"] = 0.0 if self.nps_n else 1.0
        x["csat"] = (self.csat_last - 1) / 4 if self.csat_last is not None else 0.0
        x["csat_mean"] = (self.csat_sum / self.csat_n - 1) / 4 if self.csat_n else 0.0
        x["csat_missing"] = 0.0 if self.csat_n else 1.0
        x["detractors"] = _log1p(counts.get("detractors", 0.0) * per_week)
        x["complaints"] = _log1p(counts.get("complaints", 0.0) * per_week)
        x["friction"] = _log1p(counts.get("friction", 0.0) * per_week)
        x["open_cases"] = float(len(self.open_cases))
        x["breached_cases"] = float(
            sum(1 for opened, sla in self.open_cases.values() if now_ms - opened > sla)
        )
        x["exits"] = _log1p(counts.get("exits", 0.0) * per_week)
        x["exits_total"] = _log1p(self.exits)
        x["exit_fresh"] = (
            math.exp(-max(0, now_ms - self.last_exit_ms) / DAY_MS / EXIT_FRESH_DAYS)
            if self.last_exit_ms is not None
            else 0.0
        )
        current = self.stage
        for stage, key in zip(conf.stages, _prefixed("stage_", conf.stages), strict=True):
            x[key] = 1.0 if current == stage else 0.0
        return x

    # -- helpers ----------------------------------------------------------------------

    def _advance(self, t: int, conf: FeatureSettings) -> float:
        """Move the clock to ``t``; return the weight of an increment made at ``t``."""
        self.events += 1
        if self.first_ms is None or self.last_ms is None:
            self.first_ms = self.last_ms = t
            return 1.0
        self.first_ms = min(self.first_ms, t)
        half_life = conf.half_life_days * DAY_MS
        if t < self.last_ms:  # out of order: count it as already faded
            return float(0.5 ** ((self.last_ms - t) / half_life))
        if t > self.last_ms:
            fade = 0.5 ** ((t - self.last_ms) / half_life)
            counts = self.decayed
            for key in counts:
                counts[key] *= fade
            self.gap_ms = t - self.last_ms
            self.last_ms = t
        return 1.0

    def _bump(self, key: str, amount: float) -> None:
        self.decayed[key] = self.decayed.get(key, 0.0) + amount

    def _sentiment(self, score: float, weight: float, service: bool, conf: FeatureSettings) -> None:
        self.sentiment_last = score
        self.sentiment_sum += score
        self.sentiment_n += 1
        alpha = conf.sentiment_alpha
        trend = self.sentiment_trend
        self.sentiment_trend = score if trend is None else alpha * score + (1 - alpha) * trend
        if score < 0:
            self._bump("negative", -score * weight)
        if service and score <= conf.complaint_threshold:
            self._bump("complaints", weight)

    def _case(self, event: InteractionEvent, t: int, conf: FeatureSettings) -> None:
        case_id, action = event.data.case_id, action_of(event.type)
        if case_id is None:
            return
        if action == CASE_OPENED:
            if case_id in self.open_cases:
                return
            priority = str(event.data.attributes.get(conf.priority_attribute, "")).upper()
            hours = conf.sla_hours.get(priority, conf.default_sla_hours)
            self.open_cases[case_id] = (t, round(hours * HOUR_MS))
            while len(self.open_cases) > conf.max_open_cases:
                del self.open_cases[min(self.open_cases, key=lambda c: self.open_cases[c][0])]
        elif action in CASE_FINISHED:
            self.open_cases.pop(case_id, None)


def _is_exit(event: InteractionEvent, conf: FeatureSettings) -> bool:
    """Tell whether the event is a step towards the exit.

    That is a cancellation touchpoint, a closing page or an opt-out.
    """
    data = event.data
    if data.touchpoint.endswith(conf.exit_touchpoint_suffixes):
        return True
    if data.consent and not all(data.consent.values()):
        return True
    page = data.attributes.get("page")
    return isinstance(page, str) and any(p in page for p in conf.exit_pages)
