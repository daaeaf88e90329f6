"""Live push: one Kafka consumer per serve process, fanned out to every SSE client.

:class:`KafkaFeed` reads ``cx.nba`` and ``cx.alerts`` in a thread of its own and hands
each record to the :class:`Hub` on the event loop. The hub keeps the last
``CX_API__STREAM_HISTORY`` events (10,000 by default) and a bounded queue per client
(``CX_API__STREAM_CLIENT_QUEUE``, 1,000): publishing never waits for a client; a
client whose queue is full is *dropped* (its stream ends with an ``event: dropped``)
and the others go on untouched.

Each event's SSE id is its Kafka coordinates, ``<topic>/<partition>/<offset>``. A
client that reconnects with ``Last-Event-ID`` gets every matching event this process
delivered after that one, from the history; an id the history no longer (or never)
held is refused with :class:`ResumeError` (HTTP 410): reload the actions
(``GET /v1/customers/{id}/actions``) and reconnect without it.

>>> parse_event_id("cx.nba/1/42")
('cx.nba', 1, 42)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("cxstream.api.stream")
DROPPED = b'event: dropped\ndata: {"reason": "this client fell behind; reconnect"}\n\n'


class ResumeError(Exception):
    """A ``Last-Event-ID`` this process cannot resume from (the message says why)."""


def parse_event_id(text: str) -> tuple[str, int, int]:
    """Split an SSE id into topic, partition, offset (ValueError: not one of ours)."""
    topic, partition, offset = text.rsplit("/", 2)
    if not topic:
        raise ValueError(text)
    return topic, int(partition), int(offset)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One NBA or alert as the stream sends it."""

    id: str
    kind: str  # "nba" or "alert"
    body: dict[str, Any]

    def frame(self) -> bytes:
        """Return the SSE frame of this event."""
        data = orjson.dumps(self.body)
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (self.id.encode(), self.kind.encode(), data)


def _named(body: dict[str, Any], name: str) -> object:
    excerpt = body.get("profile_excerpt")
    value = body.get(name)
    if value is None and isinstance(excerpt, dict):
        value = excerpt.get(name)
    return value


@dataclass(frozen=True, slots=True)
class Filters:
    """What a client asked for; None matches anything."""

    customer_id: str | None = None
    channel: str | None = None
    alert_kind: str | None = None
    kinds: frozenset[str] = frozenset({"nba", "alert"})
    queue: str | None = None
    agent_id: str | None = None

    def matches(self, event: StreamEvent) -> bool:
        """Whether ``event`` passes every filter (queue/agent: where the item names one)."""
        body = event.body
        checks = (
            (self.customer_id, body.get("customer_id")),
            (self.channel, body.get("channel")),
            (self.queue, _named(body, "queue")),
            (self.agent_id, _named(body, "agent_id")),
        )
        if event.kind not in self.kinds or any(w is not None and w != v for w, v in checks):
            return False
        return self.alert_kind is None or (
            event.kind == "alert" and body.get("kind") == self.alert_kind
        )


class Client:
    """One connected SSE client: its filters and its bounded queue."""

    def __init__(self, filters: Filters, size: int) -> None:
        self.filters = filters
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=size)
        self.dropped = False

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False (and the client is dropped) when it is full."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(DROPPED)
            return False
        return True


class Hub:
    """The fan-out and the resumable history (call its methods on the event loop)."""

    def __init__(self, history: int, client_queue: int) -> None:
        self.history: deque[StreamEvent] = deque(maxlen=history)
        self.client_queue = client_queue
        self.clients: set[Client] = set()
        self.published = 0
        self.dropped = 0

    def publish(self, event: StreamEvent) -> None:
        """Keep ``event`` in the history and queue it for every matching client."""
        self.history.append(event)
        self.published += 1
        frame = event.frame()
        for client in list(self.clients):
            if client.filters.matches(event) and not client.offer(frame):
                self.clients.discard(client)
                self.dropped += 1
                log.warning("dropped a slow SSE client (%d queued events)", self.client_queue)

    def _backlog(self, last_event_id: str) -> list[StreamEvent]:
        try:
            parse_event_id(last_event_id)
        except ValueError:
            msg = "Last-Event-ID is not an id this stream sent (topic/partition/offset)"
            raise ResumeError(msg) from None
        events = list(self.history)
        for n in range(len(events) - 1, -1, -1):
            if events[n].id == last_event_id:
                return events[n + 1 :]
        msg = (
            f"cannot resume from Last-Event-ID {last_event_id}: this server keeps the last "
            f"{self.history.maxlen} events and that one is not among them; reload the actions "
            "(GET /v1/customers/{id}/actions) and reconnect without Last-Event-ID"
        )
        raise ResumeError(msg)

    def subscribe(self, filters: Filters, last_event_id: str | None = None) -> Client:
        """Register a client; with ``last_event_id``, first queue what it missed."""
        backlog = self._backlog(last_event_id) if last_event_id else []
        missed = [e.frame() for e in backlog if filters.matches(e)]
        client = Client(filters, max(self.client_queue, len(missed) + 1))
        for frame in missed:
            client.offer(frame)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        """Forget a client (its stream ended)."""
        self.clients.discard(client)


async def frames(hub: Hub, client: Client, heartbeat: float) -> AsyncIterator[bytes]:
    """Yield the SSE byte stream of one client: its events, a comment line when idle."""
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                frame = await asyncio.wait_for(client.queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield frame
            if frame is DROPPED:
                return
    finally:
        hub.unsubscribe(client)


class KafkaFeed:
    """The serve process's one consumer of the NBA and alert topics, feeding a :class:`Hub`.

    It starts at the end of each partition (live push; the board has the past) and
    commits nothing: every replica reads everything.
    """

    def __init__(self, config: dict[str, Any], topics: dict[str, str]) -> None:
        self.config = {
            **config,
            "group.id": f"cxstream-serve-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        }
        self.kinds = {topic: kind for kind, topic in topics.items()}  # topic -> kind
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop, hub: Hub) -> None:
        """Start consuming in a daemon thread, handing events to ``hub`` on ``loop``."""
        self._thread = threading.Thread(
            target=self._run, args=(loop, hub.publish), name="cx-sse-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, loop: asyncio.AbstractEventLoop, publish: Callable[[StreamEvent], None]) -> None:
        from confluent_kafka import Consumer, KafkaError

        consumer = Consumer(self.config)

        def on_assign(c: Any, partitions: list[Any]) -> None:
            for p in partitions:  # the end now, explicitly: nothing produced after is missed
                p.offset = c.get_watermark_offsets(p, timeout=10)[1]
            c.assign(partitions)
            self.ready.set()

        consumer.subscribe(list(self.kinds), on_assign=on_assign)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001 (its public name)
                        log.warning("stream consumer: %s", error.name())
                    continue
                event = self._event(msg)
                if event is not None:
                    with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                        loop.call_soon_threadsafe(publish, event)
        finally:
            consumer.close()

    def _event(self, msg: Any) -> StreamEvent | None:
        try:
            body = orjson.loads(msg.value() or b"")
        except orjson.JSONDecodeError:
            log.warning(
                "stream consumer: a record that is not JSON at %s/%d/%d",
                msg.topic(),
                msg.partition(),
                msg.offset(),
            )
            return None
        if not isinstance(body, dict):
            return None
        kind = self.kinds.get(msg.topic(), "alert")
        return StreamEvent(f"{msg.topic()}/{msg.partition()}/{msg.offset()}", kind, body)
