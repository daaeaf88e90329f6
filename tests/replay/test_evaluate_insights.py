from __future__ import annotations

from typing import Any

from replay.evaluate import spearman
from replay.evaluate_insights import insights_scores
from replay.world.insights import insights_truth


def record(start: str, end: str, answers: int, weights: dict[str, float]) -> dict[str, Any]:
    return {
        "touchpoint": None,
        "window_start": start,
        "window_end": end,
        "answers": answers,
        "drivers": [{"driver": n, "weight": w} for n, w in weights.items()],
    }


def pocket(kind: str, first: str, second: str) -> dict[str, Any]:
    return {"kind": "nps_pocket", "evidence": {"kind": kind, "cell": [first, second]}}


def test_recovered_drivers_and_pockets_against_the_planted_ones() -> None:
    truth = insights_truth()  # sla_breached -2.5, open_case -1.5, assisted -0.8
    weekly = [
        record(
            "2026-03-02T00:00:00+00:00",
            "2026-03-09T00:00:00+00:00",
            100,
            {"sla_breached": 0.05, "open_case": 0.08, "assisted": 0.01, "tenure_days": 0.0},
        ),
        record(
            "2026-03-09T00:00:00+00:00",
            "2026-03-16T00:00:00+00:00",
            300,
            {"sla_breached": 0.09, "open_case": 0.04, "assisted": 0.02, "tenure_days": 0.03},
        ),
    ]
    daily = record(
        "2026-03-02T00:00:00+00:00",
        "2026-03-03T00:00:00+00:00",
        50,
        {"sla_breached": 0.0, "open_case": 0.0, "assisted": 0.9, "tenure_days": 0.0},
    )
    alerts = [
        pocket("stage x channel", "service", "chat"),
        pocket("stage x channel", "service", "chat"),  # another window: the same cell
        pocket("stage x channel", "usage", "web"),
        pocket("segment x touchpoint", "seg-1", "web.checkout"),  # not a planted kind
        {"kind": "detractor", "evidence": {}},
    ]
    scores = insights_scores([*weekly, daily], alerts, truth, spearman)
    drivers = scores["drivers"]
    # weekly records only, answer-weighted: sla (5+27)/400, open (8+12)/400, assisted 7/400
    assert drivers["recovered"]["sla_breached"] == 0.08
    assert drivers["recovered"]["open_case"] == 0.05
    assert drivers["spearman"] == 1.0
    assert drivers["top"] == ["sla_breached", "open_case", "tenure_days"]
    assert drivers["planted_in_top"] == ["open_case", "sla_breached"]
    assert scores["pockets"] | {"found_cells": None} == {
        "planted": 1,
        "found": 2,
        "precision": 0.5,
        "recall": 1.0,
        "found_cells": None,
    }


def test_no_records_no_scores() -> None:
    scores = insights_scores([], [], insights_truth(), spearman)
    assert scores["drivers"]["spearman"] is None
    assert scores["pockets"]["precision"] is None and scores["pockets"]["recall"] == 0.0
