"""Lanes: the totally ordered parts of the input, and an event's place in one.

A *lane* is one input partition (``topic:partition`` of the Kafka record, or of
the replay-log record). Kafka orders a partition and a log file orders its
records, so each lane is a total order that every run reads the same way,
whatever the batching. The flow keeps it: the dedupe step runs per lane (one
Bytewax key, so its items stay in input order), numbers each fresh event
(``seq``, dense per lane) and stamps it with the lane's watermark (``wm_ms``,
the latest event time read on the lane so far). Steps that share state across
customers (the online models) and the event-time windows (NPS, SLA) decide
from these stamps, never from batch boundaries or from how workers interleave.

>>> lane_of(RawMessage(b"{}", topic="cx.events", partition=1))
'cx.events:1'
>>> lane_of(RawMessage(b"{}"))
'-'
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.envelope import InteractionEvent
from schemas.records import RawMessage

NO_LANE = "-"


def lane_of(raw: RawMessage) -> str:
    """Return the lane of a raw message: its topic and partition (``-`` when it has none)."""
    if raw.topic is None and raw.partition is None:
        return NO_LANE
    return f"{raw.topic}:{raw.partition}"


@dataclass(frozen=True, slots=True)
class Tracked:
    """A fresh event with its lane, its number on the lane and the lane's watermark."""

    lane: str
    seq: int
    wm_ms: int
    event: InteractionEvent
