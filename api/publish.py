"""Where ``POST /v1/responses`` sends an agent's response: the flow's input.

:class:`KafkaResponses` publishes the response's structured-mode CloudEvent
(``schemas.responses``: content type ``application/cloudevents+json``, key the
customer id) to the input topic (``CX_TOPICS__EVENTS``) and waits for the broker's
acknowledgement; :class:`FileResponses` appends it to a JSON-lines file (the demo,
which has no Kafka). The event id is derived from ``(nba_id, outcome)``: a response
published twice is one event for the flow's dedupe step.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import orjson

from schemas.responses import NbaResponse

CONTENT_TYPE = "application/cloudevents+json"


class PublishError(RuntimeError):
    """The response could not be delivered; the caller may send it again (idempotent)."""


class ResponsePublisher(Protocol):
    """Delivers one response event, or raises :class:`PublishError`."""

    def publish(self, response: NbaResponse) -> None: ...

    def close(self) -> None: ...


class KafkaResponses:
    """Publishes responses to a Kafka topic with an idempotent producer."""

    def __init__(self, config: dict[str, Any], topic: str, timeout: float = 10.0) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.timeout = timeout
        self._producer = Producer(config)
        self._lock = threading.Lock()

    def publish(self, response: NbaResponse) -> None:
        done = threading.Event()
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err.name()))
            done.set()

        value = orjson.dumps(response.to_cloudevent())
        with self._lock:
            self._producer.produce(
                self.topic,
                value=value,
                key=response.customer_id.encode(),
                headers=[("content-type", CONTENT_TYPE.encode())],
                on_delivery=delivered,
            )
        self._producer.flush(self.timeout)
        if not done.is_set() or errors:
            why = errors[0] if errors else "no acknowledgement in time"
            msg = f"the response could not be published to {self.topic} ({why}); send it again"
            raise PublishError(msg)

    def close(self) -> None:
        self._producer.flush(self.timeout)


class FileResponses:
    """Appends each response event as one JSON line (``cxstream demo --serve``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def publish(self, response: NbaResponse) -> None:
        line = orjson.dumps(response.to_cloudevent()) + b"\n"
        with self._lock, self.path.open("ab") as out:
            out.write(line)

    def close(self) -> None:
        return None
