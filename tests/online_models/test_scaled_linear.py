"""The numpy standardisation gives River's churn probability bit for bit."""

from __future__ import annotations

import pickle
import random

from online_models.churn import ChurnEngine
from online_models.factory import make_classifier
from online_models.scaled_linear import ScaledLinear

KEYS = [f"f{i}" for i in range(40)]


def _x(rng: random.Random) -> dict[str, float]:
    # indicators, a feature that never varies (variance 0) and spread-out figures
    return {
        k: rng.choice([0.0, 1.0]) if i % 5 == 0 else 0.0 if i == 3 else rng.gauss(0, 3)
        for i, k in enumerate(KEYS)
    }


def test_equals_rivers_pipeline_exactly_as_it_learns() -> None:
    rng = random.Random(9)
    model, fast, version = make_classifier("logreg", 1), ScaledLinear(), 0
    for _ in range(3000):
        x = _x(rng)
        assert fast.proba(model, x, version) == model.predict_proba_one(x)[True]
        if rng.random() < 0.4:
            model.learn_one(x, rng.random() < 0.3)
            version += 1


def test_other_models_go_through_their_own_predict() -> None:
    rng = random.Random(2)
    model, fast = make_classifier("hoeffding", 1), ScaledLinear()
    for v in range(200):
        x = _x(rng)
        assert fast.proba(model, x, v) == model.predict_proba_one(x).get(True)
        model.learn_one(x, v % 3 == 0)


def test_the_engine_predicts_the_same_after_a_pickle_round_trip() -> None:
    rng = random.Random(4)
    engine = ChurnEngine()
    for _ in range(300):
        engine.model.learn_one(_x(rng), rng.random() < 0.5)
        engine.learnt += 1  # what ChurnEngine._learn counts
    x = _x(rng)
    copy = pickle.loads(pickle.dumps(engine))
    assert copy.predict(x) == engine.predict(x) == engine.model.predict_proba_one(x)[True]
