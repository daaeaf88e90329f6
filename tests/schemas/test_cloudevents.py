"""The CloudEvents types of the outputs: one per kind, in the headers and the exported schemas."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.cloudevents import OUTPUT_TYPES
from schemas.export import export_schemas
from schemas.outputs import OUTPUT_MODELS


def test_every_exported_output_schema_names_its_cloudevents_type(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    for name in OUTPUT_MODELS:
        note = orjson.loads((tmp_path / f"{name}.schema.json").read_bytes())["x-cloudevents"]
        assert note["specversion"] == "1.0" and note["source"] == "/cxstream"
        assert set(note["type"]) <= set(OUTPUT_TYPES.values()) and note["type"]
    envelope = orjson.loads((tmp_path / "interaction_event.schema.json").read_bytes())
    assert len(envelope["x-cloudevents"]["modes"]) == 2


def test_each_output_type_is_its_own() -> None:
    assert len(set(OUTPUT_TYPES.values())) == len(OUTPUT_TYPES)
