"""Outages mid-stream: Redis stops and comes back; the flow waits, resumes, loses nothing.

The test runs its own redis-server (append-only file, so a restart keeps the
data, as a production Redis with persistence would) and stops it with SIGTERM
while ``cxstream run`` is working through a backlog on the real Kafka. Redis comes
back a few seconds later; the flow, which retried with backoff meanwhile, must
finish the backlog with every event counted once, the identity graph consistent,
and the outage visible in its metrics and logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis

from flows.app.offline import run_offline
from flows.app.run import free_ports
from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from flows.settings import Settings
from replay.log import write_log
from replay.synthetic import generate_world
from schemas.outputs import ProfileSnapshot
from tests.integration.test_crash_recovery import (
    REPO,
    flow_env,
    produce,
    settings_of,
    wait_for_output,
)
from tests.integration.verifier import consume_all
from tests.state.conftest import _graph_problems

pytestmark = pytest.mark.integration


class RedisServer:
    """A redis-server of the test's own, which can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis finishes the running script and exits
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def backlog(brokers: str, settings: Settings, customers: int, seed: int, tmp: Path) -> Path:
    """Produce a synthetic world to the events topic; run it offline; return that output dir."""
    ensure_topics(settings)
    world = generate_world(customers, 60, seed=seed)
    values = [m.value or b"" for m in world.messages()]
    log = tmp / "input.jsonl"
    write_log(log, produce(brokers, settings.topics.events, values))
    run_offline(Settings(), [log], tmp / "reference")
    return tmp / "reference"


def run_through(
    brokers: str, settings: Settings, env: dict[str, str], disrupt: Callable[[], None]
) -> str:
    """Run the flow to the end of the backlog, calling ``disrupt`` once it is under way;
    return its stderr."""
    flow = subprocess.Popen(
        [sys.executable, "-m", "flows.app.cli", "run", "--no-tail"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_output(brokers, [settings.topics.identity, settings.topics.dlq], 0)
        assert flow.poll() is None, "the flow ended before the outage"
        disrupt()
        _, stderr = flow.communicate(timeout=300)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, stderr[-3000:]
    return stderr


def counted_events(settings: Settings) -> int:
    """Events counted in the store's profiles."""
    store = make_store(settings, default="redis")
    try:
        return sum(p.event_count for c in store.customers() if (p := store.profile(c)))
    finally:
        store.close()


def reference_events(reference: Path) -> int:
    return sum(p.event_count for p in _profiles(reference / "profiles.jsonl"))


def test_redis_stopped_mid_stream_then_back_loses_nothing(
    kafka_brokers: str, own_redis: RedisServer, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_ports(1)[0]
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_REDIS__URL": own_redis.url,
        "CX_METRICS__ENABLED": "true",
        "CX_METRICS__PORT": str(port),
        "CX_RETRY__MAX_BACKOFF_SECONDS": "0.5",
        "CX_EPOCH_INTERVAL_SECONDS": "1",
    }
    settings = settings_of(env, own_redis.url)
    reference = backlog(kafka_brokers, settings, 400, 7, tmp_path)
    during = ""

    def outage() -> None:
        nonlocal during
        own_redis.stop()
        time.sleep(3)  # the flow keeps retrying meanwhile
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            during = reply.read().decode()
        own_redis.start()

    stderr = run_through(kafka_brokers, settings, env, outage)
    assert metric(during, "cx_store_retries_total") > 0
    assert metric(during, "cx_store_available") == 0
    assert "profile store unreachable" in stderr and "profile store back" in stderr
    assert counted_events(settings) == reference_events(reference)
    client = redis.Redis.from_url(own_redis.url)
    try:
        assert _graph_problems(client, settings.redis.prefix) == []
    finally:
        client.close()


def _profiles(path: Path) -> list[ProfileSnapshot]:
    return [ProfileSnapshot.model_validate_json(line) for line in path.read_bytes().splitlines()]


class KafkaBroker:
    """A second KRaft broker of the test's own (scripts/services.sh with other ports and state)."""

    def __init__(self, state: Path) -> None:
        self.port, controller = free_ports(2)
        self.env = {
            **os.environ,
            "CX_SERVICES_STATE": str(state),
            "CX_KAFKA_PORT": str(self.port),
            "CX_KAFKA_CONTROLLER_PORT": str(controller),
            "CX_KAFKA_HEAP_OPTS": "-Xmx512m -Xms256m",
        }

    @property
    def brokers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _services(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]

    def start(self) -> None:
        self._services("start")  # reuses the shared Redis; formats storage only once

    def stop(self) -> None:
        self._services("stop")  # SIGTERM: a controlled shutdown, like a rolling restart


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path / "services")
    broker.start()
    yield broker
    broker.stop()


def test_kafka_broker_restarted_mid_stream_loses_nothing(
    own_kafka: KafkaBroker, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A controlled shutdown mid-backlog, then the broker back: ``run --no-tail`` ends.

    Now and then a client asks for metadata just while the broker shuts down, gets a
    reply that lists no brokers, and librdkafka keeps none (sinks/kafka_clients.py);
    with Bytewax's own source, a consumer stranded so (typically the empty privacy
    topic's, which had not yet had its end-of-partition reply) never ended the run.
    tests/integration/test_kafka_source.py pins that down deterministically."""
    env = {
        **flow_env(own_kafka.brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
    }
    settings = settings_of(env, redis_url)
    reference = backlog(own_kafka.brokers, settings, 600, 8, tmp_path)

    def restart() -> None:
        own_kafka.stop()
        time.sleep(2)
        own_kafka.start()

    run_through(own_kafka.brokers, settings, env, restart)
    assert counted_events(settings) == reference_events(reference)
    dead = len((reference / "dlq.jsonl").read_bytes().splitlines())
    letters = consume_all(own_kafka.brokers, settings.topics.dlq)
    reasons = Counter(orjson.loads(m.value())["reason"] for m in letters)
    assert sum(reasons.values()) == dead, reasons  # no kafka_error letters from the restart
