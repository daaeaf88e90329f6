"""The Kafka sink queues each batch and waits for the acknowledgements in its snapshot.

A fake producer stands in for confluent-kafka: it acknowledges what it holds when
flushed, so the tests see when the sink waits and what is still unacknowledged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, cast

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource
from confluent_kafka import Producer

from schemas.records import OUTPUT_KINDS, Emitted
from sinks.kafka import KafkaDeliveryError, KafkaOutputSink, _KafkaPartition
from tests.conftest import run_dataflow

TOPICS = {kind: f"t.{kind}" for kind in OUTPUT_KINDS}


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeError:
    def str(self) -> str:
        return "broker said no"


class FakeProducer:
    """Holds produced messages until ``flush``; then acknowledges (or fails) them."""

    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, config: dict[str, Any], fail: bool = False) -> None:
        self.config = config
        self.fail = fail
        self.queued: list[tuple[str, bytes | None, Any]] = []
        self.acked: list[bytes | None] = []
        self.flushes: list[int] = []  # how many were unacknowledged at each flush
        FakeProducer.made.append(self)

    def produce(self, topic: str, value: bytes | None, key: bytes, **kw: Any) -> None:
        self.queued.append((topic, value, kw["on_delivery"]))

    def poll(self, _timeout: float) -> int:
        return 0  # acknowledgements arrive only with flush here

    def flush(self, _timeout: float) -> int:
        self.flushes.append(len(self.queued))
        for topic, value, report in self.queued:
            report(FakeError() if self.fail else None, FakeMessage(topic))
            self.acked.append(value)
        self.queued = []
        return 0


def fake(producer: FakeProducer) -> Producer:
    return cast("Producer", producer)


def emitted(kind: str, n: int) -> tuple[str, Emitted]:
    return kind, Emitted(kind, f"k{n}", f"id{n}", f"v{n}".encode())


def test_a_batch_is_queued_and_acknowledged_at_the_snapshot() -> None:
    producer = FakeProducer({})
    sent: list[int] = []
    part = _KafkaPartition({}, TOPICS, make_producer=lambda _c: fake(producer), on_sent=sent.append)
    part.write_batch([emitted("nba", n)[1] for n in range(3)])
    part.write_batch([emitted("alerts", 3)[1]])
    assert (len(producer.queued), producer.acked, sent) == (4, [], [3, 1])
    part.snapshot()
    assert producer.flushes == [4]
    assert producer.acked == [b"v0", b"v1", b"v2", b"v3"]
    assert [topic for topic, *_ in producer.queued] == []


def test_a_failed_delivery_stops_the_snapshot() -> None:
    part = _KafkaPartition({}, TOPICS, make_producer=lambda c: fake(FakeProducer(c, fail=True)))
    part.write_batch([emitted("nba", 1)[1]])
    with pytest.raises(KafkaDeliveryError, match=r"t\.nba: broker said no"):
        part.snapshot()


def test_in_a_flow_every_output_is_acknowledged_at_epoch_ends_not_per_batch() -> None:
    FakeProducer.made = []
    items = [emitted(OUTPUT_KINDS[n % len(OUTPUT_KINDS)], n) for n in range(60)]
    flow = Dataflow("kafka_sink")
    stream = op.input("in", flow, TestingSource(items, batch_size=5))
    sink = KafkaOutputSink(
        {},
        TOPICS,
        on_write=lambda _k, _n: None,
        on_sent=lambda _n: None,
        make_producer=lambda config: fake(FakeProducer(config)),
    )
    op.output("out", stream, sink)
    run_dataflow(flow, epoch_interval=timedelta(seconds=30))
    (producer,) = FakeProducer.made  # one producer for the worker's six partitions
    assert sorted(v or b"" for v in producer.acked) == sorted(out.value or b"" for _, out in items)
    # 12 batches, one epoch: nothing was waited for before the end of the epoch
    assert producer.flushes[0] == 60
    assert all(n == 0 for n in producer.flushes[1:])
