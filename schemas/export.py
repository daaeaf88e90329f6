"""JSON Schema export of every model in and out."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas.envelope import InteractionEvent
from schemas.outputs import OUTPUT_MODELS


def all_models() -> dict[str, type[BaseModel]]:
    """Map each schema name to its model, input first."""
    return {"interaction_event": InteractionEvent, **OUTPUT_MODELS}


def export_schemas(out_dir: Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per model into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in all_models().items():
        path = out_dir / f"{name}.schema.json"
        schema = model.model_json_schema()
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
