"""JSON Schema export of every model in and out."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas.cloudevents import OUTPUT_SOURCE, OUTPUT_TYPES, SPECVERSION
from schemas.envelope import InteractionEvent
from schemas.outputs import OUTPUT_MODELS

#: The CloudEvents types each output schema's messages carry in ``ce_type``.
_CE_TYPES: dict[str, list[str]] = {
    "nba": [OUTPUT_TYPES["nba"]],
    "alerts": [OUTPUT_TYPES["alerts"]],
    "nps": [OUTPUT_TYPES["nps"]],
    "identity": [OUTPUT_TYPES["identity"]],
    "identity_erasure": [OUTPUT_TYPES["identity_erasure"]],
    "profiles": [OUTPUT_TYPES["profiles"], OUTPUT_TYPES["profiles_tombstone"]],
    "households": [OUTPUT_TYPES["households"], OUTPUT_TYPES["households_tombstone"]],
    "dlq": [OUTPUT_TYPES["dlq"]],
    "insights": [OUTPUT_TYPES["insights"]],
    "decisions": [OUTPUT_TYPES["decisions"]],
}


def cloudevents_note(name: str) -> dict[str, object]:
    """Return how messages of the schema ``name`` travel as CloudEvents (``x-cloudevents``)."""
    if name == "interaction_event":
        return {
            "specversion": SPECVERSION,
            "modes": ["structured (content-type application/cloudevents+json)", "binary (ce_*)"],
        }
    return {
        "specversion": SPECVERSION,
        "mode": "binary",
        "type": _CE_TYPES.get(name, [f"cx.{name}"]),
        "source": OUTPUT_SOURCE,
        "datacontenttype": "application/json",
    }


def all_models() -> dict[str, type[BaseModel]]:
    """Map each schema name to its model, input first."""
    return {"interaction_event": InteractionEvent, **OUTPUT_MODELS}


def export_schemas(out_dir: Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per model into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in all_models().items():
        path = out_dir / f"{name}.schema.json"
        schema = {**model.model_json_schema(), "x-cloudevents": cloudevents_note(name)}
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
