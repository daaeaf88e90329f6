"""Webhook sink: outputs pushed to HTTP receivers, never holding up the Kafka outputs.

:meth:`WebhookSink.wants` picks the ``(kind, Emitted)`` items some target takes (the
flow filters on it, next to the Kafka sink: the two are separate outputs). The sink
has one partition: ``write_batch`` only hands each record to a bounded pool of
delivery threads (:mod:`sinks.webhook_delivery`) and returns at once, so a slow or
dead receiver never stops the flow. Nothing is lost:

- the deliveries still pending are the partition's snapshot, so after a crash the
  resumed run sends them again (at least once: receivers dedupe by ``ce-id``, the
  output's deterministic id);
- a record that exhausts its attempts, is refused (4xx but 429), or finds
  ``max_pending`` deliveries already held goes to the dead-letter topic as a
  ``webhook_failed`` dead letter with the receiver's last answer; only then does it
  leave the pending set.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Producer

from schemas.cloudevents import OUTPUT_TYPES, output_headers
from schemas.ids import output_id
from schemas.outputs import DeadLetter
from schemas.records import Emitted
from sinks.hooks import OnWrite, ignore_write
from sinks.webhook_config import WebhookSettings, WebhookTarget
from sinks.webhook_delivery import Outcome, deliver

log = logging.getLogger(__name__)

Item = tuple[str, Emitted]
#: One pending delivery, as snapshotted: target name, kind, key, id, value, headers.
Pending = tuple[str, str, str, str, bytes, tuple[tuple[str, bytes], ...]]
DeadLetters = Callable[[Emitted], None]
Deliver = Callable[[WebhookTarget, bytes, tuple[tuple[str, bytes], ...]], Outcome]

#: How long to wait before writing a dead letter again when the dead-letter topic fails.
DLQ_RETRY_SECONDS = 1.0


def webhook_dead_letter(target: WebhookTarget, out: Emitted, outcome: Outcome | str) -> Emitted:
    """Return the ``webhook_failed`` dead letter of a record ``target`` never took, encoded."""
    if isinstance(outcome, Outcome):
        error = (
            f"webhook {target.name}: not delivered after {outcome.attempts} attempt(s); "
            f"last answer: {outcome.answer.detail}"
        )
    else:
        error = f"webhook {target.name}: {outcome}"
    value = out.value or b""
    letter = DeadLetter(
        id=output_id("dlq", "webhook", target.name, out.id),
        reason="webhook_failed",
        error=error[:1000],
        key_b64=base64.b64encode(out.key.encode()).decode(),
        original_b64=base64.b64encode(value).decode(),
        original_size=len(value),
        headers=[(name, base64.b64encode(v).decode()) for name, v in out.headers],
    )
    headers = (("cx-id", letter.id.encode()), ("cx-reason", b"webhook_failed"))
    ce = output_headers(OUTPUT_TYPES["dlq"], letter.id, f"webhook/{target.name}", None)
    return Emitted("dlq", letter.id, letter.id, letter.model_dump_json().encode(), headers + ce)


class KafkaDeadLetters:
    """Writes webhook dead letters to the dead-letter topic, each one acknowledged."""

    def __init__(
        self, config: dict[str, Any], topic: str, *, on_write: OnWrite = ignore_write
    ) -> None:
        self._config = config
        self._topic = topic
        self._on_write = on_write
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def __call__(self, letter: Emitted) -> None:
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        with self._lock:
            if self._producer is None:
                self._producer = Producer(self._config)
            self._producer.produce(
                self._topic,
                letter.value,
                letter.key.encode(),
                headers=list(letter.headers),
                on_delivery=delivered,
            )
            left = self._producer.flush(30.0)
        if errors or left:
            msg = f"dead letter {letter.id} not written to {self._topic}: {errors or 'timeout'}"
            raise RuntimeError(msg)
        self._on_write("dlq", 1)


class _WebhookPartition(StatefulSinkPartition[Emitted, list[Pending]]):
    def __init__(
        self,
        settings: WebhookSettings,
        dead_letters: DeadLetters,
        send: Deliver,
        resume: list[Pending] | None,
    ) -> None:
        self._settings = settings
        self._by_name = {t.name: t for t in settings.targets}
        self._dead_letters = dead_letters
        self._send = send
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="cx-webhook")
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Pending] = {}
        for name, kind, key, out_id, value, headers in resume or []:
            target = self._by_name.get(name)
            if target is None:
                log.warning(
                    "webhook target %s is no longer configured: a pending record is dropped", name
                )
                continue
            self._submit(target, Emitted(kind, key, out_id, value, headers))

    def _submit(self, target: WebhookTarget, out: Emitted) -> None:
        assert out.value is not None  # noqa: S101 (WebhookSink.wants takes no tombstone)
        pending: Pending = (target.name, out.kind, out.key, out.id, out.value, out.headers)
        with self._lock:
            full = len(self._pending) >= self._settings.max_pending
            if not full:
                self._pending[target.name, out.id] = pending
        if full:  # written now, before write_batch returns: never lost, never unbounded
            limit = self._settings.max_pending
            self._dead(target, out, f"{limit} deliveries already pending (max_pending)")
            return
        self._pool.submit(self._run, target, out)

    def _run(self, target: WebhookTarget, out: Emitted) -> None:
        outcome: Outcome | str
        try:
            outcome = self._send(target, out.value or b"", out.headers)
        except Exception as exc:  # a bug in delivery must not lose the record
            log.exception("webhook %s: delivery failed", target.name)
            outcome = f"delivery failed: {type(exc).__name__}"
        if not isinstance(outcome, Outcome) or not outcome.answer.delivered:
            self._dead(target, out, outcome)
        with self._lock:
            self._pending.pop((target.name, out.id), None)

    def _dead(self, target: WebhookTarget, out: Emitted, outcome: Outcome | str) -> None:
        letter = webhook_dead_letter(target, out, outcome)
        while True:
            try:
                self._dead_letters(letter)
                return
            except Exception:  # the dead-letter topic is down: the record stays pending
                log.exception("webhook %s: writing a dead letter failed; trying again", target.name)
                time.sleep(DLQ_RETRY_SECONDS)

    def write_batch(self, values: list[Emitted]) -> None:
        for out in values:
            if out.value is None:
                continue
            record: dict[str, Any] | None = None  # parsed once, and only for a filter
            for target in self._settings.targets:
                if target.kind != out.kind:
                    continue
                if target.match and record is None:
                    record = orjson.loads(out.value)
                if not target.match or target.accepts(record or {}):
                    self._submit(target, out)

    def snapshot(self) -> list[Pending]:
        with self._lock:
            return list(self._pending.values())

    def close(self) -> None:
        self._pool.shutdown(wait=True)  # end of input: what is pending is delivered first

    def pending(self) -> int:
        """How many deliveries are held (in flight or waiting)."""
        with self._lock:
            return len(self._pending)


class WebhookSink(FixedPartitionedSink[Emitted, list[Pending]]):
    """Every webhook target of ``settings``; dead letters go to ``dead_letters``."""

    def __init__(
        self,
        settings: WebhookSettings,
        dead_letters: DeadLetters,
        *,
        send: Deliver = deliver,
    ) -> None:
        self.settings = settings
        self._kinds = settings.kinds()
        self._dead_letters = dead_letters
        self._send = send

    def wants(self, item: Item) -> bool:
        """Whether some target takes records of this item's kind (tombstones never)."""
        return item[0] in self._kinds and item[1].value is not None

    def list_parts(self) -> list[str]:
        return ["webhooks"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(
        self, step_id: str, for_part: str, resume_state: list[Pending] | None
    ) -> _WebhookPartition:
        return _WebhookPartition(self.settings, self._dead_letters, self._send, resume_state)
