"""Settings of the steps: NPS (``CX_NPS__*``), SLA (``CX_SLA__*``), NBA (``CX_NBA__*``), stages.

They sit below the steps and the NBA domain, so :mod:`flows.settings` (which
gathers every section) imports nothing above it; the engines that use them are
:mod:`flows.steps.nps`, :mod:`flows.steps.sla`, :mod:`flows.nba` and
:mod:`flows.steps.stages`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.envelope import InteractionEvent
from schemas.outputs import ActionClass

# The journey step's default mapping of event actions to stages (CX_JOURNEY__STAGE_MAP).
DEFAULT_STAGE_MAP: dict[str, str] = {
    "page.viewed": "awareness",
    "screen.viewed": "awareness",
    "ad.clicked": "awareness",
    "email.opened": "awareness",
    "email.clicked": "consideration",
    "product.viewed": "consideration",
    "cart.added": "consideration",
    "checkout.failed": "consideration",
    "web.login": "consideration",
    "order.placed": "purchase",
    "checkout.completed": "purchase",
    "account.created": "onboarding",
    "app.installed": "onboarding",
    "order.delivered": "onboarding",
    "session.started": "usage",
    "return.processed": "usage",
    "case.opened": "service",
    "case.escalated": "service",
    "app.crashed": "service",
    "case.resolved": "resolved",  # leaves service
    "case.closed": "resolved",
    "referral.sent": "loyalty",
    "review.posted": "loyalty",
    "loyalty.joined": "loyalty",
    "account.closed": "churned",
}


class NpsSettings(BaseModel):
    """Touchpoint NPS windows, lateness, revisions and alert thresholds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_lengths_seconds: tuple[int, ...] = (3600, 86400)
    allowed_lateness_seconds: int = Field(default=600, ge=0)
    # How long after its end (in watermark time) a window that went out may still be revised.
    revision_horizon_seconds: int = Field(default=3600, ge=0)
    by_channel: bool = True
    baseline_windows: int = Field(default=6, ge=2)
    drop_threshold_points: float = Field(default=20.0, gt=0)
    min_responses: int = Field(default=5, ge=1)
    # The detractor alert's due time is CX_JOURNEY__DETRACTOR_SLA_HOURS (the journey step
    # raises it, where the customer is known); a CX_NPS__ one would change nothing, so
    # there is none: setting it is an error.

    @field_validator("window_lengths_seconds")
    @classmethod
    def _positive_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) <= 0:
            msg = "window lengths must be positive seconds, at least one"
            raise ValueError(msg)
        return tuple(sorted(set(value)))


class SlaSettings(BaseModel):
    """Service-case SLAs by priority, and the bounds of the engine's memory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla_hours: dict[str, float] = Field(
        default_factory=lambda: {"P1": 4.0, "P2": 24.0, "P3": 72.0}, validate_default=True
    )
    default_priority: str = "P3"
    priority_attribute: str = "priority"
    allowed_lateness_seconds: float = Field(default=0.0, ge=0)
    max_open_cases: int = Field(default=200_000, ge=1)
    remember_seconds: float = Field(default=7 * 86400, gt=0)
    max_remembered_cases: int = Field(default=200_000, ge=1)

    @field_validator("sla_hours")
    @classmethod
    def _positive_upper(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(hours <= 0 for hours in value.values()):
            msg = "sla_hours needs at least one priority, each with positive hours"
            raise ValueError(msg)
        # Priorities are compared upper-cased; normalise the table the same way.
        return {priority.strip().upper(): hours for priority, hours in value.items()}

    @field_validator("default_priority")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()

    @model_validator(mode="after")
    def _default_has_sla(self) -> SlaSettings:
        if self.default_priority not in self.sla_hours:
            msg = f"default_priority {self.default_priority!r} has no entry in sla_hours"
            raise ValueError(msg)
        return self

    def priority_of(self, event: InteractionEvent) -> str:
        """Return the case priority an event carries, or the default.

        >>> settings = SlaSettings()
        >>> data = {"channel": "service_desk", "touchpoint": "desk", "case_id": "C-1"}
        >>> event = InteractionEvent.model_validate({"id": "e1", "source": "/doc",
        ...     "type": "cx.case.opened", "time": "2026-03-02T10:00:00Z",
        ...     "data": {**data, "attributes": {"priority": " p1"}}})
        >>> settings.priority_of(event), settings.sla_hours[settings.priority_of(event)]
        ('P1', 4.0)
        """
        raw = event.data.attributes.get(self.priority_attribute)
        priority = str(raw).strip().upper() if raw is not None else ""
        return priority if priority in self.sla_hours else self.default_priority


class NbaSettings(BaseModel):
    """Where the action catalogue is, and the contact policy (``CX_NBA__*``).

    The catalogue of actions and rules is a TOML file a CX team edits
    (:mod:`flows.nba.catalogue`); these settings say where it is and hold the
    contact policy, which is a promise to customers rather than a campaign rule.

    >>> s = NbaSettings()
    >>> s.catalogue is None, s.top_n, s.max_per_day, s.max_per_week
    (True, 2, 2, 5)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # A TOML catalogue; None: the default one shipped in flows/nba/catalogue.toml.
    catalogue: str | None = None
    # At most this many actions per trigger event, best priority first.
    top_n: int = Field(default=2, ge=1)
    # Per customer, over the last 24 h and the last 7 days of event time.
    max_per_day: int = Field(default=2, ge=0)
    max_per_week: int = Field(default=5, ge=0)
    # Classes that the day/week caps never hold back (they still count towards them):
    # a detractor's follow-up must not wait because a thank-you went out that morning.
    cap_exempt: tuple[ActionClass, ...] = ("service",)
    # Classes held back while the customer has an open service case.
    blocked_by_open_case: tuple[ActionClass, ...] = ("marketing", "sales")
    # Consent purposes remembered per customer (the oldest change is forgotten beyond).
    max_consent_purposes: int = Field(default=32, ge=1)
