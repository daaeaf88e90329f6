"""Next-category propensity on crafted streams."""

from __future__ import annotations

import pickle
import random
from typing import Any

from online_models.propensity import CategoryInterest, PropensityModel, categories
from online_models.settings import ModelSettings, PropensitySettings
from tests.online_models.conftest import ev

CONF = PropensitySettings(category_map={"nimbus-speaker": "audio", "echo-earbuds": "audio"})


def test_categories_from_attributes_items_and_pages() -> None:
    assert categories(ev(1, 0, attributes={"category": "garden"}), CONF) == ["garden"]
    assert categories(ev(2, 0, attributes={"page": "/products/nimbus-speaker"}), CONF) == ["audio"]
    items = [{"sku": "echo-earbuds"}, {"sku": "lumen-lamp"}, {"category": "audio"}, "junk"]
    assert categories(ev(3, 0, attributes={"items": items}), CONF) == ["audio", "lumen-lamp"]
    assert categories(ev(4, 0, attributes={"link": "/products/vega-stick?utm=x"}), CONF) == [
        "vega-stick"
    ]
    assert categories(ev(5, 0, attributes={"page": "/search?q=lamp"}), CONF) == []


def test_learns_what_browsers_of_a_category_buy() -> None:
    model = PropensityModel(ModelSettings(propensity={"top_k": 2}))
    rng = random.Random(1)
    n = 0
    for person in range(300):
        interest = CategoryInterest()
        liked = rng.choice(["audio", "garden", "kitchen", "books"])
        for day in range(3):
            n += 1
            model.observe(interest, ev(n, person + day / 10, attributes={"category": liked}))
        n += 1
        bought = liked if rng.random() < 0.8 else rng.choice(["audio", "garden"])
        model.observe(
            interest, ev(n, person + 0.5, "cx.order.placed", attributes={"category": bought})
        )
    fan = CategoryInterest()
    model.observe(fan, ev("fan", 400, attributes={"category": "books"}))
    top = model.top_k(fan, fan.last_ms or 0)
    assert top[0][0] == "books" and len(top) == 2
    assert 0 < top[1][1] <= top[0][1] <= 1
    assert model.metrics()["hit_rate"] > 0.6


def test_interest_is_bounded_fades_and_pickles() -> None:
    conf = PropensitySettings(max_categories=3, half_life_days=1)
    interest = CategoryInterest()
    for i in range(10):
        interest.add(i * 1000, [f"c{i}"], 1.0, conf)
    assert len(interest.weights) == 3
    later = interest.vector(9000 + 86_400_000, conf.half_life_days)
    assert all(abs(w - 0.5 * interest.weights[c]) < 1e-9 for c, w in later.items())
    assert pickle.loads(pickle.dumps(interest)) == interest


def test_without_any_purchase_the_customers_own_interest() -> None:
    model, ann = PropensityModel(), CategoryInterest()
    model.observe(ann, ev(1, 0, attributes={"category": "a"}))
    model.observe(ann, ev(2, 0.1, attributes={"category": "a"}))
    model.observe(ann, ev(3, 0.2, attributes={"category": "b"}))
    assert [c for c, _ in model.top_k(ann, ann.last_ms or 0)] == ["a", "b"]


def test_the_inlined_likelihood_and_softmax_match_rivers_exactly() -> None:
    import random

    from river import naive_bayes

    from online_models.propensity import _joint_log_likelihood, _softmax

    rng = random.Random(3)
    model: Any = naive_bayes.MultinomialNB(alpha=0.5)  # type: ignore[no-untyped-call]
    cats = [f"c{i}" for i in range(12)]
    for _ in range(300):
        x = {c: rng.random() * 3 for c in rng.sample(cats, 3)}
        model.learn_one(x, rng.choice(cats))
    for _ in range(50):
        x = {c: rng.random() for c in rng.sample(cats, 4)}
        assert _joint_log_likelihood(model, x) == model.joint_log_likelihood(x)
        ours, theirs = _softmax(model.joint_log_likelihood(x)), model.predict_proba_one(x)
        assert ours.keys() == theirs.keys()
        assert all(abs(ours[c] - theirs[c]) < 1e-12 for c in ours)


def test_the_cached_likelihood_terms_equal_the_inlined_ones_as_the_model_learns() -> None:
    import random

    from online_models.propensity import _joint_log_likelihood

    rng = random.Random(5)
    model = PropensityModel(ModelSettings(propensity={"alpha": 0.5}))
    cats = [f"c{i}" for i in range(12)]
    for step in range(400):
        x = {c: rng.random() * 3 for c in rng.sample(cats[: 4 + step // 40], 3)}
        if rng.random() < 0.3:  # learns: a class's terms change, new features now and then
            model.learn_purchase(x, [rng.choice(cats)])
        known = model.model.feature_counts
        seen = {c: w for c, w in x.items() if c in known}
        if model.model.class_counts:
            cached = model._terms.joint_log_likelihood(model.model, seen)
            assert cached == _joint_log_likelihood(model.model, seen)
    restored = pickle.loads(pickle.dumps(model))
    assert "_terms" not in pickle.loads(pickle.dumps(model)).__getstate__()
    assert restored.top_k_vector(x) == model.top_k_vector(x)
