"""Shared fixtures: settings, event factories, an in-process flow runner, real services."""

from __future__ import annotations

import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from flows.app.stores import make_households, make_store
from flows.dataflow import build_flow
from flows.settings import Settings
from schemas.records import Emitted, RawMessage
from state.store import ProfileStore

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


def run_dataflow(
    flow: Dataflow,
    *,
    workers: int = 1,
    epoch_interval: timedelta | None = None,
    recovery_config: RecoveryConfig | None = None,
) -> None:
    """Run ``flow`` to completion in this process: ``run_main`` for one worker, else
    ``cluster_main`` with ``workers`` worker threads (a one-process cluster).

    The only place the tests call Bytewax's runners, whose stubs are unannotated."""
    if workers == 1:
        run_main(  # type: ignore[no-untyped-call]
            flow, epoch_interval=epoch_interval, recovery_config=recovery_config
        )
    else:
        cluster_main(  # type: ignore[no-untyped-call]
            flow,
            [],
            0,
            epoch_interval=epoch_interval,
            recovery_config=recovery_config,
            worker_count_per_proc=workers,
        )


def run_flow(
    messages: list[RawMessage],
    settings: Settings | None = None,
    store: ProfileStore | None = None,
    batch_size: int = 1,
    workers: int = 1,
    *,
    households: bool = False,
) -> dict[str, list[Any]]:
    """Run the real flow over ``messages``; return decoded outputs by kind.

    Tombstones (no value) are returned as ``{"tombstone": key}``. The store is a
    fresh in-memory one unless given; ``batch_size`` is the source's batch size;
    ``workers`` the number of worker threads (one process; they share the store);
    ``households``: with the household store next to it (as every cxstream command).
    """
    collected: list[tuple[str, Emitted]] = []

    def inputs(flow: Dataflow) -> Any:
        return op.input("input", flow, TestingSource(messages, batch_size))

    settings = settings or Settings()
    store = store or make_store(settings, default="memory")
    homes = make_households(settings, store) if households else None
    flow = build_flow(settings, inputs, TestingSink(collected), store, households=homes)
    run_dataflow(flow, workers=workers)
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for kind, out in collected:
        value = {"tombstone": out.key} if out.value is None else orjson.loads(out.value)
        by_kind[kind].append(value)
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
    """A unique prefix for topic names and ``test:<prefix>`` Redis keys, so integration
    tests never see each other's data; the Redis keys are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    client = redis.Redis(*REDIS)
    try:
        keys = list(client.scan_iter(match=f"test:{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
    except redis.RedisError:
        pass  # the test itself reports a missing Redis
    finally:
        client.close()
