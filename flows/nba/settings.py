"""Settings of the next-best-action step (``CX_NBA__*``).

The catalogue of actions and rules is a TOML file a CX team edits
(:mod:`flows.nba.catalogue`); these settings say where it is and hold the
contact policy, which is a promise to customers rather than a campaign rule.

>>> s = NbaSettings()
>>> s.catalogue is None, s.top_n, s.max_per_day, s.max_per_week
(True, 2, 2, 5)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.outputs import ActionClass


class NbaSettings(BaseModel):
    """Where the action catalogue is, and the contact policy."""

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
