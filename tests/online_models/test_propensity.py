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


def test_the_likelihood_table_and_softmax_match_rivers_exactly() -> None:
    import random

    from river import naive_bayes

    from online_models.nb_table import LikelihoodTable
    from online_models.propensity import _softmax_list

    rng = random.Random(3)
    model: Any = naive_bayes.MultinomialNB(alpha=0.5)  # type: ignore[no-untyped-call]
    table = LikelihoodTable()
    cats = [f"c{i}" for i in range(12)]
    for step in range(300):
        # the vocabulary grows and new classes appear as it learns
        pool = cats[: 2 + step // 30]
        x = {c: rng.random() * 3 for c in rng.sample(pool, min(3, len(pool)))}
        y = rng.choice(pool)
        model.learn_one(x, y)
        table.learnt_one(model, x, y)
        if step % 7 == 0:
            known = list(model.feature_counts)
            q = {c: rng.random() for c in rng.sample(known, min(4, len(known)))}
            assert table.joint(model, q).tolist() == list(model.joint_log_likelihood(q).values())
    for _ in range(50):
        x = {c: rng.random() for c in rng.sample(list(model.feature_counts), 4)}
        ll = model.joint_log_likelihood(x)
        assert table.joint(model, x).tolist() == list(ll.values())
        ours = dict(zip(ll, _softmax_list(list(ll.values())), strict=True))
        theirs = model.predict_proba_one(x)
        assert ours.keys() == theirs.keys()
        assert all(abs(ours[c] - theirs[c]) < 1e-12 for c in ours)
    fresh = LikelihoodTable()  # rebuilt from the model alone (as after a restore)
    assert fresh.joint(model, x).tolist() == table.joint(model, x).tolist()


def test_top_k_survives_a_pickle_round_trip_exactly() -> None:
    model = PropensityModel()
    rng = random.Random(5)
    for n in range(200):
        interest = CategoryInterest()
        for cat in rng.sample(["a", "b", "c", "d", "e"], 2):
            model.observe(interest, ev(n * 3, n, attributes={"category": cat}))
        model.observe(
            interest, ev(n * 3 + 2, n + 0.5, "cx.order.placed", attributes={"category": "a"})
        )
    x = {"a": 0.5, "c": 1.5, "zz": 2.0}
    restored = pickle.loads(pickle.dumps(model))
    assert restored.top_k_vector(x) == model.top_k_vector(x)
    assert "_table" not in pickle.loads(pickle.dumps(model)).__getstate__()


def test_the_best_alone_is_the_head_of_the_full_ranking() -> None:
    model = PropensityModel()
    rng = random.Random(8)
    cats = ["a", "b", "c", "d", "e", "f"]
    for n in range(150):
        interest = CategoryInterest()
        for cat in rng.sample(cats, 2):
            model.observe(interest, ev(n * 3, n, attributes={"category": cat}))
        bought = rng.choice(cats[:3])
        model.observe(
            interest, ev(n * 3 + 2, n + 0.5, "cx.order.placed", attributes={"category": bought})
        )
        x = {c: rng.random() for c in rng.sample(cats, 3)}
        assert model.top_k_vector(x, k=1) == model.top_k_vector(x, k=len(cats))[:1]
    tied = {"b": 1.0, "a": 1.0}  # equal probabilities: the first by name
    assert PropensityModel().top_k_vector(tied, k=1) == [("a", 0.5)]
