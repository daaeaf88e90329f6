"""A Redis restart with AOF (appendfsync everysec, as docker-compose.yml runs it) loses
no applied event: a private redis-server is killed and started again on its data."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flows.records import Journeyed
from flows.steps.profile import ProfileStep
from flows.steps.resolve import StoreResolver
from replay.sample import generate_sample
from schemas.envelope import InteractionEvent
from state.redis_store import RedisProfileStore

pytestmark = pytest.mark.integration


def _start(port: int, data: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    server.kill()
    pytest.fail(f"redis-server did not start on port {port} (is Debian's redis-server installed?)")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The redis-servers this test started (never the shared one), killed at the end."""
    servers: list[subprocess.Popen[bytes]] = []
    yield servers
    for server in servers:
        server.kill()
        server.wait()


def test_a_killed_redis_restarted_from_its_aof_keeps_every_applied_event(
    free_tcp_port: int, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    port, data = free_tcp_port, tmp_path / "redis"
    data.mkdir()
    events = []
    for raw in generate_sample(customers=40, days=10, seed=17):
        try:
            events.append(InteractionEvent.model_validate_json(raw.value or b""))
        except ValueError:
            continue
    server = _start(port, data)
    started.append(server)
    store = RedisProfileStore(f"redis://127.0.0.1:{port}/0", "aof:")
    resolver, profiles = StoreResolver(store), ProfileStep(store)
    for start in range(0, len(events), 100):
        resolved = resolver.resolve_batch(events[start : start + 100])
        profiles.apply_profiles([Journeyed(r, None, None, {}) for r in resolved])
    before = {cid: store.profile(cid) for cid in store.customers()}
    assert sum(p.event_count for p in before.values() if p) >= len(events) * 0.9
    time.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
    server.kill()  # SIGKILL: no shutdown save, the AOF alone brings it back
    server.wait()
    store.close()

    started.append(_start(port, data))
    again = RedisProfileStore(f"redis://127.0.0.1:{port}/0", "aof:")
    after = {cid: again.profile(cid) for cid in again.customers()}
    assert after == before
    # and the events re-read from Kafka after such a restart change nothing
    resolver, profiles = StoreResolver(again), ProfileStep(again)
    resolved = resolver.resolve_batch(events[-100:])
    profiles.apply_profiles([Journeyed(r, None, None, {}) for r in resolved])
    assert {cid: again.profile(cid) for cid in again.customers()} == before
    again.close()
