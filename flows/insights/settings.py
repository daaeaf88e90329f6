"""Settings of the insights step (``CX_INSIGHTS__*``) and the list of drivers it knows.

The driver vector of a survey answer (:mod:`flows.insights.drivers`), each value
as of the moment before the answer:

==================  ==========================================================
``tenure_days``     ``log1p`` of the days since the customer was first seen
``ltv_band``        lifetime spend: 0 none, 1 under 100, 2 under 500, 3 500 or more
``open_case``       1 with a service case open, else 0
``case_age_hours``  ``log1p`` of the hours the oldest open case has been open
``sla_breached``    1 if a case breached its SLA in the last ``sla_days`` days
``contacts_7d``     contacts (events on ``contact_channels``) in the last 7 days (at most 64)
``last_sentiment``  sentiment of the customer's last interaction that had one (0: none)
``churn_risk``      the churn model's score at the answer (score step)
``assisted``        1 when the surveyed interaction's channel is in ``assisted_channels``
``service_stage``   1 when the journey stage is ``service``
==================  ==========================================================

The categorical parts of the vector (channel, stage, segment, touchpoint) are
carried with it: the pockets cross them and the touchpoint keys the series.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

DriverName = Literal[
    "tenure_days",
    "ltv_band",
    "open_case",
    "case_age_hours",
    "sla_breached",
    "contacts_7d",
    "last_sentiment",
    "churn_risk",
    "assisted",
    "service_stage",
]
"""Every driver of the vector: the one list, in the order the journey step writes them."""
ALL_DRIVERS: tuple[DriverName, ...] = get_args(DriverName)


class InsightsSettings(BaseModel):
    """Key drivers and pockets per event-time window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    window_lengths_seconds: tuple[int, ...] = (86400, 7 * 86400)
    allowed_lateness_seconds: int = Field(default=600, ge=0)
    drivers: tuple[DriverName, ...] = ALL_DRIVERS
    # a series (touchpoint or overall) with fewer answers gets no weights
    min_answers: int = Field(default=30, ge=3)
    bootstrap: int = Field(default=200, ge=20)
    reservoir_rows: int = Field(default=1000, ge=10)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 2026
    pocket_min_answers: int = Field(default=20, ge=2)
    pocket_fdr: float = Field(default=0.05, gt=0, lt=1)
    sla_days: float = Field(default=7.0, gt=0)
    contact_channels: tuple[str, ...] = ("call_center", "chat", "email", "social", "service_desk")
    assisted_channels: tuple[str, ...] = ("call_center", "chat", "store", "service_desk")
    # the decision summaries (flows.insights.decisions): windows as the NPS step's
    decision_window_lengths_seconds: tuple[int, ...] = (86400,)
