"""The driver vector of a survey answer, as the journey step sees the customer then.

The journey step calls :func:`observe` with every event *before* folding it into
the customer's features, so a survey answer's drivers are the customer as they
were when they answered (the answer's own text and score are not among them).
:class:`DriverMemory` is the little the features do not already hold: recent
contact times and the latest SLA breach. Memory stays bounded (at most twice
:data:`MAX_CONTACTS` times; ``contacts_7d`` counts up to :data:`MAX_CONTACTS`).

>>> from schemas.envelope import InteractionEvent
>>> from online_models.features import CustomerFeatures
>>> def event(n, day, etype, **data):
...     data = {"channel": "chat", "touchpoint": "chat.support", **data}
...     return InteractionEvent.model_validate({"id": f"e{n}", "source": "/t", "type": etype,
...         "time": f"2026-03-{day:02d}T10:00:00Z", "data": data})
>>> memory, features, conf = DriverMemory(), CustomerFeatures(), InsightsSettings()
>>> observe(memory, event(1, 2, "cx.chat.message"), None, features, conf) is None
True
>>> features.update(event(1, 2, "cx.chat.message"), -0.5, None)
>>> answer = event(2, 3, "cx.survey.nps", nps=4, channel="survey",
...     attributes={"surveyed_channel": "chat"})
>>> d = observe(memory, answer, "usage", features, conf)
>>> dict(zip(JOURNEY_DRIVERS, d.values))["contacts_7d"], d.channel, d.nps
(1.0, 'chat', 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flows.insights.settings import ALL_DRIVERS, InsightsSettings
from online_models.features import CustomerFeatures
from schemas.envelope import InteractionEvent
from schemas.vocabulary import CASE_FINISHED, action_of

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MAX_CONTACTS = 64
CONTACT_WINDOW_MS = 7 * DAY_MS
LTV_BANDS = (0.0, 100.0, 500.0)  # spend above each bound moves one band up
JOURNEY_DRIVERS = tuple(d for d in ALL_DRIVERS if d != "churn_risk")
"""The drivers the journey step fills in, in order; the score step adds ``churn_risk``."""
SURVEYED_CHANNEL = "surveyed_channel"
"""The answer's attribute naming the channel of the interaction surveyed (else its own)."""


@dataclass(slots=True)
class DriverMemory:
    """What one customer's drivers need beyond their features."""

    contacts: list[int] = field(default_factory=list)  # event ms of the last 7 days' contacts
    breach_ms: int | None = None  # when a finished case last went past its SLA


@dataclass(frozen=True, slots=True)
class AnswerDrivers:
    """One survey answer's driver values (:data:`JOURNEY_DRIVERS` order) and its categories."""

    values: tuple[float, ...]
    nps: int
    touchpoint: str
    channel: str
    stage: str | None


def observe(
    memory: DriverMemory,
    event: InteractionEvent,
    stage: str | None,
    features: CustomerFeatures,
    conf: InsightsSettings | None,
) -> AnswerDrivers | None:
    """Note a contact or a breach; for an NPS answer return its drivers (else None)."""
    if conf is None:
        return None
    data, now = event.data, event.epoch_ms
    drivers = None
    if data.nps is not None:
        drivers = _drivers(memory, event, stage, features, conf)
    if data.channel in conf.contact_channels:
        contacts = memory.contacts
        contacts.append(now)
        # amortised: pruned when twice the cap, or when the oldest kept has aged out
        if len(contacts) > 2 * MAX_CONTACTS or contacts[0] < now - CONTACT_WINDOW_MS:
            fresh = [t for t in contacts if t >= now - CONTACT_WINDOW_MS]
            memory.contacts = fresh[-MAX_CONTACTS:]
    if data.case_id is not None and action_of(event.type) in CASE_FINISHED:
        opened = features.open_cases.get(data.case_id)
        if opened is not None and now - opened[0] > opened[1]:
            due = opened[0] + opened[1]
            memory.breach_ms = due if memory.breach_ms is None else max(memory.breach_ms, due)
    return drivers


def _drivers(
    memory: DriverMemory,
    event: InteractionEvent,
    stage: str | None,
    features: CustomerFeatures,
    conf: InsightsSettings,
) -> AnswerDrivers:
    data, now = event.data, event.epoch_ms
    assert data.nps is not None  # noqa: S101 (for mypy: called for NPS answers)
    first = features.first_ms if features.first_ms is not None else now
    opened = [t for t, _ in features.open_cases.values()]
    breached = any(now - t > sla for t, sla in features.open_cases.values())
    recent = now - round(conf.sla_days * DAY_MS)
    if memory.breach_ms is not None and memory.breach_ms >= recent:
        breached = True
    surveyed = data.attributes.get(SURVEYED_CHANNEL)
    channel = surveyed if isinstance(surveyed, str) and surveyed else data.channel
    since = now - CONTACT_WINDOW_MS
    values = (
        math.log1p(max(0, now - first) / DAY_MS),
        float(sum(1 for bound in LTV_BANDS if features.spend > bound)),
        1.0 if opened else 0.0,
        math.log1p(max(0, now - min(opened)) / HOUR_MS) if opened else 0.0,
        1.0 if breached else 0.0,
        float(min(MAX_CONTACTS, sum(1 for t in memory.contacts if since <= t <= now))),
        features.sentiment_last or 0.0,
        1.0 if channel in conf.assisted_channels else 0.0,
        1.0 if stage == "service" else 0.0,
    )
    return AnswerDrivers(values, data.nps, data.touchpoint, channel, stage)
