"""Kafka sink: one idempotent producer per worker, one flush per batch.

Routes each ``(kind, Emitted)`` to the topic configured for its kind, keyed by
customer id (or touchpoint), so a consumer sees one customer's outputs in order.
Delivery failures stop the flow (and recovery replays) rather than lose output.

A producer that librdkafka has left without any broker (see :mod:`sinks.kafka_clients`)
would keep ``flush()`` waiting forever; the sink notices it from the producer's
statistics, throws it away (purging its queues) and sends the batch's undelivered
messages again with a new producer. A message that was in flight when the old
producer lost its brokers may then be written twice (at least once, as on a replay).

After each batch is flushed (acknowledged by the brokers) the sink records
``cx_e2e_latency_seconds`` for its outputs with one clock read: now minus the
Kafka append time of the input batches this worker handed out since its last
write (the ``on_sent`` hook; the flow passes :func:`flows.timing.observe_outputs`, which
says how outputs are matched to inputs, an approximation that costs nothing per event).
The messages queued are reported to ``on_write`` once per kind and batch (the flow counts
``cx_outputs_total``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from schemas.records import Emitted
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


class _KafkaPartition(StatelessSinkPartition[Item]):
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

    def _produce(self, index: int, item: Item, pending: dict[int, Item]) -> None:
        """Queue one message; ``pending`` holds it until its delivery report."""
        kind, out = item
        pending[index] = item
        while True:
            try:
                self._producer.produce(
                    self._topics[kind],
                    out.value,
                    out.key.encode(),
                    headers=list(out.headers),
                    on_delivery=self._reporter(index, pending),
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
                self._replace_if_stranded(pending, skip=index)

    def _reporter(self, index: int, pending: dict[int, Item]) -> Any:
        generation = self._generation

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if generation != self._generation:
                return  # a report of a replaced (purged) producer: sent again since
            pending.pop(index, None)
            if err is not None:
                self._errors.append(f"{msg.topic()}: {err.str()}")

        return on_delivery

    def _replace_if_stranded(self, pending: dict[int, Item], skip: int | None = None) -> None:
        """Send ``pending`` again with a new producer if this one has no broker left.

        All but ``skip``, the message being queued now.
        """
        if not self._watch.stranded():
            return
        log.warning(
            "kafka producer lost every broker (librdkafka keeps none after a Metadata "
            "reply that lists no brokers); replacing it, %d messages to send again",
            len(pending),
        )
        old = self._producer
        self._generation += 1
        old.purge()
        old.poll(0)  # serve the purge reports now: they are of the old generation
        discard(old)
        self._producer = self._new_producer()
        for index, item in sorted(pending.items()):
            if index != skip:
                self._produce(index, item, pending)

    def _flush(self, pending: dict[int, Item]) -> None:
        while self._producer.flush(FLUSH_STEP_SECONDS) > 0:
            self._replace_if_stranded(pending)

    def write_batch(self, items: list[Item]) -> None:
        pending: dict[int, Item] = {}
        written: dict[str, int] = {}
        for index, item in enumerate(items):
            self._produce(index, item, pending)
            written[item[0]] = written.get(item[0], 0) + 1
        for kind, count in written.items():  # once per kind and batch, as queued
            self._on_write(kind, count)
        self._flush(pending)
        self._on_sent(len(items))
        if self._errors:
            errors, self._errors = self._errors, []
            msg = f"{len(errors)} messages were not delivered, first: {errors[0]}"
            raise KafkaDeliveryError(msg)

    def close(self) -> None:
        self._flush({})  # write_batch leaves nothing queued; never waits on a stranded one


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
    partition.write_batch(items)
    partition.close()


class KafkaOutputSink(DynamicSink[Item]):
    """Writes every output kind to its Kafka topic."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: dict[str, str],
        *,
        on_write: OnWrite,
        on_sent: OnSent,
    ) -> None:
        self._config = config
        self._topics = topics
        self._on_write = on_write
        self._on_sent = on_sent

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaPartition:
        return _KafkaPartition(
            dict(self._config), self._topics, on_write=self._on_write, on_sent=self._on_sent
        )
