"""Prequential figures against hand computations, River's own metrics, and drift."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable, Iterable
from typing import Any, cast

import pytest
from river import evaluate, linear_model, metrics

from online_models.evaluation import BinnedROCAUC, Calibration, Prequential, progressive, spread

STREAM = [(True, 0.8), (False, 0.3), (True, 0.6), (False, 0.1), (False, 0.7), (True, 0.45)]


def hand_auc(stream: list[tuple[bool, float]]) -> float:
    pos = [p for y, p in stream if y]
    neg = [p for y, p in stream if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_figures_match_a_hand_computation() -> None:
    evaluation = Prequential(bins=2)
    for y, p in STREAM:
        evaluation.update(y, p)
    report = evaluation.report()
    log_loss = -sum(math.log(p if y else 1 - p) for y, p in STREAM) / len(STREAM)
    # bins [0, .5): p .3 .1 .45 with y F F T; [.5, 1]: p .8 .6 .7 with y T T F
    ece = 3 / 6 * abs(0.85 / 3 - 1 / 3) + 3 / 6 * abs(2.1 / 3 - 2 / 3)
    assert report["n"] == 6 and report["positives"] == 3
    assert hand_auc(STREAM) == pytest.approx(7 / 9)
    assert report["auc"] == pytest.approx(7 / 9, abs=1e-4)  # the report rounds to 4 places
    assert report["log_loss"] == pytest.approx(log_loss, abs=1e-4)
    assert report["ece"] == pytest.approx(ece, abs=1e-6)
    assert [b["n"] for b in report["calibration"]] == [3, 3]


def test_auc_is_none_until_both_classes_were_seen() -> None:
    evaluation = Prequential()
    evaluation.update(True, 0.9)
    assert evaluation.report()["auc"] is None


@pytest.mark.parametrize("n_thresholds", [2, 10, 57, 200])
def test_binned_auc_is_rivers_roc_auc(n_thresholds: int) -> None:
    rng = random.Random(n_thresholds)
    ours = BinnedROCAUC(n_thresholds)
    theirs: Any = metrics.ROCAUC(n_thresholds)  # type: ignore[no-untyped-call]
    for _ in range(500):
        y, p = rng.random() < 0.3, rng.choice([rng.random(), round(rng.random(), 1), 0.0, 1.0])
        ours.update(y, p)
        theirs.update(y, p)
    assert ours.get() == pytest.approx(theirs.get(), abs=1e-12)
    ours.revert(True, 0.5)
    theirs.revert(True, 0.5)
    assert ours.get() == pytest.approx(theirs.get(), abs=1e-12)


def test_spread_keeps_the_order_and_so_the_auc() -> None:
    rng = random.Random(1)
    stream = [(rng.random() < 0.1, rng.random() ** 4) for _ in range(300)]
    ps = sorted(p for _, p in stream)
    assert [spread(p) for p in ps] == sorted(spread(p) for p in ps)
    evaluation = Prequential(auc_thresholds=20_000)
    for y, p in stream:
        evaluation.update(y, p)
    assert evaluation.report()["auc"] == pytest.approx(hand_auc(stream), abs=2e-3)


def test_progressive_is_rivers_progressive_validation() -> None:
    rng = random.Random(3)
    data = [({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}, rng.random() < 0.4) for _ in range(300)]
    ours = progressive(linear_model.LogisticRegression(), data).report()
    # River annotates the stream as dict[Hashable, Any] features, which a dict[str, float]
    # is not (dict is invariant); any mapping of features is what it reads.
    stream = cast(Iterable[tuple[dict[Hashable, Any], Any]], data)
    log_loss: Any = metrics.LogLoss()  # type: ignore[no-untyped-call]
    theirs = evaluate.progressive_val_score(stream, linear_model.LogisticRegression(), log_loss)
    assert ours["log_loss"] == pytest.approx(theirs.get(), abs=1e-4)


def test_calibration_of_a_calibrated_stream_is_near_zero() -> None:
    rng = random.Random(5)
    cal = Calibration(bins=10)
    for _ in range(20_000):
        p = rng.random()
        cal.update(rng.random() < p, p)
    assert cal.get() < 0.02


def test_drift_on_an_abrupt_change_not_on_a_stationary_stream() -> None:
    rng = random.Random(7)
    stationary, changed = Prequential(drift_batch=1), Prequential(drift_batch=1)
    alarms_stationary = alarms_changed = 0
    for i in range(6000):
        alarms_stationary += stationary.update(rng.random() < 0.1, 0.1)
        rate = 0.1 if i < 3000 else 0.6  # the world changes; the model does not
        alarms_changed += changed.update(rng.random() < rate, 0.1)
    assert alarms_stationary == 0
    assert alarms_changed >= 1


def test_a_model_that_gets_better_is_no_drift() -> None:
    rng = random.Random(9)
    evaluation = Prequential(drift_batch=20)
    alarms = 0
    for i in range(6000):
        y = rng.random() < 0.5
        p = 0.5 if i < 3000 else (0.95 if y else 0.05)
        alarms += evaluation.update(y, p)
    assert alarms == 0
