"""Shared fixtures: settings, event factories, an in-process flow runner, real services."""

from __future__ import annotations

import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.dataflow import build_flow
from flows.settings import Settings
from schemas.records import Emitted, RawMessage

KAFKA = "127.0.0.1:9092"
REDIS = ("127.0.0.1", 6379)
HOW_TO_START = "start the services with `bash scripts/services.sh start` (`make test` does this)"


def make_event(n: int = 1, **data: Any) -> dict[str, Any]:
    """A valid CloudEvent dict; ``data`` overrides the CX payload fields."""
    payload = {
        "channel": "web",
        "touchpoint": "web.checkout",
        "identifiers": {"email": f"user{n}@example.com"},
        **data,
    }
    return {
        "specversion": "1.0",
        "id": f"evt-{n}",
        "source": "/tests",
        "type": "cx.web.page.viewed",
        "time": f"2026-03-02T10:{n % 60:02d}:00Z",
        "data": payload,
    }


@pytest.fixture
def event_factory() -> Callable[..., dict[str, Any]]:
    return make_event


def raw(value: bytes | dict[str, Any], offset: int = 0, topic: str = "cx.events") -> RawMessage:
    body = orjson.dumps(value) if isinstance(value, dict) else value
    return RawMessage(body, None, topic, 0, offset, 1_772_445_600_000 + offset)


def run_flow(messages: list[RawMessage], settings: Settings | None = None) -> dict[str, list[Any]]:
    """Run the real flow over ``messages``; return decoded outputs by kind."""
    collected: list[tuple[str, Emitted]] = []

    def inputs(flow: Dataflow) -> Any:
        return op.input("input", flow, TestingSource(messages))

    flow = build_flow(settings or Settings(), inputs, TestingSink(collected))
    run_main(flow)
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for kind, out in collected:
        by_kind[kind].append(orjson.loads(out.value))
    return by_kind


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_brokers() -> str:
    """The real broker; fails (never skips) when it is not running."""
    host, port = KAFKA.split(":")
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka is not reachable at {KAFKA}: {HOW_TO_START}", pytrace=False)
    return KAFKA


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis; fails (never skips) when it is not running."""
    if not _reachable(*REDIS):
        pytest.fail(
            f"Redis is not reachable at {REDIS[0]}:{REDIS[1]}: {HOW_TO_START}", pytrace=False
        )
    return f"redis://{REDIS[0]}:{REDIS[1]}/0"


@pytest.fixture
def topic_prefix() -> Iterator[str]:
    """A unique topic-name prefix so integration tests never see each other's data."""
    yield f"t{uuid.uuid4().hex[:10]}."
