"""Two input partitions, one and two processes: the same windows, breaches and totals.

A world's messages go to two partitions (by a hash of the message, so one customer's events
are spread over both, the hard case); `cxstream run --no-tail` consumes them with one process,
and again, on topics and Redis keys of its own, with two. The NPS windows (every revision) are
byte-identical and so are the SLA breaches, but for the customer each names; the profiles count
every event once and every order's amount once. What may differ (README, *Determinism*): across
two partitions, which of two events first claims a weak identifier decides a conflict, so a
profile may hold another set of identifiers and events; with ONE partition, one and two
processes give byte-identical outputs (the crash test runs two processes against an offline
one-process reference).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from zlib import crc32

import orjson
import pytest
from confluent_kafka import Producer

from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from replay.synthetic import generate_world
from tests.integration.test_crash_recovery import flow_env, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _produce(brokers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, partition=crc32(value) % 2)
        producer.poll(0)
    assert producer.flush(30) == 0


def _run(brokers: str, redis_url: str, prefix: str, tmp: Path, processes: int) -> dict[str, Any]:
    env = {**flow_env(brokers, prefix, tmp / "recovery"), "CX_EPOCH_INTERVAL_SECONDS": "1"}
    base = settings_of(env, redis_url)
    settings = base.model_copy(update={"topics": base.topics.model_copy(update={"partitions": 2})})
    ensure_topics(settings)
    world = generate_world(300, 30, seed=77)
    _produce(brokers, settings.topics.events, [m.value or b"" for m in world.messages()])
    args = [
        sys.executable,
        "-m",
        "flows.app.cli",
        "run",
        "--no-tail",
        "--processes",
        str(processes),
    ]
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    store = make_store(settings, default="redis")
    try:
        profiles = [p for cid in store.customers() if (p := store.profile(cid)) is not None]
    finally:
        store.close()
    nps = sorted(bytes(m.value()) for m in consume_all(brokers, settings.topics.nps))
    breaches = sorted(
        orjson.dumps({k: v for k, v in record.items() if k != "customer_id"})
        for m in consume_all(brokers, settings.topics.alerts)
        if (record := orjson.loads(m.value()))["kind"] == "sla_breach"
    )
    totals = (
        sum(p.event_count for p in profiles),
        round(sum(p.lifetime_value for p in profiles), 2),
        sum(p.orders for p in profiles),
    )
    return {"nps": nps, "breaches": breaches, "totals": totals}


def test_one_and_two_processes_agree_over_two_partitions(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    one = _run(kafka_brokers, redis_url, f"{topic_prefix}one.", tmp_path / "one", 1)
    two = _run(kafka_brokers, redis_url, f"{topic_prefix}two.", tmp_path / "two", 2)
    assert one["nps"] and one["breaches"] and one["totals"][0] > 0
    assert one["nps"] == two["nps"]
    assert one["breaches"] == two["breaches"]
    assert one["totals"] == two["totals"]
