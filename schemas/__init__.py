"""Pydantic models of every event in and out of cxstream."""

from schemas.envelope import KNOWN_CHANNELS, CxData, InteractionEvent
from schemas.identifiers import IdentifierError, normalise_identifier
from schemas.ids import output_id
from schemas.outputs import (
    OUTPUT_MODELS,
    Alert,
    DeadLetter,
    IdentityErasure,
    IdentityMerge,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)

__all__ = [
    "KNOWN_CHANNELS",
    "OUTPUT_MODELS",
    "Alert",
    "CxData",
    "DeadLetter",
    "IdentifierError",
    "IdentityErasure",
    "IdentityMerge",
    "InteractionEvent",
    "NextBestAction",
    "NpsWindow",
    "ProfileSnapshot",
    "normalise_identifier",
    "output_id",
]
