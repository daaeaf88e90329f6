"""Kafka sink: one idempotent producer per worker, one flush per batch.

Routes each ``(kind, Emitted)`` to the topic configured for its kind, keyed by
customer id (or touchpoint), so a consumer sees one customer's outputs in order.
Delivery failures stop the flow (and recovery replays) rather than lose output.

After each batch is flushed (acknowledged by the brokers) the sink records
``cx_e2e_latency_seconds`` for its outputs with one clock read: now minus the
Kafka append time of the input batches this worker handed out since its last
write (see :func:`flows.metrics.observe_outputs` for how outputs are matched
to inputs, an approximation that costs nothing per event).
"""

from __future__ import annotations

from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from flows import metrics
from schemas.records import Emitted

Item = tuple[str, Emitted]


def producer_config(client_config: dict[str, str], max_message_bytes: int) -> dict[str, Any]:
    """Producer settings that guarantee no loss and no duplicates from retries."""
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
    def __init__(self, config: dict[str, Any], topics: dict[str, str]) -> None:
        self._producer = Producer(config)
        self._topics = topics
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def write_batch(self, items: list[Item]) -> None:
        producer = self._producer
        for kind, out in items:
            topic = self._topics[kind]
            while True:
                try:
                    producer.produce(
                        topic,
                        out.value,
                        out.key.encode(),
                        headers=list(out.headers),
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
            metrics.OUTPUTS.labels(kind).inc()
        producer.flush()
        metrics.observe_outputs(len(items))
        if self._errors:
            errors, self._errors = self._errors, []
            msg = f"{len(errors)} messages were not delivered, first: {errors[0]}"
            raise KafkaDeliveryError(msg)

    def close(self) -> None:
        self._producer.flush()


def publish(config: dict[str, Any], topics: dict[str, str], items: list[Item]) -> None:
    """Send items outside a dataflow (e.g. a final flush), with the same guarantees."""
    if not items:
        return
    partition = _KafkaPartition(dict(config), topics)
    partition.write_batch(items)
    partition.close()


class KafkaOutputSink(DynamicSink[Item]):
    """Writes every output kind to its Kafka topic."""

    def __init__(self, config: dict[str, Any], topics: dict[str, str]) -> None:
        self._config = config
        self._topics = topics

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaPartition:
        return _KafkaPartition(dict(self._config), self._topics)
