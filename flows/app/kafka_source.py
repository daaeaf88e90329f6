"""cxstream's Kafka source: Bytewax's ``KafkaSource`` partition, made to end and to last.

It emits what Bytewax's :class:`~bytewax.connectors.kafka.KafkaSource` emits
(:class:`~bytewax.connectors.kafka.KafkaSourceMessage` and, for consumer errors,
:class:`~bytewax.connectors.kafka.KafkaError`), with the same partitions
(``"{partition}-{topic}"``), the same snapshots (the next offset to read, so recovery
stores written by either source resume with the other) and the same
``bytewax_kafka_consumer_lag`` gauge. It differs in two ways:

- **End of input** (``tail=False``) is decided from positions, not from librdkafka's
  ``_PARTITION_EOF`` event. Each partition reads its high watermark when it is built
  and ends once its position reaches it (a partition that is empty, or already read
  to that point by a resumed run, ends at once, without fetching); messages written
  after that are left for the next run. librdkafka sends the EOF event once per
  offset, and only when a fetch reply comes while its fetch position is the end: a
  client that gets no reply any more never sends it, and Bytewax's partition then
  waits for it forever.
- **A stranded consumer is replaced.** When librdkafka has dropped every broker (see
  :mod:`sinks.kafka_clients`), the partition closes that consumer and assigns a new
  one at its next offset: nothing handed out is read again, nothing is skipped.

Offsets only move with messages read, never with an error, whose offset is not one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.connectors.kafka import (
    BYTEWAX_CONSUMER_LAG_GAUGE,
    KafkaError,
    KafkaSourceMessage,
)
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sinks.kafka_clients import STATS_INTERVAL_MS, STRANDED_AFTER_SECONDS, BrokerWatch, discard

log = logging.getLogger(__name__)

KafkaItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]

#: How long building a ``tail=False`` partition may try to read its high watermark.
END_OFFSET_TIMEOUT_SECONDS = 60.0

ConsumerFactory = Callable[[dict[str, Any]], Any]


class _Partition(StatefulSourcePartition[KafkaItem, int | None]):
    def __init__(  # noqa: PLR0913 (where to read; the reading options are keyword-only)
        self,
        step_id: str,
        config: dict[str, Any],
        topic: str,
        partition: int,
        offset: int,
        *,
        batch_size: int,
        tail: bool,
        make_consumer: ConsumerFactory,
        stranded_after: float,
    ) -> None:
        self._config = config
        self._topic = topic
        self._partition = partition
        self._offset = offset  # next offset to read, or a logical one before the first message
        self._batch_size = batch_size
        self._make_consumer = make_consumer
        self._labels = {"step_id": step_id, "topic": topic, "partition": str(partition)}
        self._watch = BrokerWatch(stranded_after)
        self._consumer: Any = None
        self._end: int | None = None  # tail=False: the high watermark when built
        self._low = 0
        if not tail:
            self._low, self._end = self._watermarks()
        if not self._done():
            self._connect()

    # ------------------------------------------------------------ consumer

    def _connect(self) -> None:
        config = {**self._config, "stats_cb": self._on_stats}
        consumer = self._make_consumer(config)
        consumer.assign([TopicPartition(self._topic, self._partition, self._offset)])
        self._consumer = consumer
        self._watch.reset()

    def _on_stats(self, json_stats: str) -> None:
        stats = self._watch.observe(json_stats)
        if self._offset <= 0:
            return  # logical offset: no lag to tell yet (as Bytewax's source)
        try:
            part: Any = stats["topics"]
            part = part[self._topic]["partitions"][str(self._partition)]
            BYTEWAX_CONSUMER_LAG_GAUGE.labels(**self._labels).set(part["ls_offset"] - self._offset)
        except (KeyError, TypeError):
            pass  # the partition is not in this document (e.g. just assigned)

    def _watermarks(self) -> tuple[int, int]:
        """Return the partition's (low, high) watermarks, asked of its leader."""
        client = self._make_consumer(dict(self._config))
        tp = TopicPartition(self._topic, self._partition)
        deadline = time.monotonic() + END_OFFSET_TIMEOUT_SECONDS
        try:
            while True:
                try:
                    low, high = client.get_watermark_offsets(tp, timeout=5.0, cached=False)
                    return int(low), int(high)
                except KafkaException as exc:
                    if time.monotonic() >= deadline:
                        msg = f"cannot read the end of {self._topic} [{self._partition}]: {exc}"
                        raise RuntimeError(msg) from exc
                    time.sleep(0.5)
        finally:
            client.close()

    def _replace_stranded(self) -> None:
        log.warning(
            "kafka consumer of %s [%d] lost every broker (librdkafka keeps none after a "
            "Metadata reply that lists no brokers); replacing it at offset %d",
            self._topic,
            self._partition,
            self._offset,
        )
        old, self._consumer = self._consumer, None
        discard(old)
        self._connect()

    # ------------------------------------------------------------ positions

    def _position(self) -> int:
        """Return the next offset to read, as far as this partition can tell."""
        if self._offset >= 0:
            position = self._offset
        elif self._offset == OFFSET_END and self._end is not None:
            position = self._end
        else:
            position = self._low
        if self._consumer is not None:
            tp = TopicPartition(self._topic, self._partition)
            (reported,) = self._consumer.position([tp])
            # librdkafka's position also passes transaction markers and compacted gaps
            if reported.offset is not None and reported.offset > position:
                position = reported.offset
        return position

    def _done(self) -> bool:
        return self._end is not None and self._position() >= self._end

    # ------------------------------------------------------------ Bytewax

    def next_batch(self) -> list[KafkaItem]:
        if self._done():
            raise StopIteration()
        if self._watch.stranded():
            self._replace_stranded()
        batch: list[KafkaItem] = []
        for msg in self._consumer.consume(self._batch_size, 0.001):
            kafka_msg: KafkaSourceMessage[bytes | None, bytes | None] = KafkaSourceMessage(
                key=msg.key(),
                value=msg.value(),
                topic=msg.topic(),
                headers=msg.headers() or [],
                latency=msg.latency(),
                offset=msg.offset(),
                partition=msg.partition(),
                timestamp=msg.timestamp(),
            )
            error = msg.error()
            if error is not None:
                batch.append(KafkaError(error, kafka_msg))
                continue
            if self._end is not None and msg.offset() >= self._end:
                break  # past the end seen at start: the next run's input
            batch.append(kafka_msg)
            self._offset = msg.offset() + 1
        return batch

    def snapshot(self) -> int | None:
        return self._offset

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class CxKafkaSource(FixedPartitionedSource[KafkaItem, int | None]):
    """Every partition of ``topics`` (listed at start); see the module docstring."""

    def __init__(  # noqa: PLR0913 (the source's options, all keyword-only with defaults)
        self,
        brokers: Iterable[str],
        topics: Iterable[str],
        *,
        tail: bool = True,
        starting_offset: int = OFFSET_BEGINNING,
        add_config: dict[str, str] | None = None,
        batch_size: int = 1000,
        make_consumer: ConsumerFactory = Consumer,
        stranded_after: float = STRANDED_AFTER_SECONDS,
    ) -> None:
        self._brokers = list(brokers)
        self._topics = list(topics)
        self._tail = tail
        self._starting_offset = starting_offset
        self._add_config = dict(add_config or {})
        self._batch_size = batch_size
        self._make_consumer = make_consumer
        self._stranded_after = stranded_after

    def list_parts(self) -> list[str]:
        client = AdminClient({"bootstrap.servers": ",".join(self._brokers), **self._add_config})
        parts: list[str] = []
        for topic in self._topics:
            # one topic at a time, so a broker that auto-creates topics does so
            metadata = client.list_topics(topic).topics[topic]
            if metadata.error is not None:
                msg = f"error listing partitions for Kafka topic {topic!r}: {metadata.error.str()}"
                raise RuntimeError(msg)
            parts.extend(f"{idx}-{topic}" for idx in metadata.partitions)
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        idx, topic = for_part.split("-", 1)
        if topic not in self._topics:
            msg = f"cannot resume partition {for_part!r}: {topic!r} is not an input topic"
            raise ValueError(msg)
        config: dict[str, Any] = {
            # no consumer group: offsets live in Bytewax's recovery store
            "group.id": "BYTEWAX_IGNORED",
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self._brokers),
            "enable.partition.eof": "false",
            "statistics.interval.ms": STATS_INTERVAL_MS,
            **self._add_config,
        }
        offset = self._starting_offset if resume_state is None else resume_state
        return _Partition(
            step_id,
            config,
            topic,
            int(idx),
            offset,
            batch_size=self._batch_size,
            tail=self._tail,
            make_consumer=self._make_consumer,
            stranded_after=self._stranded_after,
        )
