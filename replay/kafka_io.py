"""Record a Kafka topic into a replay log, and play a log back into Kafka."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from replay.log import read_log, write_log
from schemas.records import RawMessage

Progress = Callable[[int], None]


def progress_printer(label: str, every: int = 10_000, out: TextIO = sys.stderr) -> Progress:
    """Return a progress callback that prints a line every ``every`` messages."""

    def report(count: int) -> None:
        if count % every == 0:
            print(f"{label}: {count} messages", file=out, flush=True)

    return report


def _to_raw(msg: Any) -> RawMessage:
    kind, ts = msg.timestamp()
    return RawMessage(
        value=msg.value(),
        key=msg.key(),
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp_ms=ts if kind != 0 and ts >= 0 else None,
        # a null header value (Kafka allows it) is kept as an empty one
        headers=tuple(
            (name, b"" if value is None else value) for name, value in msg.headers() or ()
        ),
    )


def record(  # noqa: PLR0913 (the copy's limits and progress, all keyword-only)
    client_config: dict[str, str],
    topic: str,
    out: Path,
    *,
    max_messages: int | None = None,
    max_seconds: float | None = None,
    progress: Progress | None = None,
) -> int:
    """Copy ``topic`` from its beginning into the log ``out``; return how many were recorded.

    Stops at the end of every partition, after ``max_messages``, or after
    ``max_seconds`` of wall time, whichever comes first. Messages are written in
    arrival order (per partition, offset order).
    """
    consumer = Consumer(
        {
            **client_config,
            "group.id": "cxstream-recorder",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            msg = f"cannot record topic {topic!r}: {meta.error.str()}"
            raise RuntimeError(msg)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        remaining = set(meta.partitions)
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None

        def messages() -> Iterable[RawMessage]:
            count = 0
            while remaining and (max_messages is None or count < max_messages):
                if deadline is not None and time.monotonic() >= deadline:
                    return
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 (confluent-kafka's documented name for end of partition)
                        remaining.discard(msg.partition())
                        continue
                    problem = f"error reading {topic!r}: {error.str()}"
                    raise RuntimeError(problem)
                count += 1
                if progress is not None:
                    progress(count)
                yield _to_raw(msg)

        return write_log(out, messages())
    finally:
        consumer.close()


def play(
    producer_config: dict[str, Any],
    log: Path,
    *,
    topic: str | None = None,
    speed: float | None = None,
    progress: Progress | None = None,
) -> int:
    """Publish a log to Kafka; return how many messages were sent.

    ``topic`` overrides the recorded topic. ``speed=None`` sends as fast as
    possible; otherwise the recorded gaps between timestamps are kept, divided
    by ``speed`` (2.0 plays twice as fast). Partitions are kept when recorded.
    """
    producer = Producer(producer_config)
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    start_wall = time.monotonic()
    first_ts: int | None = None
    sent = 0
    for raw in read_log(log):
        target = topic or raw.topic
        if target is None:
            msg = f"{log}: a record has no topic; pass --topic"
            raise ValueError(msg)
        if speed is not None and raw.timestamp_ms is not None:
            first_ts = raw.timestamp_ms if first_ts is None else first_ts
            due = start_wall + (raw.timestamp_ms - first_ts) / 1000 / speed
            pause = due - time.monotonic()
            if pause > 0:
                producer.poll(0)
                time.sleep(pause)
        kwargs: dict[str, Any] = {"headers": list(raw.headers), "on_delivery": delivered}
        if raw.partition is not None and topic is None:
            kwargs["partition"] = raw.partition
        while True:
            try:
                producer.produce(target, raw.value, raw.key, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        sent += 1
        if progress is not None:
            progress(sent)
    producer.flush()
    if errors:
        msg = f"{len(errors)} of {sent} messages were not delivered; first error: {errors[0]}"
        raise RuntimeError(msg)
    return sent
