"""Kafka sink: one idempotent producer per worker, flushed when the epoch ends.

Routes each ``(kind, Emitted)`` to the topic configured for its kind, keyed by
customer id (or touchpoint), so a consumer sees one customer's outputs in order.
Delivery failures stop the flow (and recovery replays) rather than lose output.

**When outputs are durable.** A batch is queued to the producer, which sends it in
the background (``linger.ms``), and the worker goes on; the sink waits for every
acknowledgement in its *snapshot*, which Bytewax takes at the end of each epoch,
after the epoch's last write. Bytewax commits an epoch (the input offsets a resume
starts from) only once every snapshot of it is taken, so when an epoch is committed
all its outputs are acknowledged: a crash loses at most uncommitted epochs, whose
input is read again and whose outputs are sent again (at least once, deterministic
ids, as before). A delivery that failed is reported at the next write or snapshot and
stops the flow before its epoch is committed. :class:`KafkaOutputSink` is a
``FixedPartitionedSink`` (Bytewax snapshots only those) with one partition per output
kind; the partitions a worker holds share its producer, and with several workers an
output goes to the worker that holds its kind.

A producer that librdkafka has left without any broker (see :mod:`sinks.kafka_clients`)
would keep ``flush()`` waiting forever; the sink notices it from the producer's
statistics, throws it away (purging its queues) and sends the batch's undelivered
messages again with a new producer. A message that was in flight when the old
producer lost its brokers may then be written twice (at least once, as on a replay).

When a batch is queued (the moment the producer stamps its messages' CreateTime)
the sink records ``cx_e2e_latency_seconds`` for its outputs with one clock read: now
minus the Kafka append time of the input batches this worker handed out since its last
write (the ``on_sent`` hook; the flow passes :func:`flows.timing.observe_outputs`, which
says how outputs are matched to inputs, an approximation that costs nothing per event).
The messages queued are reported to ``on_write`` once per kind and batch (the flow counts
``cx_outputs_total``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from schemas.records import OUTPUT_KINDS, Emitted
from sinks.hooks import OnSent, OnWrite, ignore_sent, ignore_write
from sinks.kafka_clients import STATS_INTERVAL_MS, STRANDED_AFTER_SECONDS, BrokerWatch, discard

Item = tuple[str, Emitted]

log = logging.getLogger(__name__)

#: Longest single wait in a flush, between checks that the producer still has brokers.
FLUSH_STEP_SECONDS = 1.0


def producer_config(client_config: dict[str, str], max_message_bytes: int) -> dict[str, Any]:
    """Return producer settings that guarantee no loss and no duplicates from retries."""
    return {
        **client_config,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": max_message_bytes,
    }


class KafkaDeliveryError(RuntimeError):
    """The broker refused or lost a message after all retries."""


_SORTED_KINDS = sorted(OUTPUT_KINDS)


class _KafkaPartition(StatefulSinkPartition[Emitted, None]):
    """One producer; ``write_batch`` queues, ``snapshot`` and ``close`` wait for every ack."""

    def __init__(  # noqa: PLR0913 (the sink's injectables, keyword-only)
        self,
        config: dict[str, Any],
        topics: dict[str, str],
        *,
        make_producer: Callable[[dict[str, Any]], Producer] = Producer,
        stranded_after: float = STRANDED_AFTER_SECONDS,
        on_write: OnWrite = ignore_write,
        on_sent: OnSent = ignore_sent,
    ) -> None:
        self._config = config
        self._topics = topics
        self._make_producer = make_producer
        self._on_write = on_write
        self._on_sent = on_sent
        self._errors: list[str] = []
        self._watch = BrokerWatch(stranded_after)
        self._generation = 0  # delivery reports of replaced producers are ignored
        self._next = 0  # index of the next message queued
        self._pending: dict[int, Emitted] = {}  # queued, not yet acknowledged
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        self._watch.reset()
        return self._make_producer(
            {
                **self._config,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": self._watch.observe,
            }
        )

    def _produce(self, index: int, out: Emitted) -> None:
        """Queue one message; ``self._pending`` holds it until its delivery report."""
        self._pending[index] = out
        while True:
            try:
                self._producer.produce(
                    self._topics[out.kind],
                    out.value,
                    out.key.encode(),
                    headers=list(out.headers),
                    on_delivery=self._reporter(index),
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
                self._replace_if_stranded(skip=index)

    def _reporter(self, index: int) -> Any:
        generation = self._generation
        pending = self._pending

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if generation != self._generation:
                return  # a report of a replaced (purged) producer: sent again since
            pending.pop(index, None)
            if err is not None:
                self._errors.append(f"{msg.topic()}: {err.str()}")

        return on_delivery

    def _replace_if_stranded(self, skip: int | None = None) -> None:
        """Send what is pending again with a new producer if this one has no broker left.

        All but ``skip``, the message being queued now.
        """
        if not self._watch.stranded():
            return
        log.warning(
            "kafka producer lost every broker (librdkafka keeps none after a Metadata "
            "reply that lists no brokers); replacing it, %d messages to send again",
            len(self._pending),
        )
        old = self._producer
        self._generation += 1
        old.purge()
        old.poll(0)  # serve the purge reports now: they are of the old generation
        discard(old)
        self._producer = self._new_producer()
        for index, out in sorted(self._pending.items()):
            if index != skip:
                self._produce(index, out)

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            msg = f"{len(errors)} messages were not delivered, first: {errors[0]}"
            raise KafkaDeliveryError(msg)

    def _flush(self) -> None:
        """Wait until every queued message is acknowledged (or raise)."""
        while self._producer.flush(FLUSH_STEP_SECONDS) > 0:
            self._replace_if_stranded()
        self._raise_errors()

    def write_batch(self, values: list[Emitted]) -> None:
        written: dict[str, int] = {}
        index = self._next
        for out in values:
            self._produce(index, out)
            index += 1
            written[out.kind] = written.get(out.kind, 0) + 1
        self._next = index
        for kind, count in written.items():  # once per kind and batch, as queued
            self._on_write(kind, count)
        self._producer.poll(0)  # serve the delivery reports that have come in
        self._on_sent(len(values))
        self._raise_errors()

    def snapshot(self) -> None:
        # The epoch's outputs must be acknowledged before Bytewax may commit it.
        self._flush()

    def close(self) -> None:
        self._flush()


def publish(
    config: dict[str, Any],
    topics: dict[str, str],
    items: list[Item],
    *,
    on_write: OnWrite,
    on_sent: OnSent,
) -> None:
    """Send items outside a dataflow (e.g. a final flush), with the same guarantees."""
    if not items:
        return
    partition = _KafkaPartition(dict(config), topics, on_write=on_write, on_sent=on_sent)
    partition.write_batch([out for _, out in items])
    partition.close()


class _KindPartition(StatefulSinkPartition[Emitted, None]):
    """The partition of one output kind: it writes through its worker's producer."""

    def __init__(self, producer: _KafkaPartition) -> None:
        self._producer = producer

    def write_batch(self, values: list[Emitted]) -> None:
        self._producer.write_batch(values)

    def snapshot(self) -> None:
        self._producer.snapshot()  # the first partition's flush; the others find none

    def close(self) -> None:
        self._producer.close()


class KafkaOutputSink(FixedPartitionedSink[Emitted, None]):
    """Writes every output kind to its Kafka topic (a partition per kind, a producer per worker)."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: dict[str, str],
        *,
        on_write: OnWrite,
        on_sent: OnSent,
        make_producer: Callable[[dict[str, Any]], Producer] = Producer,
    ) -> None:
        self._config = config
        self._topics = topics
        self._on_write = on_write
        self._on_sent = on_sent
        self._make_producer = make_producer
        self._producers: dict[int, _KafkaPartition] = {}  # by worker thread

    def list_parts(self) -> list[str]:
        return list(OUTPUT_KINDS)

    def part_fn(self, item_key: str) -> int:
        # Bytewax indexes this into the *sorted* global list of partitions.
        return _SORTED_KINDS.index(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KindPartition:
        worker = threading.get_ident()  # a worker builds and uses its partitions
        producer = self._producers.get(worker)
        if producer is None:
            producer = _KafkaPartition(
                dict(self._config),
                self._topics,
                make_producer=self._make_producer,
                on_write=self._on_write,
                on_sent=self._on_sent,
            )
            self._producers[worker] = producer
        return _KindPartition(producer)
