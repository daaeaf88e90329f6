"""CxKafkaSource on the real broker: where ``--no-tail`` ends, and clients replaced.

The failure these tests pin down (issue #13, part 5): librdkafka can strand a client
without any broker (see sinks/kafka_clients.py); such a consumer gets no fetch reply
again, so it never reports the end of its partition, and Bytewax's own Kafka source,
which waits for that report, never ends. A consumer that gets no fetch reply is
simulated here by one whose ``consume`` never returns anything.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from bytewax.connectors import kafka as bytewax_kafka
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.app.kafka_source import CxKafkaSource, KafkaItem
from schemas.records import Emitted
from sinks.kafka import _KafkaPartition
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration

STRANDED = json.dumps({"brokers": {"GroupCoordinator": {"source": "logical", "state": "DOWN"}}})


def create_topic(brokers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=30).values():
        future.result()


def produce(brokers: str, topic: str, count: int, start: int = 0) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for n in range(start, start + count):
        producer.produce(topic, f"m{n}".encode(), partition=0)
    assert producer.flush(30) == 0


class Deaf:
    """A consumer that gets no fetch reply any more (as a stranded librdkafka client)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._consumer = Consumer(config)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        time.sleep(min(timeout, 0.01))
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class Factory:
    """Makes consumers (the first ``deaf`` of them deaf) and keeps their configs."""

    def __init__(self, deaf: int = 0) -> None:
        self.deaf = deaf
        self.configs: list[dict[str, Any]] = []

    def __call__(self, config: dict[str, Any]) -> Any:
        self.configs.append(config)
        if len(self.configs) <= self.deaf:
            return Deaf(config)
        return Consumer(config)

    @property
    def assigned(self) -> list[dict[str, Any]]:
        """Configs of the consumers that read (not the one that asks the watermarks)."""
        return [c for c in self.configs if "stats_cb" in c]


def read_to_end(part: Any, limit: float = 60) -> list[KafkaItem]:
    items: list[KafkaItem] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            items.extend(part.next_batch())
        except StopIteration:
            return items
    msg = f"no end of input within {limit} s after {len(items)} items"
    raise AssertionError(msg)


def offsets(items: list[KafkaItem]) -> list[int | None]:
    return [i.offset for i in items if isinstance(i, KafkaSourceMessage)]


def test_bytewax_source_never_ends_when_its_consumer_gets_no_reply(
    kafka_brokers: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why cxstream has its own source: Bytewax's waits for a ``_PARTITION_EOF``."""
    topic = f"{topic_prefix}empty"
    create_topic(kafka_brokers, topic)
    monkeypatch.setattr(bytewax_kafka, "Consumer", Deaf)
    source = KafkaSource([kafka_brokers], [topic], tail=False, raise_on_errors=False)
    part = source.build_part("input", f"0-{topic}", None)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert part.next_batch() == []  # no StopIteration: it would wait forever
    finally:
        part.close()


def test_no_tail_ends_an_empty_partition_without_a_reply(
    kafka_brokers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}empty"
    create_topic(kafka_brokers, topic)
    factory = Factory(deaf=2)  # whatever consumer it makes gets no reply
    source = CxKafkaSource([kafka_brokers], [topic], tail=False, make_consumer=factory)
    assert source.list_parts() == [f"0-{topic}"]
    part = source.build_part("input", f"0-{topic}", None)
    try:
        assert read_to_end(part, limit=5) == []
        assert factory.assigned == []  # the end was known before any fetch
    finally:
        part.close()


def test_no_tail_reads_to_the_end_seen_at_start_once_each(
    kafka_brokers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}events"
    create_topic(kafka_brokers, topic)
    produce(kafka_brokers, topic, 25)
    source = CxKafkaSource([kafka_brokers], [topic], tail=False, batch_size=10)
    part = source.build_part("input", f"0-{topic}", None)
    try:
        produce(kafka_brokers, topic, 5, start=25)  # after the start: not this run's input
        items = read_to_end(part)
        assert offsets(items) == list(range(25))
        assert [i.value for i in items if isinstance(i, KafkaSourceMessage)][-1] == b"m24"
        assert part.snapshot() == 25
    finally:
        part.close()
    resumed = source.build_part("input", f"0-{topic}", 25)
    try:  # the end is 30 now; the resumed run reads the rest
        assert offsets(read_to_end(resumed)) == list(range(25, 30))
    finally:
        resumed.close()
    done = source.build_part("input", f"0-{topic}", 30)
    try:
        assert read_to_end(done, limit=5) == []
    finally:
        done.close()


def test_a_stranded_consumer_is_replaced_at_its_next_offset(
    kafka_brokers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}events"
    create_topic(kafka_brokers, topic)
    produce(kafka_brokers, topic, 40)
    factory = Factory()
    source = CxKafkaSource(
        [kafka_brokers], [topic], tail=True, batch_size=7, make_consumer=factory, stranded_after=0
    )
    part = source.build_part("input", f"0-{topic}", None)
    try:
        items: list[KafkaItem] = []
        while len(offsets(items)) < 10:
            items.extend(part.next_batch())
        # librdkafka's statistics say the consumer has no broker left
        factory.assigned[-1]["stats_cb"](STRANDED)
        deadline = time.monotonic() + 60
        while len(offsets(items)) < 40 and time.monotonic() < deadline:
            items.extend(part.next_batch())
        assert len(factory.assigned) == 2  # replaced once
        assert offsets(items) == list(range(40))  # nothing read twice, nothing skipped
        assert not any(isinstance(i, KafkaError) for i in items)
    finally:
        part.close()


def test_sink_sends_a_batch_again_with_a_new_producer_when_stranded(
    kafka_brokers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}out"
    create_topic(kafka_brokers, topic)
    made: list[dict[str, Any]] = []

    def make_producer(config: dict[str, Any]) -> Producer:
        made.append(config)
        if len(made) == 1:  # a producer that never reaches a broker, then reports none
            dead = {**config, "bootstrap.servers": "127.0.0.1:9", "statistics.interval.ms": 0}
            producer = Producer(dead)
            producer.poll(0)
            config["stats_cb"](STRANDED)
            return producer
        return Producer(config)

    config = {"bootstrap.servers": kafka_brokers, "enable.idempotence": True, "acks": "all"}
    part = _KafkaPartition(config, {"nba": topic}, make_producer=make_producer, stranded_after=0)
    items = [("nba", Emitted("nba", f"k{n}", f"id{n}", f"v{n}".encode())) for n in range(20)]
    started = time.monotonic()
    part.write_batch(items)
    part.close()
    assert time.monotonic() - started < 30
    assert len(made) == 2
    values = sorted(m.value() for m in consume_all(kafka_brokers, topic))
    assert values == sorted(f"v{n}".encode() for n in range(20))
