"""A lane's model bundle: its online models, exported to a file, and warm starts from one.

The online models (churn, segmentation, propensity) of each lane are one
:class:`Models`, the score step's Bytewax state (:mod:`flows.steps.score`), so a
restored run has them as they were at the snapshot. Whoever builds or loads a
bundle passes the listener of the churn engine's labels (the flow's gauges) as a
callable: a listener is neither pickled nor exported, and this module knows
nothing of the flow. With ``CX_MODELS__EXPORT_PATH`` set, the score step also exports
them (:mod:`online_models.persistence`: a checked header, then a pickle) when
Bytewax snapshots it, at most once per ``export_interval_seconds`` of wall time,
and once more at the end of input. ``CX_MODELS__IMPORT_PATH`` loads such a
file at start: a restarted run continues from its last export, and a model trained
offline (``cxstream replay run`` with an export path) warm-starts ``cxstream run``.

With several lanes, each exports its own models to the same path (an atomic
rename: the file is always whole) and the last one wins; a warm start needs one,
and every new lane starts from it.
Checkpoint cadence is operational, so it runs on wall time; the models themselves
see event time only.

>>> import tempfile
>>> from online_models.settings import ModelSettings
>>> path = Path(tempfile.mkdtemp()) / "models.bin"
>>> ticks = iter([0.0, 10.0, 400.0, 500.0])
>>> settings = ModelSettings(export_path=str(path), export_interval_seconds=300)
>>> checkpoint = ModelCheckpoint(settings, clock=lambda: next(ticks))
>>> models = Models.build(settings)
>>> [checkpoint.maybe_export(models) for _ in range(3)]
[False, True, False]
>>> seen = []
>>> restored = load_models(ModelSettings(import_path=str(path)), listen=lambda churn: seen.append)
>>> type(restored.churn).__name__, restored.churn.on_label == seen.append
('ChurnEngine', True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from online_models.churn import ChurnEngine, LabelListener
from online_models.persistence import export_model, import_model
from online_models.propensity import PropensityModel
from online_models.segmentation import Segmenter
from online_models.settings import ModelSettings

log = logging.getLogger(__name__)

#: Makes the listener of a churn engine's labels (e.g. flows.steps.score.ModelGauges).
Listen = Callable[[ChurnEngine], LabelListener]


@dataclass(frozen=True)
class Models:
    """The online models of one lane, shared by its customers (see online_models)."""

    churn: ChurnEngine
    segments: Segmenter
    propensity: PropensityModel = field(default_factory=PropensityModel)

    @classmethod
    def build(cls, settings: ModelSettings, listen: Listen | None = None) -> Models:
        models = cls(ChurnEngine(settings), Segmenter(settings), PropensityModel(settings))
        models.listen(listen)
        return models

    def listen(self, listen: Listen | None) -> None:
        """Give the churn engine the listener ``listen`` makes for it (None: no listener)."""
        self.churn.on_label = listen(self.churn) if listen is not None else None

    @property
    def churn_ready(self) -> bool:
        """Whether churn scores may drive actions: the engine is past its warm-up."""
        return self.churn.warm


def load_models(settings: ModelSettings, listen: Listen | None = None) -> Models:
    """Return the models of a new lane: imported from ``import_path`` if set, else untrained.

    An imported file keeps the settings it was trained with.
    """
    if settings.import_path is None:
        return Models.build(settings, listen)
    models = import_model(settings.import_path, Models)
    models.listen(listen)  # a listener is not exported
    log.info("models warm-started from %s", settings.import_path)
    return models


class ModelCheckpoint:
    """Export a lane's models now and then, and at the end of input."""

    def __init__(
        self,
        settings: ModelSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.export_path is not None  # noqa: S101 (for mypy: built only when set)
        self.path = Path(settings.export_path)
        self.interval = settings.export_interval_seconds
        self.clock = clock
        self.last = clock()

    def maybe_export(self, models: Models) -> bool:
        """Export if the interval has passed since the last export; say whether it did."""
        now = self.clock()
        if now - self.last < self.interval:
            return False
        self.export(models)
        self.last = now
        return True

    def export(self, models: Models) -> None:
        export_model(models, self.path)
