"""respond: agent responses to NBAs (``cx.nba.response``), routed to their customer.

A response (:class:`schemas.responses.NbaResponse`, published by ``cxstream serve``)
reads like any event up to resolve. It names no identifiers but the customer the NBA
went to; this step, right after resolve, routes it through the store's canonical id
(a merged-away id maps to its survivor), so the decide step of that customer, keyed
by the same canonical id and so on the same worker as its decisions, joins it to the
NBA (:mod:`flows.nba.responses`). The response skips the journey (it is no customer
interaction) and goes through the score step in lane order, where the adaptive
acceptance model learns from it (:mod:`online_models.acceptance`).

Never dropped: a response whose data is not a valid response is an ``invalid_event``
dead letter, one naming an unknown or erased customer an ``unknown_customer`` one
(the decide step adds ``unknown_nba`` and ``response_conflict``). A dead-lettered
response still reaches the score step without a customer, so the lane's order holds.
The dead letter carries the message as it came: the decode step hands a response on
as a :class:`ResponseEvent`, which keeps its :class:`~schemas.records.RawMessage`
(bytes, key, headers, Kafka coordinates; see :func:`keep_message`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydantic import Field, ValidationError

from flows.lanes import NO_LANE
from flows.records import Resolved
from flows.steps.decode import dead_letter
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import DeadLetter, DeadLetterReason
from schemas.records import RawMessage
from schemas.responses import RESPONSE_TYPE, NbaResponse
from state.store import ProfileStore

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Responded:
    """A response routed to its (canonical) customer, with the segment the model used."""

    resolved: Resolved
    response: NbaResponse
    segment: str = ""

    @property
    def customer_id(self) -> str:
        assert self.resolved.customer_id is not None  # noqa: S101 (for mypy: routed => known)
        return self.resolved.customer_id


@dataclass(frozen=True, slots=True)
class ResponseOutcome:
    """What the decide step made of a response: joined to its NBA or not (a dead letter).

    For the decision summaries (:mod:`flows.steps.summary`), in the response's lane.
    """

    resolved: Resolved
    response: NbaResponse
    joined: bool


class ResponseEvent(InteractionEvent):
    """A ``cx.nba.response`` event that keeps the message it was decoded from.

    ``message`` travels with the event to the steps that may dead-letter it (routing
    here, the join in the decide step); it is never part of the event's JSON.
    """

    message: RawMessage | None = Field(default=None, exclude=True, repr=False)


def keep_message(
    raw: RawMessage, decoded: InteractionEvent | DeadLetter
) -> InteractionEvent | DeadLetter:
    """Return ``decoded``, as a :class:`ResponseEvent` holding ``raw`` when it is a response.

    Other events pass as they are (no copy, nothing more to carry).
    """
    if not isinstance(decoded, InteractionEvent) or decoded.type != RESPONSE_TYPE:
        return decoded
    return ResponseEvent.model_construct(decoded.model_fields_set, **dict(decoded), message=raw)


def is_response(resolved: Resolved) -> bool:
    """Whether ``resolved`` is an agent's response to an NBA."""
    return resolved.event.type == RESPONSE_TYPE


def not_response(resolved: Resolved) -> bool:
    """Whether ``resolved`` is anything but a response (the branch's trues)."""
    return resolved.event.type != RESPONSE_TYPE


def parse_response(event: InteractionEvent) -> NbaResponse:
    """Read the response of a ``cx.nba.response`` event (raises ValidationError)."""
    data = event.data
    return NbaResponse.from_data({**(data.model_extra or {}), "channel": data.channel}, event.time)


def response_dead_letter(resolved: Resolved, reason: DeadLetterReason, error: str) -> DeadLetter:
    """Return the dead letter of a response event: its message as it came, and ``reason``.

    Its id is derived from the event id and ``reason`` (the same response is one dead
    letter, wherever it was read from). An event without its message (built in a
    test, not decoded) is carried as its JSON, with its lane as topic and partition.
    """
    event = resolved.event
    message = event.message if isinstance(event, ResponseEvent) else None
    if message is not None:
        letter = dead_letter(message, reason, error[:MAX_ERROR_CHARS])
        return letter.model_copy(update={"id": output_id("dlq", event.id, reason)})
    body = event.model_dump_json(exclude_none=True).encode()
    topic, partition = None, None
    if resolved.lane != NO_LANE:
        topic, _, part = resolved.lane.rpartition(":")
        partition = int(part) if part.isdigit() else None
    return DeadLetter(
        id=output_id("dlq", event.id, reason),
        reason=reason,
        error=error[:MAX_ERROR_CHARS],
        topic=topic,
        partition=partition,
        original_b64=base64.b64encode(body).decode(),
        original_size=len(body),
    )


class ResponseRouter:
    """The routing of responses to their canonical customer, over one profile store."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def route_batch(self, items: Sequence[Resolved]) -> list[Resolved | DeadLetter]:
        """Each response addressed to its survivor, or without customer and a dead letter."""
        out: list[Resolved | DeadLetter] = []
        for resolved in items:
            try:
                response = parse_response(resolved.event)
            except ValidationError as exc:
                error = f"not a valid {RESPONSE_TYPE}: {exc.errors()[0]['msg']}"
                dead = response_dead_letter(resolved, "invalid_event", error)
                out += [replace(resolved, customer_id=None), dead]
                continue
            canonical = self.store.canonical(response.customer_id)
            if not self.store.identifiers(canonical):  # unknown, or erased
                error = "the response names an unknown or erased customer"
                dead = response_dead_letter(resolved, "unknown_customer", error)
                out += [replace(resolved, customer_id=None), dead]
                continue
            out.append(replace(resolved, customer_id=canonical))
        return out
