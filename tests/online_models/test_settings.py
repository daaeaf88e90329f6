"""Model settings: frozen, strict, validated."""

from __future__ import annotations

import pydantic
import pytest

from online_models.settings import ModelSettings


def test_frozen_and_strict() -> None:
    s = ModelSettings()
    with pytest.raises(pydantic.ValidationError):
        s.seed = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        ModelSettings(churn={"horizon": 3})
    with pytest.raises(pydantic.ValidationError, match="literal"):
        ModelSettings(churn={"model": "svm"})


def test_the_snapshot_interval_fits_in_the_horizon() -> None:
    with pytest.raises(pydantic.ValidationError, match="snapshot_interval_hours"):
        ModelSettings(churn={"horizon_days": 1, "snapshot_interval_hours": 48})


def test_nested_values_from_plain_data() -> None:
    s = ModelSettings.model_validate(
        {"seed": 7, "churn": {"churn_types": ["cx.account.closed", "cx.contract.ended"]}}
    )
    assert s.churn.churn_types == ("cx.account.closed", "cx.contract.ended")
    assert s.model_dump()["features"]["sla_hours"]["P1"] == 4.0
