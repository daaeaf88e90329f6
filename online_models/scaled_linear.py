"""A cheaper ``predict_proba_one`` for River's ``StandardScaler | LogisticRegression``.

River's pipeline standardises the 40-odd churn features one by one in Python,
``(x - mean) / var ** 0.5`` (0 where the variance is 0), then hands the dict to
the logistic regression. The scaler only changes when the model learns (a
label), far less often than it predicts, so :class:`ScaledLinear` keeps each
feature's mean and ``var ** 0.5`` (computed by Python's ``**``, as River does)
in numpy arrays, refreshed after a learn, and standardises with one numpy
subtraction and one division: each element is one IEEE operation on the same
operands, so the same floats. The standardised dict then goes to River's own
``LogisticRegression.predict_proba_one``: the probability is River's, bit for bit.

Anything else (another classifier, a scaler with a window or without ``with_std``)
goes through the model's own ``predict_proba_one``.

>>> from online_models.factory import make_classifier
>>> model = make_classifier("logreg", 1)
>>> for i in range(20):
...     model.learn_one({"a": float(i % 3), "b": 1.0, "c": i / 7}, bool(i % 2))
>>> fast = ScaledLinear()
>>> x = {"a": 2.0, "b": 1.0, "c": 0.5}
>>> fast.proba(model, x, version=20) == model.predict_proba_one(x)[True]
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import linear_model, preprocessing

# A linear pipeline has two steps: the scaler, then the linear model.
_SCALER_AND_LINEAR = 2


def _parts(model: Any) -> tuple[Any, Any] | None:
    """Return the scaler and the logistic regression of ``model``, if it is that pipeline."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != _SCALER_AND_LINEAR:
        return None
    scaler, linear = steps.values()
    if (
        type(scaler) is not preprocessing.StandardScaler
        or not scaler.with_std
        or scaler.window_size is not None
        or type(linear) is not linear_model.LogisticRegression
    ):
        return None
    return scaler, linear


class ScaledLinear:
    """Standardisation figures of one pipeline, as of one ``version`` of it (derived state)."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.keys: tuple[str, ...] = ()
        self.means: NDArray[np.float64] = np.zeros(0)
        self.stds: NDArray[np.float64] = np.zeros(0)
        self.flat: NDArray[np.bool_] = np.zeros(0, dtype=bool)  # variance 0: the feature is 0
        self.parts: tuple[Any, Any] | None = None

    def proba(self, model: Any, x: dict[str, float], version: int) -> float | None:
        """Return ``model.predict_proba_one(x).get(True)``.

        ``version`` must change whenever the model learns (the caller counts its learns).
        """
        keys = tuple(x)
        if version != self.version or keys != self.keys:
            self._refresh(model, keys, version)
        # inside river.compose.learn_during_predict() the scaler learns as it predicts
        if self.parts is None or model._LEARN_UNSUPERVISED_DURING_PREDICT:  # noqa: SLF001
            p = model.predict_proba_one(x).get(True)
            return None if p is None else float(p)
        z = (np.array(list(x.values()), dtype=np.float64) - self.means) / self.stds
        z[self.flat] = 0.0
        proba = self.parts[1].predict_proba_one(dict(zip(keys, z.tolist(), strict=True)))
        return float(proba[True])

    def _refresh(self, model: Any, keys: tuple[str, ...], version: int) -> None:
        self.version, self.keys, self.parts = version, keys, _parts(model)
        if self.parts is None:
            return
        scaler = self.parts[0]
        # the same reads as StandardScaler.transform_one (a defaultdict fills in unseen keys)
        means, variances = scaler.means, scaler.vars
        centre, spread = [], []
        for key in keys:
            v = variances[key]
            centre.append(means[key] if v else 0.0)
            spread.append(v**0.5 if v else 1.0)
        self.means = np.array(centre, dtype=np.float64)
        self.stds = np.array(spread, dtype=np.float64)
        self.flat = np.array([not variances[key] for key in keys], dtype=bool)
