"""River online models: churn, next-category propensity, segments.

The journey step (keyed by customer) keeps, per customer, a
:class:`CustomerFeatures` (and a :class:`CategoryInterest` for propensity);
per worker it shares ONE :class:`ChurnEngine` (and one
:class:`PropensityModel`, one :class:`Segmenter`) between all its customers.
Per event::

    score, alerts = churn.step(customer_id, event, state.features, sentiment, stage)
    segment = segmenter.assign(state.features, event.epoch_ms)    # "seg-2"
    propensity.observe(state.interest, event)
    top = propensity.top_k(state.interest, event.epoch_ms)          # when needed

River models are global models. With several worker processes (Bytewax
``-i``/``-a`` or ``bytewax.testing -p``) each process builds its own engines,
and each engine trains on its own share of the customers, as the flow
partitions them by customer id: N processes hold N models, each having seen
about 1/N of the labels, and each evaluates itself on its own share. Worker
*threads* of one process would share one engine object; prefer processes, as
the Bytewax notes do. The engines are not Bytewax state: they survive a
restart only through :func:`export_model` / :func:`import_model`.

Everything runs on event time and is seeded: the same events in the same
order give the same scores, alerts and figures.
"""

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
