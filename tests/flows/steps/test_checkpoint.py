"""Model checkpoints through the flow: export at end of input, warm start from the file."""

from __future__ import annotations

from pathlib import Path

from flows.app.offline import run_offline
from flows.settings import Settings
from online_models.bundle import load_models
from online_models.settings import ModelSettings
from tests.replay.test_golden import LOG


def test_a_run_exports_its_models_and_the_next_one_starts_from_them(tmp_path: Path) -> None:
    path = tmp_path / "models.bin"
    settings = Settings(models=ModelSettings(export_path=str(path)))
    run_offline(settings, [LOG], tmp_path / "first")
    assert path.is_file()  # exported at end of input
    trained = load_models(ModelSettings(import_path=str(path)))
    assert trained.churn.scored > 0 and trained.propensity.metrics()["categories"] > 0

    # A warm start: the second run's models go on from the first run's.
    again = Settings(models=ModelSettings(import_path=str(path), export_path=str(path)))
    run_offline(again, [LOG], tmp_path / "second")
    assert (
        load_models(ModelSettings(import_path=str(path))).churn.scored == 2 * trained.churn.scored
    )
