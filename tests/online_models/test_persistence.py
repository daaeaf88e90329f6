"""Export / import: identical predictions after a round trip; refusal of other files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from online_models.churn import ChurnEngine
from online_models.features import CustomerFeatures
from online_models.persistence import (
    FORMAT_VERSION,
    ModelFileError,
    export_model,
    import_model,
    read_header,
)
from online_models.segmentation import Segmenter
from online_models.settings import ModelSettings
from tests.online_models.conftest import ev


def trained() -> tuple[ChurnEngine, list[dict[str, float]]]:
    engine = ChurnEngine(ModelSettings(churn={"horizon_days": 2, "label_grace_hours": 0}))
    vectors = []
    for day in range(20):
        for c in range(10):
            f = CustomerFeatures()
            bad = c % 3 == 0
            tp = "call_center.cancellations" if bad else "web.home"
            engine.step(f"c{c}", ev(f"{day}-{c}", day + c / 100, touchpoint=tp), f, None, None)
            if bad and day % 4 == 3:
                engine.step(
                    f"c{c}", ev(f"x{day}-{c}", day + 0.5, "cx.account.closed"), f, None, None
                )
            vectors.append(f.vector(f.last_ms or 0))
    assert engine.learnt > 50
    return engine, vectors


def test_round_trip_gives_identical_predictions_and_state(tmp_path: Path) -> None:
    engine, vectors = trained()
    path = tmp_path / "models" / "churn.model"
    header = export_model(engine, path)
    assert header == read_header(path)
    assert (header["version"], header["kind"], header["model"]) == (
        FORMAT_VERSION,
        "ChurnEngine",
        "logreg",
    )
    loaded = import_model(path, ChurnEngine)
    assert [loaded.predict(x) for x in vectors] == [engine.predict(x) for x in vectors]
    assert loaded.metrics() == engine.metrics()
    # and both go on learning alike
    for engine_ in (engine, loaded):
        engine_.observe("c1", ev("later", 60))
    assert [loaded.predict(x) for x in vectors] == [engine.predict(x) for x in vectors]


def test_a_listener_is_not_exported(tmp_path: Path) -> None:
    engine = ChurnEngine(on_label=print)
    export_model(engine, tmp_path / "m")
    assert import_model(tmp_path / "m", ChurnEngine).on_label is None
    assert engine.on_label is print


def test_other_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "churn.model"
    export_model(ChurnEngine(), path)
    data = path.read_bytes()
    head, payload = data.split(b"\n", 1)
    header = orjson.loads(head)
    header["version"] = FORMAT_VERSION + 1
    path.write_bytes(orjson.dumps(header) + b"\n" + payload)
    with pytest.raises(ModelFileError, match=r"format version 4; this cxstream reads version 3"):
        import_model(path, ChurnEngine)


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-model"
    path.write_bytes(b"\x80\x05 some pickle")
    with pytest.raises(ModelFileError, match="not a cxstream model file"):
        import_model(path, ChurnEngine)


def test_the_wrong_kind_and_damage_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "seg.model"
    export_model(Segmenter(), path)
    with pytest.raises(ModelFileError, match="holds a 'Segmenter', not a 'ChurnEngine'"):
        import_model(path, ChurnEngine)
    assert isinstance(import_model(path, Segmenter), Segmenter)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="damaged"):
        import_model(path, Segmenter)
