"""Transport records: a message as it arrived, and an encoded output on its way out.

These are plain dataclasses rather than pydantic models: they are created once
per message on the hot path and carry bytes, not domain fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OUTPUT_KINDS: tuple[str, ...] = (
    "nba",
    "alerts",
    "nps",
    "insights",
    "decisions",
    "identity",
    "profiles",
    "households",
    "dlq",
)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One input message with its Kafka coordinates (also one replay-log record)."""

    value: bytes | None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Emitted:
    """One encoded output: its kind (which topic or file), key, id and JSON bytes."""

    kind: str
    key: str
    id: str
    value: bytes | None  # None: a tombstone (deletes the key from a compacted topic)
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)
