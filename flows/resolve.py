"""resolve: identifiers -> customer_id.

PLACEHOLDER until issue 3 (identity resolution against the profile store):
the customer is named after the event's highest-priority identifier, with no
stitching or merging across events. The batch interface is the real one: the
store-backed resolver makes one Redis script call per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flows import metrics
from schemas.envelope import InteractionEvent
from schemas.identifiers import KNOWN_IDENTIFIER_TYPES
from schemas.ids import output_id
from schemas.outputs import IdentityMerge

_PRIORITY = {id_type: rank for rank, id_type in enumerate(KNOWN_IDENTIFIER_TYPES)}


@dataclass(frozen=True, slots=True)
class Resolved:
    """An event with the customer it belongs to (None: no identifiers, anonymous)."""

    customer_id: str | None
    event: InteractionEvent
    merges: tuple[IdentityMerge, ...] = field(default_factory=tuple)


class Resolver(Protocol):
    def resolve_batch(self, events: list[InteractionEvent]) -> list[Resolved]: ...


def primary_identifier(identifiers: dict[str, str]) -> tuple[str, str] | None:
    """The identifier that names a customer: known types by priority, then others by name.

    >>> primary_identifier({"cookie_id": "c1", "email": "a@b.co"})
    ('email', 'a@b.co')
    >>> primary_identifier({}) is None
    True
    """
    if not identifiers:
        return None
    id_type = min(identifiers, key=lambda t: (_PRIORITY.get(t, len(_PRIORITY)), t))
    return id_type, identifiers[id_type]


class PrimaryIdentifierResolver:
    """Deterministic, stateless stand-in for the identity graph (see module docstring)."""

    def resolve_batch(self, events: list[InteractionEvent]) -> list[Resolved]:
        out = []
        for event in events:
            primary = primary_identifier(event.data.identifiers)
            if primary is None:
                metrics.ANONYMOUS.inc()
                out.append(Resolved(None, event))
            else:
                out.append(Resolved(output_id("cust", *primary), event))
        return out
