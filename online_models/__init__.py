"""River online models: churn, next-category propensity, segments.

The flow's journey step (keyed by customer) keeps, per customer, a
:class:`CustomerFeatures` (and a :class:`CategoryInterest` for propensity); its
score step (``flows.steps.score``, keyed by input partition: a *lane*) holds ONE
:class:`ChurnEngine` (and one :class:`PropensityModel`, one :class:`Segmenter`)
per lane and feeds them the lane's events in input order. The models' own
per-event API, for use outside the flow::

    score, alerts = churn.step(customer_id, event, state.features, sentiment, stage)
    segment = segmenter.assign(state.features, event.epoch_ms)    # "seg-2"
    propensity.observe(state.interest, event)
    top = propensity.top_k(state.interest, event.epoch_ms)          # when needed

and the split the flow uses (the per-customer part in the journey step, the
shared part in the score step): ``features.update`` / ``features.vector``, then
``churn.observe``, ``churn.score``, ``churn.risk_check``;
``segmenter.assign_vector``; ``fold_interest``, ``propensity.learn_purchase``,
``propensity.top_k_vector``.

River models are global models: a lane's engines learn from every customer of
that lane, whatever the number of worker processes. They are Bytewax state of
the score step, so a restored run continues with them as they were at the
snapshot; :func:`export_model` / :func:`import_model` move them between runs.

Everything runs on event time and is seeded: the same events in the same
order give the same scores, alerts and figures.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from online_models.churn import ChurnEngine, top_factors
    from online_models.evaluation import BinnedROCAUC, Calibration, Prequential, progressive
    from online_models.factory import CLASSIFIERS, make_classifier
    from online_models.features import CustomerFeatures
    from online_models.labels import DelayedLabels, Labelled, Snapshot
    from online_models.persistence import ModelFileError, export_model, import_model, read_header
    from online_models.propensity import CategoryInterest, PropensityModel, categories
    from online_models.segmentation import Segmenter
    from online_models.settings import (
        ChurnSettings,
        FeatureSettings,
        ModelSettings,
        PropensitySettings,
        SegmentationSettings,
    )

# Re-exports are resolved on first use: importing River takes most of a second, and
# the settings (read by every command, `cxstream schema export` included) need none of it.
_HOMES = {
    "churn": ("ChurnEngine", "top_factors"),
    "evaluation": ("BinnedROCAUC", "Calibration", "Prequential", "progressive"),
    "factory": ("CLASSIFIERS", "make_classifier"),
    "features": ("CustomerFeatures",),
    "labels": ("DelayedLabels", "Labelled", "Snapshot"),
    "persistence": ("ModelFileError", "export_model", "import_model", "read_header"),
    "propensity": ("CategoryInterest", "PropensityModel", "categories"),
    "segmentation": ("Segmenter",),
    "settings": (
        "ChurnSettings",
        "FeatureSettings",
        "ModelSettings",
        "PropensitySettings",
        "SegmentationSettings",
    ),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        msg = f"module 'online_models' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(import_module(f"online_models.{module}"), name)


__all__ = [
    "CLASSIFIERS",
    "BinnedROCAUC",
    "Calibration",
    "CategoryInterest",
    "ChurnEngine",
    "ChurnSettings",
    "CustomerFeatures",
    "DelayedLabels",
    "FeatureSettings",
    "Labelled",
    "ModelFileError",
    "ModelSettings",
    "Prequential",
    "PropensityModel",
    "PropensitySettings",
    "SegmentationSettings",
    "Segmenter",
    "Snapshot",
    "categories",
    "export_model",
    "import_model",
    "make_classifier",
    "progressive",
    "read_header",
    "top_factors",
]
