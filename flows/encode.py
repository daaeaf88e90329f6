"""encode: output models -> (kind, Emitted) with their Kafka key, id and JSON bytes."""

from __future__ import annotations

from pydantic import BaseModel

from schemas.ids import output_id
from schemas.outputs import (
    Alert,
    DeadLetter,
    IdentityMerge,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)
from schemas.records import Emitted

Output = NextBestAction | Alert | NpsWindow | IdentityMerge | ProfileSnapshot | DeadLetter


def _route(model: BaseModel) -> tuple[str, str, str]:
    """(kind, key, id) of an output: keys keep one customer's (or touchpoint's) outputs in order."""
    match model:
        case ProfileSnapshot():
            return (
                "profiles",
                model.customer_id,
                output_id("profile", model.customer_id, model.version),
            )
        case NextBestAction():
            return "nba", model.customer_id, model.id
        case Alert():
            return "alerts", model.customer_id or model.touchpoint or model.kind, model.id
        case NpsWindow():
            return "nps", model.touchpoint, model.id
        case IdentityMerge():
            return "identity", model.survivor_id, model.id
        case DeadLetter():
            return "dlq", model.id, model.id
    msg = f"no output route for {type(model).__name__}"
    raise TypeError(msg)


def encode(model: Output) -> tuple[str, Emitted]:
    """Serialise one output; the kind doubles as the stream key for file sinks."""
    kind, key, out_id = _route(model)
    headers: tuple[tuple[str, bytes], ...] = (("cx-id", out_id.encode()),)
    if isinstance(model, DeadLetter):
        headers += (("cx-reason", model.reason.encode()),)
    return kind, Emitted(kind, key, out_id, model.model_dump_json().encode(), headers)
