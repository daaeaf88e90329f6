"""The benchmark's input: the synthetic standard mix, produced to Kafka fast or paced.

The mix is :func:`replay.synthetic.generate_world` (all channels, fragmented
identities, text, surveys, cases, duplicates, late and invalid messages),
generated in *chunks*: chunk ``k`` is a world of :data:`CHUNK_CUSTOMERS` new
people over the :data:`CHUNK_DAYS` days that follow chunk ``k - 1``, so event
time keeps moving forward however many events a run needs, the population keeps
growing (about 125 new customers per 1,000 events; the soak's chunks of
:data:`SOAK_CHUNK_DAYS` give about 310), and the generator's memory stays
bounded. Chunks are generated in a helper process, ahead of use, so a paced
producer is never stalled by the generator.

>>> values = chunk_values(0, seed=5)
>>> len(values) > 1000, values[0][:15]
(True, b'{"specversion":')
>>> chunk_values(0, seed=5) == values  # deterministic
True
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import timedelta
from typing import Any

from confluent_kafka import Producer

from replay.synthetic import DEFAULT_START, generate_world

CHUNK_CUSTOMERS = 1000
CHUNK_DAYS = 14
SOAK_CHUNK_DAYS = 5  # ~3.2 events a customer: 1M customers by ~3.2M events

Progress = Callable[[int], None]


def chunk_values(index: int, seed: int, days: int = CHUNK_DAYS) -> list[bytes | None]:
    """Message values of chunk ``index`` of the mix (deterministic in ``seed``)."""
    world = generate_world(
        CHUNK_CUSTOMERS,
        days,
        seed * 1_000_003 + index,
        start=DEFAULT_START + timedelta(days=days * index),
    )
    return [message.value for message in world.messages()]


def mix(seed: int, ahead: int = 2, days: int = CHUNK_DAYS) -> Generator[bytes | None, None, None]:
    """Yield endless message values of the mix, chunk after chunk (of ``days`` each).

    A helper process generates the chunks, ``ahead`` of need.
    """
    with ProcessPoolExecutor(max_workers=1) as pool:
        queued: deque[Future[list[bytes | None]]] = deque(
            pool.submit(chunk_values, i, seed, days) for i in range(ahead)
        )
        index = ahead
        while True:
            chunk = queued.popleft().result()
            queued.append(pool.submit(chunk_values, index, seed, days))
            index += 1
            yield from chunk


def take(values: Iterator[bytes | None], count: int) -> list[bytes | None]:
    """Return the next ``count`` values."""
    return [next(values) for _ in range(count)]


class Sender:
    """An idempotent producer that spreads messages round-robin over partitions.

    Each message is stamped with the time it was handed to the client (its Kafka
    CreateTime).
    """

    def __init__(self, client_config: dict[str, str], topic: str, partitions: int) -> None:
        self._producer = Producer(
            {
                **client_config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "message.max.bytes": 16_000_000,
            }
        )
        self._topic = topic
        self._partitions = partitions
        self._errors: list[str] = []
        self.sent = 0

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(err.str())

    def send(self, value: bytes | None, now_ms: int) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value,
                    partition=self.sent % self._partitions,
                    timestamp=now_ms,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self.sent += 1

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self) -> None:
        self._producer.flush(60)
        if self._errors:
            msg = f"{len(self._errors)} messages not delivered, first: {self._errors[0]}"
            raise RuntimeError(msg)


def fill(  # noqa: PLR0913 (what to produce, where; progress is keyword-only)
    client_config: dict[str, str],
    topic: str,
    partitions: int,
    count: int,
    seed: int,
    *,
    progress: Progress | None = None,
) -> int:
    """Produce ``count`` messages of the mix to ``topic`` as fast as possible."""
    sender = Sender(client_config, topic, partitions)
    values = mix(seed)
    for _ in range(count):
        sender.send(next(values), int(time.time() * 1000))
        if sender.sent % 1000 == 0:
            sender.poll()
            if progress is not None:
                progress(sender.sent)
    sender.flush()
    values.close()
    return sender.sent


def paced(  # noqa: PLR0913 (the pace, then keyword-only callbacks)
    sender: Sender,
    values: Iterator[bytes | None],
    rate: float,
    seconds: float,
    *,
    on_send: Callable[[bytes | None, int], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
    tick_seconds: float = 0.5,
) -> int:
    """Send ``rate`` messages a second for ``seconds``; return how many were sent.

    Messages go out in small bursts, one per millisecond tick, each stamped with
    its send time; ``on_send(value, ms)`` sees each one and ``on_tick(elapsed)``
    runs every ``tick_seconds`` (sampling metrics, printing progress).
    """
    start = time.monotonic()
    sent = 0
    next_tick = tick_seconds
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        now_ms = int(time.time() * 1000)
        while sent < due:
            value = next(values)
            sender.send(value, now_ms)
            if on_send is not None:
                on_send(value, now_ms)
            sent += 1
        sender.poll()
        if on_tick is not None and elapsed >= next_tick:
            on_tick(elapsed)
            next_tick += tick_seconds
        time.sleep(0.001)
    sender.flush()
    return sent
