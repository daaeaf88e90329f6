"""Generic checks over every configured classifier (River's own checks where they apply).

``river.checks.check_estimator`` cannot run here: its datasets come from
scikit-learn, which cxstream does not install. The checks it would run for a
classifier are plain functions of ``(model, dataset)``, so they run on a small
churn-shaped stream of our own feature vectors instead.
"""

from __future__ import annotations

import math
import random
import typing
from collections.abc import Callable
from typing import Any

import pytest
from river.checks import clf, common

from online_models.factory import CLASSIFIERS, make_classifier
from online_models.features import CustomerFeatures
from online_models.settings import ChurnSettings

KEYS = list(CustomerFeatures().vector(0))

CHECKS: list[Callable[[Any, Any], None]] = [
    common.check_learn_one,
    common.check_pickling,
    common.check_predict_one_pure,
    common.check_predict_one_before_any_learn,
    common.check_shuffle_features_no_impact,
    common.check_emerging_features,
    common.check_disappearing_features,
    common.check_no_state_aliasing_with_input,
    common.check_clone_is_independent,
    common.check_seeding_is_idempotent,
    clf.check_predict_proba_one,
    clf.check_predict_proba_one_binary,
    clf.check_classifier_tracks_seen_labels,
]


def applies(check: Callable[[Any, Any], None], name: str) -> bool:
    """As river.checks.yield_checks: the binary-keys check only for binary-only models."""
    model = make_classifier(name, seed=1)
    if check is clf.check_predict_proba_one_binary:
        return not model._multiclass
    if check is common.check_seeding_is_idempotent:
        return bool(model._is_stochastic)
    return True


CASES = [(name, check) for name in sorted(CLASSIFIERS) for check in CHECKS if applies(check, name)]


def stream(n: int = 150, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    """Feature vectors whose label depends on exits and sentiment."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {k: 0.0 for k in KEYS}
        x["exits"] = rng.random() * 2 if rng.random() < 0.3 else 0.0
        x["sent_mean"] = rng.uniform(-1, 1)
        x["activity"] = rng.random() * 3
        x["stage_" + rng.choice(["usage", "service", "loyalty"])] = 1.0
        z = -2 + 2.5 * x["exits"] - 1.5 * x["sent_mean"]
        out.append((x, rng.random() < 1 / (1 + math.exp(-z))))
    return out


def test_the_settings_name_every_classifier() -> None:
    names = typing.get_args(typing.get_type_hints(ChurnSettings)["model"])
    assert set(names) == set(CLASSIFIERS)


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="arf, hoeffding, logreg, naive_bayes"):
        make_classifier("svm", seed=1)


@pytest.mark.parametrize(("name", "check"), CASES, ids=[f"{n}-{c.__name__}" for n, c in CASES])
def test_river_checks(name: str, check: Callable[[Any, Any], None]) -> None:
    check(make_classifier(name, seed=1), stream())


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_learns_and_predicts_a_distribution(name: str) -> None:
    model = make_classifier(name, seed=1)
    data = stream(400, seed=2)
    for x, y in data[:300]:
        model.learn_one(x, y)
    scores = []
    for x, y in data[300:]:
        proba = model.predict_proba_one(x)
        assert set(proba) == {False, True}
        assert all(0.0 <= p <= 1.0 for p in proba.values())
        assert sum(proba.values()) == pytest.approx(1.0)
        scores.append((proba[True], y))
    # multiclass-capable models answer only for labels seen, so both must be
    assert len({y for _, y in data[:300]}) == 2
    # better than chance on an easy concept
    pos = [p for p, y in scores if y]
    neg = [p for p, y in scores if not y]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    assert wins / (len(pos) * len(neg)) > 0.6


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_same_seed_same_predictions(name: str) -> None:
    a, b = make_classifier(name, seed=7), make_classifier(name, seed=7)
    for x, y in stream(200, seed=3):
        assert a.predict_proba_one(x) == b.predict_proba_one(x)
        a.learn_one(x, y)
        b.learn_one(x, y)
