"""Online customer segments: k-means over a few standardised features.

One :class:`Segmenter` per worker reads five figures of a customer's
:class:`~online_models.features.CustomerFeatures` vector: ``value`` (spend),
``activity``, ``sentiment`` (mean), ``service`` (complaints, open cases and
friction) and ``tenure``. They are standardised with running means and
variances (``river.preprocessing.StandardScaler``) and clustered with a
seeded ``river.cluster.KMeans``. A segment is labelled ``seg-<i>`` and
described from its centre, in standard deviations: the (at most two) figures
furthest from the average, e.g. ``"high value, low sentiment"``; a centre
near the average on every figure is ``"typical"``.

Each customer is learnt from at most once per ``learn_interval_hours`` of
event time (the last time is kept in ``CustomerFeatures.segment_ms``), so
busy customers do not pull the centres their way. Centres keep moving
slowly (``step``), so a label's meaning can drift; :meth:`Segmenter.segments`
says what each means now.

>>> from online_models.features import CustomerFeatures
>>> seg = Segmenter()
>>> label = seg.assign(CustomerFeatures(), now_ms=0)
>>> label.startswith("seg-"), sorted(seg.segments())[:1]
(True, ['seg-0'])
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from river import cluster, preprocessing

from online_models.features import CustomerFeatures
from online_models.settings import HOUR_MS, ModelSettings, SegmentationSettings

FIGURES: dict[str, str] = {  # figure -> how a description names it
    "value": "value",
    "activity": "activity",
    "sentiment": "sentiment",
    "service": "service load",
    "tenure": "tenure",
}


def figures(x: dict[str, float]) -> dict[str, float]:
    """Return the segmentation figures of a churn feature vector."""
    return {
        "value": x.get("spend", 0.0),
        "activity": x.get("activity", 0.0),
        "sentiment": x.get("sent_mean", 0.0),
        "service": x.get("complaints", 0.0) + x.get("open_cases", 0.0) + x.get("friction", 0.0),
        "tenure": x.get("tenure_days", 0.0),
    }


_FIGURE_NAMES = ("value", "activity", "sentiment", "service", "tenure")


class _KMeans(cluster.KMeans):
    """River's KMeans with a distance summed in a fixed key order.

    River iterates a *set* of feature names there, and its centres are
    defaultdicts that draw a random start value on first access: with Python's
    per-process string hashing, the draws (and so the segments) differed between
    processes. Here every centre is filled in a fixed order at construction and
    distances are summed in that order, so a seed gives the same segments anywhere.
    """

    def __init__(self, names: tuple[str, ...], **params: Any) -> None:
        super().__init__(**params)
        self.names = names
        for center in self.centers.values():
            for name in names:
                _ = center[name]

    def predict_one(self, x: dict[Hashable, Any]) -> int:
        def distance(c: int) -> float:
            center = self.centers[c]
            return float(sum(abs(center[k] - x.get(k, 0.0)) ** self.p for k in self.names))

        return int(min(self.centers, key=distance))


def learn_due(last_ms: int | None, now_ms: int, conf: SegmentationSettings) -> bool:
    """Tell whether a customer last learnt from at ``last_ms`` is due to be learnt from."""
    return last_ms is None or now_ms - last_ms >= conf.learn_interval_hours * HOUR_MS


class Segmenter:
    """Online k-means segments shared by all customers of one worker."""

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings = settings or ModelSettings()
        conf = settings.segmentation
        self.scaler: Any = preprocessing.StandardScaler()
        self.model: Any = _KMeans(
            _FIGURE_NAMES, n_clusters=conf.k, halflife=conf.step, sigma=1.0, seed=settings.seed
        )
        self.learnt = 0

    def assign(self, features: CustomerFeatures, now_ms: int) -> str:
        """Return the customer's segment label (learning from them when their interval is up)."""
        learn = learn_due(features.segment_ms, now_ms, self.settings.segmentation)
        label = self.assign_vector(features.vector(now_ms, self.settings.features), learn)
        if learn:
            features.segment_ms = now_ms
        features.segment = label
        return label

    def assign_vector(self, x: dict[str, float], learn: bool) -> str:
        """Return the segment label of the feature vector ``x``; ``learn``: learn from it first."""
        f = figures(x)
        if learn:
            self.scaler.learn_one(f)
            index = self.model.learn_predict_one(self.scaler.transform_one(f))
            self.learnt += 1
        else:
            index = self.model.predict_one(self.scaler.transform_one(f))
        return f"seg-{index}"

    def describe(self, index: int) -> str:
        """Return a short description of segment ``index`` from its centre."""
        threshold = self.settings.segmentation.describe_z
        centre = self.model.centers[index]
        far = sorted(
            ((abs(centre.get(f, 0.0)), f) for f in FIGURES if abs(centre.get(f, 0.0)) > threshold),
            reverse=True,
        )[:2]
        if not far:
            return "typical"
        return ", ".join(f"{'high' if centre[f] > 0 else 'low'} {FIGURES[f]}" for _, f in far)

    def segments(self) -> dict[str, str]:
        """Every segment label with its current description."""
        return {f"seg-{i}": self.describe(i) for i in sorted(self.model.centers)}

    def metrics(self) -> dict[str, Any]:
        return {"k": self.settings.segmentation.k, "learnt": self.learnt, **self.segments()}
