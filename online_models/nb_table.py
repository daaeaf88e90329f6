"""The log-likelihood table of a River multinomial naive Bayes, kept between purchases.

``river.naive_bayes.MultinomialNB`` works out, for every prediction, one
``log((count(f, c) + alpha) / (total(c) + alpha * vocabulary))`` per feature
and class. Those terms change only when the model learns (a purchase), and
then only for the class bought (unless the vocabulary grew), while the model
is asked far more often than it learns. :class:`LikelihoodTable` keeps them in
a ``features x classes`` array, refreshed after each ``learn_one``, and answers
:meth:`LikelihoodTable.joint` with the same floats as summing the terms in
Python: every term is computed by :func:`math.log` from the same operands, and
the per-class sums are added in the feature order of ``x`` with plain float64
additions (numpy adds element-wise, one rounding per addition, as Python's
``sum`` does on 3.11). River stays the model: the table is derived state,
never pickled, and rebuilt from the model when it does not match it.

>>> from river import naive_bayes
>>> nb = naive_bayes.MultinomialNB(alpha=0.5)
>>> nb.learn_one({"audio": 1.0, "books": 0.5}, "audio")
>>> nb.learn_one({"books": 2.0}, "books")
>>> table = LikelihoodTable()
>>> x = {"books": 1.0, "audio": 0.25}
>>> table.joint(nb, x).tolist() == list(_reference(nb, x).values())
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _reference(model: Any, x: dict[str, float]) -> dict[str, float]:
    """River's joint log-likelihood, term by term (what the table must equal)."""
    alpha, fcs, totals = model.alpha, model.feature_counts, model.class_totals
    smoothing = alpha * len(fcs)
    total = sum(model.class_counts.values())
    return {
        c: math.log(n / total)
        + sum(
            freq * math.log((fcs.get(f, {}).get(c, 0.0) + alpha) / (totals[c] + smoothing))
            for f, freq in x.items()
        )
        for c, n in model.class_counts.items()
    }


class LikelihoodTable:
    """Per-feature, per-class log terms and class log priors of one MultinomialNB."""

    def __init__(self) -> None:
        self.classes: list[Any] = []
        self.rows: dict[str, int] = {}
        self.terms: NDArray[np.float64] = np.zeros((0, 0))
        self.priors: NDArray[np.float64] = np.zeros(0)
        self.learnt = -1  # the model's number of learnt examples when last synced

    def joint(self, model: Any, x: dict[str, float]) -> NDArray[np.float64]:
        """Return the joint log-likelihood per class (in ``classes`` order) of ``x``.

        Every feature of ``x`` must be in the model's vocabulary.
        """
        if self.learnt != model.class_counts.total():
            self.rebuild(model)
        rows, terms = self.rows, self.terms
        acc = np.zeros(len(self.classes))
        for f, freq in x.items():
            acc += freq * terms[rows[f]]
        return self.priors + acc

    def learnt_one(self, model: Any, x: dict[str, float], y: Any) -> None:
        """Bring the table up to date after ``model.learn_one(x, y)``."""
        if self.learnt + 1 != model.class_counts.total() or len(model.feature_counts) != len(
            self.rows
        ):
            self.rebuild(model)  # out of step, or the vocabulary grew: every term moved
            return
        if y not in self.classes:
            self.classes.append(y)
            self.terms = np.hstack([self.terms, np.zeros((len(self.rows), 1))])
        col = self.classes.index(y)
        alpha, totals = model.alpha, model.class_totals
        den = totals[y] + alpha * len(model.feature_counts)
        log = math.log
        self.terms[:, col] = [
            log((model.feature_counts[f].get(y, 0.0) + alpha) / den) for f in self.rows
        ]
        self._priors(model)
        self.learnt += 1

    def rebuild(self, model: Any) -> None:
        """Work every term out again from the model."""
        alpha, fcs, totals = model.alpha, model.feature_counts, model.class_totals
        smoothing = alpha * len(fcs)
        log = math.log
        self.classes = list(model.class_counts)
        self.rows = {f: i for i, f in enumerate(fcs)}
        columns = [(c, totals[c] + smoothing) for c in self.classes]
        self.terms = np.array(
            [[log((fcs[f].get(c, 0.0) + alpha) / den) for c, den in columns] for f in self.rows],
            dtype=np.float64,
        ).reshape(len(self.rows), len(self.classes))
        self._priors(model)
        self.learnt = model.class_counts.total()

    def _priors(self, model: Any) -> None:
        counts = model.class_counts
        total = sum(counts.values())
        log = math.log
        self.priors = np.array([log(counts[c] / total) for c in self.classes], dtype=np.float64)
