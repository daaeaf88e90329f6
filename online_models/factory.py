"""Binary classifiers for churn, by name.

Each entry of :data:`CLASSIFIERS` builds a fresh, seeded River classifier that
takes the plain ``dict`` features of :mod:`online_models.features` and answers
``predict_proba_one(x) -> {False: p0, True: p1}``.

``logreg`` (the default)
    ``StandardScaler | LogisticRegression``: cheap (a few microseconds to
    predict and to learn), well calibrated, and its weights can be read.
``hoeffding``
    a Hoeffding tree with naive-Bayes-adaptive leaves.
``arf``
    an adaptive random forest (10 trees, each with its own drift detector):
    the most accurate on non-linear concepts and about 50x slower.
``naive_bayes``
    Gaussian naive Bayes: a cheap baseline.

>>> model = make_classifier("logreg", seed=42)
>>> print(model)
StandardScaler | LogisticRegression
>>> model.learn_one({"x": 1.0}, True)
>>> model.predict_proba_one({"x": 1.0})[True] > 0.5
True
>>> make_classifier("svm", seed=1)
Traceback (most recent call last):
...
ValueError: unknown classifier 'svm'; choose one of: arf, hoeffding, logreg, naive_bayes
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import forest, linear_model, naive_bayes, optim, preprocessing, tree
from river.optim import schedulers

Classifier = Any  # a river.base.Classifier (River ships no type information)


def _logreg(seed: int) -> Classifier:
    del seed  # deterministic without one: zero initial weights, no shuffling
    # A step size decaying as 1/sqrt(t): large enough to learn from the first labels,
    # small enough later not to chase the noise of single examples.
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(schedulers.InverseScaling(0.05, power=0.5)),
        intercept_lr=schedulers.InverseScaling(0.05, power=0.5),
    )


def _hoeffding(seed: int) -> Classifier:
    del seed  # deterministic without one
    return tree.HoeffdingTreeClassifier(grace_period=100, delta=1e-5, max_depth=12)


def _arf(seed: int) -> Classifier:
    return forest.ARFClassifier(n_models=10, seed=seed)


def _naive_bayes(seed: int) -> Classifier:
    del seed
    return naive_bayes.GaussianNB()  # type: ignore[no-untyped-call]


CLASSIFIERS: dict[str, Callable[[int], Classifier]] = {
    "arf": _arf,
    "hoeffding": _hoeffding,
    "logreg": _logreg,
    "naive_bayes": _naive_bayes,
}


def make_classifier(name: str, seed: int) -> Classifier:
    """Return a new classifier called ``name`` (see :data:`CLASSIFIERS`), seeded with ``seed``."""
    try:
        build = CLASSIFIERS[name]
    except KeyError:
        msg = f"unknown classifier {name!r}; choose one of: {', '.join(sorted(CLASSIFIERS))}"
        raise ValueError(msg) from None
    return build(seed)
