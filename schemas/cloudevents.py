"""The CloudEvents Kafka protocol binding: content modes in, binary-mode headers out.

In: the mode of a message is read from its headers, as the binding says. A
``content-type`` that starts with ``application/cloudevents`` (any case) is
*structured* mode (the value is the whole event); otherwise a ``ce_specversion``
header means *binary* mode (attributes in ``ce_*`` headers, the value is ``data``);
a message with neither is read as today's structured JSON (*plain*).

>>> read_binding(()).mode, read_binding((("ce_specversion", b"1.0"),)).mode
('plain', 'binary')
>>> read_binding((("Content-Type", b"Application/CloudEvents+JSON; charset=UTF-8"),)).mode
'structured'
>>> try:  # doctest: +ELLIPSIS
...     read_binding((("ce_specversion", b"0.3"),))
... except BindingError as exc:
...     print(exc.reason, "-", exc)
unknown_specversion - ce_specversion is '0.3'; cxstream reads CloudEvents 1.0 ...

Out: every output message carries binary-mode headers (:func:`output_headers`),
with the record JSON as its value; :data:`OUTPUT_TYPES` names the ``ce_type`` of each
output kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel

from schemas.envelope import InteractionEvent
from schemas.outputs import (
    Alert,
    DeadLetter,
    DeadLetterReason,
    DecisionSummary,
    HouseholdSnapshot,
    IdentityErasure,
    IdentityMerge,
    KeyDrivers,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)

Headers = Sequence[tuple[str, bytes]]

SPECVERSION: Final = "1.0"
CE_PREFIX: Final = "ce_"
CONTENT_TYPE: Final = "content-type"
STRUCTURED_PREFIX: Final = "application/cloudevents"
JSON_EVENT_FORMAT: Final = "application/cloudevents+json"
JSON_DATA: Final = "application/json"
#: ``ce_source`` of every output (outputs' ids are unique across kinds).
OUTPUT_SOURCE: Final = "/cxstream"
#: Partitioning extension: the event's key; the Kafka key when the producer gave none.
PARTITIONKEY: Final = "partitionkey"

Mode = Literal["plain", "structured", "binary"]

#: ``ce_type`` of each output, by what it is (kind, or kind/variant for a kind of two).
OUTPUT_TYPES: Final[dict[str, str]] = {
    "nba": "cx.nba.decided",
    "alerts": "cx.alert.raised",
    "nps": "cx.nps.window",
    "identity": "cx.identity.merged",
    "identity_erasure": "cx.identity.erased",
    "profiles": "cx.profile.updated",
    "profiles_tombstone": "cx.profile.deleted",
    "households": "cx.household.updated",
    "households_tombstone": "cx.household.deleted",
    "dlq": "cx.event.dead_lettered",
    "insights": "cx.insights.drivers",
    "decisions": "cx.decisions.summary",
}


class BindingError(ValueError):
    """A message that breaks the binding; ``reason`` is its dead-letter reason."""

    def __init__(self, message: str, reason: DeadLetterReason) -> None:
        super().__init__(message)
        self.reason: DeadLetterReason = reason


@dataclass(frozen=True, slots=True)
class Binding:
    """How a message carries its event: the mode, ``ce_*`` attributes, ``content-type``."""

    mode: Mode
    attributes: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


_PLAIN: Final = Binding("plain")


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {exc.start}"
        msg = f"header {name!r} is not UTF-8 ({where}); the binding needs UTF-8"
        raise BindingError(msg, "bad_header_encoding") from exc


def media_type(content_type: str) -> str:
    """Return the media type of a ``content-type``, lower-cased, without its parameters.

    >>> media_type("Application/JSON; charset=utf-8")
    'application/json'
    """
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether data of this ``datacontenttype`` is JSON (absent: JSON, as cxstream reads it)."""
    if content_type is None:
        return True
    kind = media_type(content_type)
    return kind in ("application/json", "text/json") or kind.endswith("+json")


def read_binding(headers: Headers) -> Binding:
    """Read the content mode and the CloudEvents headers of a message.

    Raises :class:`BindingError` for a ``ce_*`` or ``content-type`` header that is not
    UTF-8, an attribute given twice with different values, a binary-mode specversion
    other than 1.0 and a structured-mode event format other than JSON.
    """
    attributes: dict[str, str] = {}
    content_type: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE:
            content_type = _text(name, value)
        elif lowered.startswith(CE_PREFIX):
            attr, text = lowered[len(CE_PREFIX) :], _text(name, value)
            if attributes.setdefault(attr, text) != text:
                msg = f"header {name!r} is given twice, as {attributes[attr]!r} and {text!r}"
                raise BindingError(msg, "header_mismatch")
    if content_type is not None and content_type.lower().startswith(STRUCTURED_PREFIX):
        if media_type(content_type) != JSON_EVENT_FORMAT:
            msg = (
                f"content-type {content_type!r}: cxstream reads the JSON event format only "
                f"({JSON_EVENT_FORMAT}; batches are not part of the Kafka binding)"
            )
            raise BindingError(msg, "unsupported_content_type")
        return Binding("structured", attributes, content_type)
    if "specversion" not in attributes:
        return _PLAIN
    if attributes["specversion"] != SPECVERSION:
        msg = (
            f"ce_specversion is {attributes['specversion']!r}; cxstream reads CloudEvents "
            f"{SPECVERSION} (send ce_specversion: {SPECVERSION})"
        )
        raise BindingError(msg, "unknown_specversion")
    if not is_json(content_type):
        msg = f"content-type {content_type!r}: the data of a CX event must be JSON ({JSON_DATA})"
        raise BindingError(msg, "unsupported_content_type")
    return Binding("binary", attributes, content_type)


def binary_body(binding: Binding, data: bytes, key: bytes | None) -> bytes:
    """Return the structured JSON of a binary-mode event: its attributes, then ``data`` as sent.

    ``data`` must already be known to be one JSON value (it is written as it is, so
    numbers keep every digit); the Kafka key becomes ``partitionkey`` when absent.
    """
    attributes: dict[str, object] = dict(binding.attributes)
    if "data" in attributes or "data_base64" in attributes:
        msg = "a ce_data or ce_data_base64 header: in binary mode the data is the message value"
        raise BindingError(msg, "header_mismatch")
    if binding.content_type is not None:
        attributes["datacontenttype"] = binding.content_type
    partitionkey = key_text(key)
    if PARTITIONKEY not in attributes and partitionkey is not None:
        attributes[PARTITIONKEY] = partitionkey
    attributes["data"] = orjson.Fragment(data)
    return orjson.dumps(attributes)


def key_text(key: bytes | None) -> str | None:
    """Return the Kafka key as a ``partitionkey`` value (None: no key, or not UTF-8)."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def rfc3339(time: datetime) -> str:
    """Write a time as the outputs' JSON does (UTC, ``Z``).

    >>> rfc3339(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    '2026-03-02T10:00:00Z'
    """
    return orjson.dumps(time, option=orjson.OPT_UTC_Z)[1:-1].decode()


_SPEC_HEADER: Final = ("ce_specversion", SPECVERSION.encode())
_SOURCE_HEADER: Final = ("ce_source", OUTPUT_SOURCE.encode())
_JSON_HEADER: Final = (CONTENT_TYPE, JSON_DATA.encode())
_TYPE_HEADERS: Final = {t: ("ce_type", t.encode()) for t in OUTPUT_TYPES.values()}


def output_headers(
    ce_type: str, out_id: str, subject: str, time: datetime | None, *, data: bool = True
) -> tuple[tuple[str, bytes], ...]:
    """Return the binary-mode CloudEvents headers of one output (after its ``cx-id``).

    ``data=False``: a tombstone, which has no data and so no ``content-type``. Built
    once per output, so the constant headers are made once.

    >>> output_headers("cx.nba.decided", "nba-1", "c1", datetime(2026, 3, 2, tzinfo=UTC))[:2]
    (('ce_specversion', b'1.0'), ('ce_id', b'nba-1'))
    """
    type_header = _TYPE_HEADERS.get(ce_type) or ("ce_type", ce_type.encode())
    head: tuple[tuple[str, bytes], ...] = (
        _SPEC_HEADER,
        ("ce_id", out_id.encode()),
        type_header,
        _SOURCE_HEADER,
    )
    if time is not None:
        head += (("ce_time", orjson.dumps(time, option=orjson.OPT_UTC_Z)[1:-1]),)
    if data:
        return (*head, ("ce_subject", subject.encode()), _JSON_HEADER)
    return (*head, ("ce_subject", subject.encode()))


def epoch_ms_time(epoch_ms: int | None) -> datetime | None:
    """Return a Kafka timestamp (ms) as an aware time; None stays None."""
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _dead_letter_attributes(model: DeadLetter) -> tuple[str, datetime | None, str | None]:
    where = f"{model.topic}/{model.partition}/{model.offset}" if model.topic is not None else None
    return OUTPUT_TYPES["dlq"], epoch_ms_time(model.timestamp_ms), where


# By exact type: isinstance on pydantic models (ABCMeta) costs more than the rest.
_ATTRIBUTES: Final[dict[type[BaseModel], Any]] = {
    NextBestAction: lambda m: (OUTPUT_TYPES["nba"], m.time, None),
    Alert: lambda m: (OUTPUT_TYPES["alerts"], m.time, None),
    NpsWindow: lambda m: (OUTPUT_TYPES["nps"], m.window_end, None),
    KeyDrivers: lambda m: (OUTPUT_TYPES["insights"], m.window_end, m.touchpoint or "overall"),
    DecisionSummary: lambda m: (OUTPUT_TYPES["decisions"], m.window_end, None),
    IdentityMerge: lambda m: (OUTPUT_TYPES["identity"], m.time, None),
    IdentityErasure: lambda m: (OUTPUT_TYPES["identity_erasure"], m.time, None),
    ProfileSnapshot: lambda m: (OUTPUT_TYPES["profiles"], m.last_seen, None),
    HouseholdSnapshot: lambda m: (OUTPUT_TYPES["households"], m.last_seen, None),
    DeadLetter: _dead_letter_attributes,
}


def output_attributes(model: BaseModel) -> tuple[str, datetime | None, str | None]:
    """Return ``(ce_type, ce_time, ce_subject or None for the record's key)`` of an output.

    The time is event time (a window's end; a profile's last event); a dead letter has
    none but its input's Kafka timestamp, and its subject is where it was read. An
    output kind added later still reads as a CloudEvent (``cx.<model name>``).
    """
    attributes = _ATTRIBUTES.get(type(model))
    if attributes is not None:
        return attributes(model)  # type: ignore[no-any-return]
    return f"cx.{type(model).__name__.lower()}", getattr(model, "time", None), None


def _attribute_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    return orjson.dumps(value).decode()


def header_disagreement(attributes: dict[str, str], event: InteractionEvent) -> str | None:
    """In structured mode, the first ``ce_*`` header the event's own attributes contradict.

    The binding lets a producer repeat attributes as headers; one that says something
    else than the body (or that the body lacks) makes the event ambiguous.
    """
    extra = event.model_extra or {}
    for name, text in attributes.items():
        if name == "time":
            try:
                same = datetime.fromisoformat(text).astimezone(UTC) == event.time
            except ValueError:
                same = False
            if not same:
                return (
                    f"header ce_time {text!r} differs from the event's time {rfc3339(event.time)!r}"
                )
            continue
        if name in ("id", "source", "type", "specversion"):
            body: object = getattr(event, name)
            if name == "id":
                text = text.strip()  # noqa: PLW2901 (the id is compared as validated: stripped)
        elif name in extra:
            body = extra[name]
        else:
            return f"header ce_{name} {text!r} names an attribute the event does not have"
        if body is None or _attribute_text(body) != text:
            return f"header ce_{name} {text!r} differs from the event's {name} {body!r}"
    return None
