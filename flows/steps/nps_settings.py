"""Settings of the NPS step (``CX_NPS__*``): windows, lateness, revisions, alert thresholds.

The engine that uses them is :mod:`flows.steps.nps`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
