"""Models of every event cxstream emits.

All outputs carry a deterministic ``id`` (see :mod:`schemas.ids`) and event
times only: no wall-clock field, so a replayed log gives identical bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ActionClass = Literal["service", "retention", "marketing", "sales"]
AlertKind = Literal[
    "detractor",
    "sentiment_drop",
    "identity_conflict",
    "touchpoint_nps_drop",
    "sla_breach",
    "churn_risk",
    "model_drift",
    "nps_pocket",
    "adaptive_model_health",
]
"""Every kind of :class:`Alert`: the one list (metrics pre-create a series for each)."""
Severity = Literal["info", "low", "medium", "high", "critical"]
DeadLetterReason = Literal[
    "empty",
    "kafka_error",
    "too_large",
    "not_utf8",
    "not_json",
    "not_an_object",
    "too_deep",
    "text_too_long",
    "too_many_identifiers",
    "too_many_values",
    "invalid_event",
    "decode_failed",
    # the CloudEvents Kafka binding (schemas.cloudevents)
    "tombstone",
    "bad_header_encoding",
    "unknown_specversion",
    "unsupported_content_type",
    "data_not_json",
    "header_mismatch",
    # an output a webhook receiver never took (sinks.webhook)
    "webhook_failed",
    "unknown_customer",  # an NBA response naming an unknown or erased customer (#19)
    "unknown_nba",  # an NBA response the customer's decisions do not hold (#19)
    "response_conflict",  # a second, different answer to one NBA (#19)
]
"""Every reason of a :class:`DeadLetter`: the one list (flows.steps.decode gives them; metrics
pre-create a series for each)."""


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NextBestAction(_Output):
    """An action for an agent desktop or an automated channel (topic ``cx.nba``)."""

    id: str
    customer_id: str
    # shared by the actions one trigger event chose (a response names it); rank 1 = best
    decision_id: str
    rank: int = Field(ge=1)
    action: str
    action_class: ActionClass
    channel: str
    priority: float
    score: float
    message: str
    reason_codes: list[str] = Field(default_factory=list)
    trigger_event_ids: list[str]
    time: datetime
    expires_at: datetime | None = None
    profile_excerpt: dict[str, Any] = Field(default_factory=dict)


class Alert(_Output):
    """Something a CX team should act on (topic ``cx.alerts``)."""

    id: str
    kind: AlertKind
    severity: Severity
    customer_id: str | None = None
    touchpoint: str | None = None
    time: datetime
    due_at: datetime | None = None
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class NpsWindow(_Output):
    """Survey figures of one touchpoint over one event-time window (topic ``cx.nps``)."""

    id: str
    touchpoint: str
    channel: str | None = None
    window_start: datetime
    window_end: datetime
    revision: int = 0
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    csat_responses: int = 0
    csat_avg: float | None = None
    late_responses: int = 0
    analysis: dict[str, Any] = Field(default_factory=dict)


class KeyDrivers(_Output):
    """Key drivers of NPS in one event-time window, overall or of one touchpoint (``cx.insights``).

    ``drivers``: per driver, Johnson's relative weight for NPS (``weight``, its
    share of R^2 ``share``, bootstrap interval ``low``-``high``, ``significant``)
    and the same for the detractor indicator (``detractor_*``); non-significant
    drivers stay in the list. The overall record (``touchpoint`` None) also holds
    the window's ``pockets`` (every cell tested) and NPS by ``channels``. A closed
    window is final: ``late_answers`` counts answers that came after a window of this
    length had closed (reported once, on the next overall record), never folded in.
    """

    id: str
    touchpoint: str | None = None
    window_start: datetime
    window_end: datetime
    answers: int
    nps: float | None
    r2: float | None = None
    detractor_r2: float | None = None
    sample: int = 0
    bootstrap: int = 0
    drivers: list[dict[str, Any]] = Field(default_factory=list)
    pockets: list[dict[str, Any]] = Field(default_factory=list)
    channels: list[dict[str, Any]] = Field(default_factory=list)
    late_answers: int = 0


class DecisionSummary(_Output):
    """The decisions of one event-time window: NBAs, suppressions, responses (``cx.decisions``).

    ``nbas``: NBAs sent per ``action`` and ``channel``; ``suppressions``: actions held
    back per ``reason`` and ``action``; ``responses``: response outcomes per ``action``
    and ``outcome`` (impression, accepted, rejected, dismissed, and no_response: an
    impression unanswered for the action's response timeout, counted in the window
    where that wait ended); ``acceptance``: per action, ``accepted / answered``
    (answered = accepted + rejected + dismissed + no_response), None without answers.
    A closed window is final: ``late_items`` counts what came after it closed.
    """

    id: str
    window_start: datetime
    window_end: datetime
    nbas_total: int
    suppressed_total: int
    responses_total: int
    nbas: list[dict[str, Any]] = Field(default_factory=list)
    suppressions: list[dict[str, Any]] = Field(default_factory=list)
    responses: list[dict[str, Any]] = Field(default_factory=list)
    acceptance: list[dict[str, Any]] = Field(default_factory=list)
    late_items: int = 0


class IdentityMerge(_Output):
    """Two customer ids found to be one person (topic ``cx.identity``)."""

    id: str
    survivor_id: str
    merged_id: str
    event_id: str
    reason: str
    time: datetime
    linking_identifiers: list[str] = Field(default_factory=list)


class IdentityErasure(_Output):
    """A customer erased on request (topic ``cx.identity``; ``cx.profiles`` gets a tombstone)."""

    id: str
    customer_id: str
    event_id: str
    time: datetime
    existed: bool
    identifiers_removed: int
    aliases_removed: int


class ProfileSnapshot(_Output):
    """The single customer view of one customer (compacted topic ``cx.profiles``)."""

    customer_id: str
    version: int
    identifiers: dict[str, list[str]]
    first_seen: datetime
    last_seen: datetime
    event_count: int
    channel_counts: dict[str, int] = Field(default_factory=dict)
    last_channel: str | None = None
    last_touchpoint: str | None = None
    lifetime_value: float = 0.0
    orders: int = 0
    last_nps: int | None = None
    last_csat: int | None = None
    sentiment: float | None = None
    churn_score: float | None = None
    consent: dict[str, bool] = Field(default_factory=dict)
    open_cases: list[str] = Field(default_factory=list)
    segment: str | None = None
    journey_stage: str | None = None
    # rolling mean sentiment per window ("24h", "168h"), its EWMA trend, mean per stage
    sentiment_windows: dict[str, float] = Field(default_factory=dict)
    sentiment_trend: float | None = None
    sentiment_by_stage: dict[str, float] = Field(default_factory=dict)
    recent: list[dict[str, Any]] = Field(default_factory=list)
    last_event_id: str
    # the customer's household (id and HouseholdSnapshot.excerpt) as of the customer's
    # latest event (by event time), as the lane-ordered household step left it
    # (flows.steps.households): the same in cx.profiles, profiles.jsonl and the API;
    # None: in no household then (or households off)
    household_id: str | None = None
    household: dict[str, Any] | None = None


class HouseholdSnapshot(_Output):
    """Customers linked by household evidence, never merged (compacted topic ``cx.households``)."""

    household_id: str
    members: list[str]
    member_count: int
    evidence_types: list[str]
    lifetime_value: float = 0.0
    orders: int = 0
    #: each member's latest NPS answer (members without one left out), and their mean
    last_nps: dict[str, int] = Field(default_factory=dict)
    mean_nps: float | None = None
    detractors: int = 0
    max_churn: float | None = None
    open_cases: int = 0
    last_seen: datetime | None = None

    def excerpt(self) -> dict[str, Any]:
        """Return the few fields a profile shows of its household."""
        return {
            "members": self.member_count,
            "lifetime_value": self.lifetime_value,
            "orders": self.orders,
            "mean_nps": self.mean_nps,
            "open_cases": self.open_cases,
        }


class DeadLetter(_Output):
    """Input that could not be processed, with its original bytes (topic ``cx.dlq``)."""

    id: str
    reason: DeadLetterReason
    error: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    key_b64: str | None = None
    original_b64: str
    original_size: int
    #: the message's Kafka headers, as ``[name, base64 of the value]``, in their order
    headers: list[tuple[str, str]] = Field(default_factory=list)


OUTPUT_MODELS: dict[str, type[BaseModel]] = {
    "nba": NextBestAction,
    "alerts": Alert,
    "nps": NpsWindow,
    "insights": KeyDrivers,
    "decisions": DecisionSummary,
    "identity": IdentityMerge,
    "identity_erasure": IdentityErasure,
    "profiles": ProfileSnapshot,
    "households": HouseholdSnapshot,
    "dlq": DeadLetter,
}
