"""Prequential evaluation: each prediction is scored against its label before the model learns it.

:class:`Prequential` keeps the figures River would give from
``river.evaluate.progressive_val_score`` (``river.metrics.ROCAUC`` and
``river.metrics.LogLoss``), a calibration summary (:class:`Calibration`: mean
predicted against observed rate per probability bin, and the expected
calibration error), and an ADWIN drift detector (``river.drift.ADWIN``) on the
absolute errors ``|y - p|``, averaged over batches of ``drift_batch`` labels:
ADWIN assumes independent observations, and churn labels are not (one churn
labels a month of one customer's snapshots positive); fed single errors it
raised false alarms on stationary test streams, fed batch means it did not.
Only a *rise* in the error counts as drift: a model that gets better also
changes its error stream, and that is no news for anybody.

River's ``ROCAUC`` integrates the ROC curve over ``n_thresholds`` equally
spaced thresholds on [0, 1]. Churn probabilities crowd near zero, so the
probability goes in through :func:`spread`, a monotone map onto [0, 1] that is
linear in the log-odds; the ROC curve, and so the AUC, of a monotone
transform of the scores is the same, and the thresholds now cover the range
the scores really use. River's ``update`` touches one confusion matrix per
threshold (about 45 us at 100 thresholds, more than predicting and learning
together); :class:`BinnedROCAUC` is the same metric (a subclass, giving the
same value) kept as a histogram over the thresholds, so an update costs one
bisection and the resolution can be fine.

>>> from river import linear_model
>>> stream = [({"x": 1.0}, True), ({"x": -1.0}, False), ({"x": 2.0}, True), ({"x": -2.0}, False)]
>>> report = progressive(linear_model.LogisticRegression(), stream).report()
>>> report["n"], report["auc"], report["log_loss"]
(4, 0.875, 0.6863)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from river import drift, metrics
from scipy import integrate  # type: ignore[import-untyped]

from schemas.ids import output_id
from schemas.outputs import Alert

LOGIT_RANGE = 10.0  # spread() maps log-odds -10..10 (p from 5e-5 to 0.99995) onto 0..1


def spread(p: float) -> float:
    """Map a probability monotonically onto [0, 1], linearly in its log-odds.

    >>> spread(0.5), spread(0.0), spread(1.0), round(spread(0.01), 4)
    (0.5, 0.0, 1.0, 0.2702)
    """
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    u = 0.5 + math.log(p / (1.0 - p)) / (2.0 * LOGIT_RANGE)
    return min(1.0, max(0.0, u))


class BinnedROCAUC(metrics.ROCAUC):
    """``river.metrics.ROCAUC`` with O(log n) updates: the same thresholds, the same value.

    A prediction above exactly ``k`` thresholds is counted in bin ``k``; the
    confusion matrix at each threshold is a suffix sum of the bins, computed
    when the value is asked for.

    >>> from river import metrics
    >>> y_true, y_pred = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    >>> ours, river_s = BinnedROCAUC(n_thresholds=20), metrics.ROCAUC(n_thresholds=20)
    >>> for yt, yp in zip(y_true, y_pred):
    ...     ours.update(yt, yp)
    ...     river_s.update(yt, yp)
    >>> bool(ours.get() == river_s.get() == 0.75)
    True
    """

    def __init__(self, n_thresholds: int = 10, pos_val: Any = True) -> None:
        self.n_thresholds = n_thresholds
        self.pos_val = pos_val
        self.thresholds = [i / (n_thresholds - 1) for i in range(n_thresholds)]
        self.thresholds[0] -= 1e-7
        self.thresholds[-1] += 1e-7
        self._pos = [0.0] * (n_thresholds + 1)
        self._neg = [0.0] * (n_thresholds + 1)

    def update(self, y_true: Any, y_pred: Any, w: float = 1.0) -> None:
        p_true = y_pred.get(True, 0.0) if isinstance(y_pred, dict) else y_pred
        k = bisect.bisect_left(self.thresholds, p_true)  # thresholds strictly below p
        (self._pos if y_true == self.pos_val else self._neg)[k] += w

    def revert(self, y_true: Any, y_pred: Any, w: float = 1.0) -> None:
        self.update(y_true, y_pred, -w)

    def get(self) -> float:
        positives, negatives = sum(self._pos), sum(self._neg)
        tprs, fprs = [], []
        tp = fp = 0.0
        for i in range(self.n_thresholds - 1, -1, -1):  # predicted positive at i: bins > i
            tp += self._pos[i + 1]
            fp += self._neg[i + 1]
            tprs.append(tp / positives if positives else 0.0)
            fprs.append(fp / negatives if negatives else 0.0)
        tprs.reverse()
        fprs.reverse()
        return float(-integrate.trapezoid(x=fprs, y=tprs))


class Calibration:
    """Reliability bins of predicted probabilities, and the expected calibration error.

    >>> cal = Calibration(bins=2)
    >>> for y, p in [(False, 0.1), (True, 0.3), (True, 0.8), (True, 0.9)]:
    ...     cal.update(y, p)
    >>> cal.get()  # 2/4 * |0.2 - 0.5| + 2/4 * |0.85 - 1.0|
    0.225
    >>> cal.bins()[0]
    {'lower': 0.0, 'upper': 0.5, 'n': 2, 'mean_predicted': 0.2, 'observed_rate': 0.5}
    """

    def __init__(self, bins: int = 10) -> None:
        self.n_bins = bins
        self._n = [0] * bins
        self._p = [0.0] * bins
        self._y = [0] * bins

    def update(self, y_true: bool, y_pred: float) -> None:
        b = min(self.n_bins - 1, max(0, int(y_pred * self.n_bins)))
        self._n[b] += 1
        self._p[b] += y_pred
        self._y[b] += int(y_true)

    def get(self) -> float:
        """Return the expected calibration error.

        That is the mean |predicted - observed|, weighted by bin size.
        """
        total = sum(self._n)
        if not total:
            return 0.0
        gap = sum(abs(p - y) for n, p, y in zip(self._n, self._p, self._y, strict=True) if n)
        return round(gap / total, 6)

    def bins(self) -> list[dict[str, float]]:
        """One row per bin: bounds, count, mean predicted probability, observed rate."""
        rows: list[dict[str, float]] = []
        for b, (n, p, y) in enumerate(zip(self._n, self._p, self._y, strict=True)):
            rows.append(
                {
                    "lower": b / self.n_bins,
                    "upper": (b + 1) / self.n_bins,
                    "n": n,
                    "mean_predicted": round(p / n, 4) if n else 0.0,
                    "observed_rate": round(y / n, 4) if n else 0.0,
                }
            )
        return rows


class Prequential:
    """Running prequential figures of one binary classifier (see the module docstring)."""

    def __init__(
        self,
        auc_thresholds: int = 1000,
        bins: int = 10,
        drift_delta: float = 0.002,
        drift_batch: int = 50,
    ) -> None:
        self.auc_thresholds = auc_thresholds
        self.drift_delta = drift_delta
        self.drift_batch = drift_batch
        self._errors = 0.0
        self._batched = 0
        self.n = 0
        self.positives = 0
        self.drifts = 0
        self.auc: Any = BinnedROCAUC(n_thresholds=auc_thresholds)
        self.log_loss: Any = metrics.LogLoss()  # type: ignore[no-untyped-call]
        self.calibration = Calibration(bins)
        self.detector: Any = drift.ADWIN(delta=drift_delta)  # type: ignore[no-untyped-call]

    def update(self, y_true: bool, y_pred: float) -> bool:
        """Score one prediction made before its label was known; True if the error rose."""
        self.n += 1
        self.positives += int(y_true)
        self.auc.update(y_true, spread(y_pred))
        self.log_loss.update(y_true, y_pred)
        self.calibration.update(y_true, y_pred)
        self._errors += abs(float(y_true) - y_pred)
        self._batched += 1
        if self._batched < self.drift_batch:
            return False
        before = self.detector.estimation
        self.detector.update(self._errors / self._batched)
        self._errors, self._batched = 0.0, 0
        if self.detector.drift_detected and self.detector.estimation > before:
            self.drifts += 1
            return True
        return False

    def report(self) -> dict[str, Any]:
        """Return the figures as a plain dict (AUC None until both classes were seen)."""
        both = 0 < self.positives < self.n
        return {
            "n": self.n,
            "positives": self.positives,
            "auc": round(float(self.auc.get()), 4) if both else None,
            "log_loss": round(float(self.log_loss.get()), 4) if self.n else None,
            "ece": self.calibration.get() if self.n else None,
            "calibration": self.calibration.bins(),
            "drifts": self.drifts,
            "error_mean": round(float(self.detector.estimation), 4),
        }


def progressive(model: Any, stream: Iterable[tuple[dict[str, float], bool]]) -> Prequential:
    """Predict, score, then learn each ``(x, y)`` in turn (labels known at once)."""
    evaluation = Prequential()
    for x, y in stream:
        evaluation.update(y, float(model.predict_proba_one(x).get(True, 0.0)))
        model.learn_one(x, y)
    return evaluation


def drift_alert(
    event_id: str, time: datetime, report: dict[str, Any], model: str, due_hours: float = 24.0
) -> Alert:
    """Return the ``model_drift`` alert raised while processing event ``event_id``."""
    return Alert(
        id=output_id("alert", "model_drift", event_id),
        kind="model_drift",
        severity="medium",
        time=time,
        due_at=time + timedelta(hours=due_hours),
        message=f"churn model error rose (ADWIN): mean |y - p| now {report['error_mean']:.3f}",
        evidence={
            "event_ids": [event_id],
            "model": model,
            "evaluated": report["n"],
            "auc": report["auc"],
            "log_loss": report["log_loss"],
            "error_mean": report["error_mean"],
        },
    )
