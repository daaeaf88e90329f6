"""Input builders: where the flow's RawMessage stream comes from.

The Kafka input is :class:`flows.app.kafka_source.CxKafkaSource`: Bytewax's Kafka source
with an end of input (``--no-tail``) that a broker restart cannot lose, and consumers
that outlive a librdkafka client stranded without brokers. It also tells
:func:`flows.timing.note_appends` the append times of each batch it hands out, so the
Kafka sink can record end-to-end latency
(``cx_e2e_latency_seconds``; the approximation is described in
:func:`flows.timing.observe_outputs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING

from flows import timing
from flows.app.kafka_source import CxKafkaSource, KafkaItem
from flows.dataflow import InputBuilder
from flows.settings import Settings
from replay.source import ReplayLogSource
from schemas.records import RawMessage

__all__ = ["KafkaItem", "from_kafka_batch", "kafka_input", "log_input"]


def kafka_headers(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> tuple[tuple[str, bytes], ...]:
    """Return the headers as the flow keeps them: a null value (Kafka allows it) is empty."""
    return tuple((name, b"" if value is None else value) for name, value in headers or ())


def _from_kafka(item: KafkaItem) -> RawMessage:
    msg = item.msg if isinstance(item, KafkaError) else item
    timestamp = msg.timestamp[1] if msg.timestamp and msg.timestamp[1] >= 0 else None
    raw = RawMessage(
        value=msg.value,
        key=msg.key,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=timestamp,
        headers=kafka_headers(msg.headers),
    )
    if isinstance(item, KafkaError):
        # A consumer error is kept as a record whose value cannot decode: the
        # decode step turns it into a dead letter with the error as its reason.
        return RawMessage(
            value=None,
            key=raw.key,
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            timestamp_ms=raw.timestamp_ms,
            headers=(*raw.headers, ("cx-kafka-error", item.err.str().encode())),
        )
    return raw


def from_kafka_batch(items: list[KafkaItem]) -> list[RawMessage]:
    """Convert one consumer batch and note its append times (one call per batch)."""
    raws = [_from_kafka(item) for item in items]
    timing.note_appends([r.timestamp_ms for r in raws if r.timestamp_ms is not None])
    return raws


def kafka_input(settings: Settings, tail: bool = True) -> InputBuilder:
    """Consume the events and privacy topics; ``tail=False`` stops at the end of every partition."""

    def build(flow: Dataflow) -> Stream[RawMessage]:
        source = CxKafkaSource(
            [settings.kafka.brokers],
            [settings.topics.events, settings.identity.privacy_topic],
            tail=tail,
            starting_offset=OFFSET_BEGINNING,
            add_config=settings.kafka.client_config(),
            batch_size=settings.kafka.batch_size,
        )
        return op.flat_map_batch("from_kafka", op.input("input", flow, source), from_kafka_batch)

    return build


def log_input(paths: list[Path], batch_size: int = 1000) -> InputBuilder:
    """Play recorded log files, as fast as possible, then stop."""

    def build(flow: Dataflow) -> Stream[RawMessage]:
        return op.input("input", flow, ReplayLogSource(paths, batch_size))

    return build
