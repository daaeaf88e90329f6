"""encode: output models -> (kind, Emitted) with their Kafka key, id and JSON bytes."""

from __future__ import annotations

from flows import metrics
from schemas.ids import output_id
from schemas.outputs import (
    Alert,
    DeadLetter,
    IdentityErasure,
    IdentityMerge,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)
from schemas.records import Emitted

Output = (
    NextBestAction
    | Alert
    | NpsWindow
    | IdentityMerge
    | IdentityErasure
    | ProfileSnapshot
    | DeadLetter
)
Encoded = tuple[str, Emitted]


def _route(model: Output) -> tuple[str, str, str]:  # noqa: PLR0911 (one case per output type)
    """(kind, key, id): keys keep one customer's (or touchpoint's) outputs in order."""
    match model:
        case ProfileSnapshot():
            out_id = output_id("profile", model.customer_id, model.version)
            return "profiles", model.customer_id, out_id
        case NextBestAction():
            return "nba", model.customer_id, model.id
        case Alert():
            return "alerts", model.customer_id or model.touchpoint or model.kind, model.id
        case NpsWindow():
            return "nps", model.touchpoint, model.id
        case IdentityMerge():
            return "identity", model.survivor_id, model.id
        case IdentityErasure():
            return "identity", model.customer_id, model.id
        case DeadLetter():
            return "dlq", model.id, model.id


def encode(model: Output) -> list[Encoded]:
    """Serialise one output; the kind doubles as the stream key for file sinks.

    An erasure also sends a tombstone (no value) for the customer to the
    compacted profiles topic, so the profile disappears there too; so does a
    merge for the merged-away id, whose events now count in the survivor's profile.
    """
    kind, key, out_id = _route(model)
    if isinstance(model, Alert):
        metrics.count_alert(model.kind)
    headers: tuple[tuple[str, bytes], ...] = (("cx-id", out_id.encode()),)
    if isinstance(model, DeadLetter):
        headers += (("cx-reason", model.reason.encode()),)
    encoded = [(kind, Emitted(kind, key, out_id, model.model_dump_json().encode(), headers))]
    if isinstance(model, IdentityErasure):
        encoded.append(("profiles", Emitted("profiles", key, out_id, None, headers)))
    elif isinstance(model, IdentityMerge):
        encoded.append(("profiles", Emitted("profiles", model.merged_id, out_id, None, headers)))
    return encoded
