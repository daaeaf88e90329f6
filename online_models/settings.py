"""Every knob of the online models, as one frozen settings object.

:class:`ModelSettings` is meant to hang off ``flows.settings.Settings`` (for
example as ``models``), so that ``CX_MODELS__CHURN__HORIZON_DAYS=14`` reaches
:class:`ChurnSettings.horizon_days`. It is read once at the entrypoint and
passed down; nothing here reads the environment.

>>> s = ModelSettings()
>>> s.churn.model, s.churn.horizon_days, s.churn.risk_threshold, s.segmentation.k
('logreg', 30.0, 0.7, 4)
>>> ModelSettings(churn={"model": "hoeffding"}).churn.model
'hoeffding'
>>> ModelSettings(churn={"horizon_days": 0})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelSettings
...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.vocabulary import CHANNELS, STAGES

# The classifiers online_models.factory builds (named here so settings do not import River).
ModelName = Literal["logreg", "hoeffding", "arf", "naive_bayes"]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSettings(_Section):
    """How :class:`~online_models.features.CustomerFeatures` reads events."""

    # Decayed counters (channels, complaints, exit signals...) halve over this much event time.
    half_life_days: float = Field(default=14.0, gt=0)
    sentiment_alpha: float = Field(default=0.3, gt=0, le=1)  # EWMA of sentiment
    # A contact on a service channel with sentiment at or below this is a complaint.
    complaint_threshold: float = Field(default=-0.3, ge=-1, le=1)
    service_channels: tuple[str, ...] = ("call_center", "chat", "email", "social", "service_desk")
    sla_hours: dict[str, float] = Field(default_factory=lambda: {"P1": 4.0, "P2": 24.0, "P3": 72.0})
    default_sla_hours: float = Field(default=72.0, gt=0)
    priority_attribute: str = "priority"
    max_open_cases: int = Field(default=16, ge=1)
    # Exit signals: a touchpoint ending in one of these, a page containing one of these,
    # or a consent change that withdraws anything.
    exit_touchpoint_suffixes: tuple[str, ...] = (".cancellations",)
    exit_pages: tuple[str, ...] = ("/account/close", "/cancel")
    channels: tuple[str, ...] = CHANNELS  # others count as "other"
    # Identifier types only an account holder's events carry (a cookie or a device does not).
    account_identifiers: frozenset[str] = frozenset({"crm_id", "email", "loyalty_id", "phone"})
    stages: tuple[str, ...] = STAGES


class ChurnSettings(_Section):
    """The churn engine: model, labels, warm-up, alerts, evaluation."""

    model: ModelName = "logreg"  # see online_models.factory
    horizon_days: float = Field(default=30.0, gt=0)  # label: churned within this after scoring
    churn_types: tuple[str, ...] = ("cx.account.closed",)
    # At most one kept (labelled later) snapshot per customer per this much event time.
    snapshot_interval_hours: float = Field(default=24.0, gt=0)
    # A negative label waits this much event time past the horizon, for late churn events.
    label_grace_hours: float = Field(default=24.0, ge=0)
    # Learn a positive when the churn arrives, or (like a negative) when its horizon passes.
    learn_positives: Literal["at_churn", "at_horizon"] = "at_horizon"
    max_pending_per_customer: int = Field(default=64, ge=1)
    max_pending: int = Field(default=2_000_000, ge=1)
    # No churn_risk alerts, and no evaluation, before this many labels (and per class).
    warmup_labels: int = Field(default=1000, ge=0)
    warmup_per_class: int = Field(default=50, ge=0)
    risk_threshold: float = Field(default=0.7, gt=0, lt=1)
    # After an alert the customer re-arms once the score falls below threshold - rearm.
    risk_rearm: float = Field(default=0.1, ge=0, lt=1)
    risk_due_hours: float = Field(default=48.0, gt=0)
    drift_delta: float = Field(default=0.002, gt=0, lt=1)  # ADWIN confidence
    drift_batch: int = Field(default=50, ge=1)  # ADWIN reads mean errors of this many labels
    auc_thresholds: int = Field(default=1000, ge=2)  # ROC AUC resolution (thresholds)
    calibration_bins: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _interval_within_horizon(self) -> ChurnSettings:
        if self.snapshot_interval_hours > self.horizon_days * 24:
            msg = "snapshot_interval_hours must not exceed the horizon (horizon_days * 24)"
            raise ValueError(msg)
        return self


class PropensitySettings(_Section):
    """Next-category propensity."""

    half_life_days: float = Field(default=30.0, gt=0)  # of a customer's category interest
    max_categories: int = Field(default=32, ge=1)  # per customer; the weakest is forgotten
    top_k: int = Field(default=3, ge=1)
    # product / sku -> category; unmapped products are their own category.
    category_map: dict[str, str] = Field(default_factory=dict)
    browse_weight: float = Field(default=1.0, ge=0)
    purchase_weight: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.5, gt=0)  # additive smoothing of the naive Bayes


class SegmentationSettings(_Section):
    """Online k-means over a few standardised features."""

    k: int = Field(default=4, ge=1)
    # How far a centre moves towards each point (river.cluster.KMeans ``halflife``).
    step: float = Field(default=0.02, gt=0, le=1)
    learn_interval_hours: float = Field(default=24.0, ge=0)  # per customer
    describe_z: float = Field(default=0.5, gt=0)  # |centre| above this is "high"/"low"


class AcceptanceSettings(_Section):
    """The adaptive acceptance model of NBAs (:mod:`online_models.acceptance`)."""

    enabled: bool = True  # off: the fixed rules (propensity x value x lever) alone
    prior_weight: float = Field(default=10.0, gt=0)  # the prior is worth this many answers
    max_pending: int = Field(default=100_000, ge=1)  # impressions waiting for an answer
    max_answered: int = Field(default=100_000, ge=1)  # NBA ids remembered as answered
    max_customers: int = Field(default=50_000, ge=1)  # customers' last segment kept
    health_min_responses: int = Field(default=200, ge=1)
    auc_stuck_margin: float = Field(default=0.02, ge=0, lt=0.5)
    responses_drop: float = Field(default=0.2, gt=0, lt=1)  # week on week
    min_weekly_responses: int = Field(default=20, ge=1)


class ModelSettings(_Section):
    """All the online-model settings (one section of the flow's settings)."""

    seed: int = 42
    features: FeatureSettings = FeatureSettings()
    churn: ChurnSettings = ChurnSettings()
    propensity: PropensitySettings = PropensitySettings()
    segmentation: SegmentationSettings = SegmentationSettings()
    acceptance: AcceptanceSettings = AcceptanceSettings()
    # Where the flow exports its trained models (online_models.persistence); None: never.
    export_path: str | None = None
    # At most once per this much wall time (at a Bytewax snapshot), and at end of input.
    export_interval_seconds: float = Field(default=300.0, ge=0)
    # A file exported before: the models start from it (warm start) instead of untrained.
    import_path: str | None = None
