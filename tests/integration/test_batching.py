"""`cxstream run` over Kafka at two batch sizes: every output topic gives the same records.

One input partition, the real broker and Redis, `run --no-tail` with `CX_KAFKA__BATCH_SIZE`
1000 and then 37, each on topics and Redis keys of its own. Dead letters, identity merges,
alerts, NBAs and NPS windows are byte-identical, record for record (per key, in order); the
compacted `cx.profiles` and `cx.households` hold the same latest record per customer and per
household (their intermediate versions may differ: README, *Determinism*).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from flows.app.topics import ensure_topics
from replay.synthetic import generate_world
from tests.integration.test_crash_recovery import flow_env, run_to_end, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
KINDS = ("dlq", "identity", "alerts", "nba", "nps")


def _run(
    brokers: str, redis_url: str, inputs: dict[str, str], prefix: str, tmp: Path, batch: int
) -> dict[str, Any]:
    """One run reading the shared input topics, writing topics and keys of its own."""
    env = {
        **flow_env(brokers, prefix, tmp / "recovery"),
        **inputs,
        "CX_EPOCH_INTERVAL_SECONDS": "1",
        "CX_KAFKA__BATCH_SIZE": str(batch),
    }
    settings = settings_of(env, redis_url)
    ensure_topics(settings)
    run_to_end(env, processes=1, timeout=300)
    out: dict[str, Any] = {}
    for kind in KINDS:
        per_key: dict[bytes, list[bytes]] = defaultdict(list)
        for m in consume_all(brokers, getattr(settings.topics, kind)):
            per_key[bytes(m.key() or b"")].append(bytes(m.value() or b""))
        out[kind] = dict(per_key)
    for compacted in ("profiles", "households"):
        latest: dict[bytes, bytes | None] = {}
        for m in consume_all(brokers, getattr(settings.topics, compacted)):
            latest[bytes(m.key() or b"")] = None if m.value() is None else bytes(m.value())
        out[compacted] = latest
    # a household deleted is as good as one never formed (small batches may see a
    # kiosk link two users before its third arrives): the live ones must agree
    out["households"] = {k: v for k, v in out["households"].items() if v is not None}
    return out


def test_every_topic_is_the_same_whatever_the_batch_size(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    # dead letters name their input topic: both runs read the same one
    shared = flow_env(kafka_brokers, f"{topic_prefix}in.", tmp_path / "unused")
    inputs = {k: shared[k] for k in ("CX_TOPICS__EVENTS", "CX_IDENTITY__PRIVACY_TOPIC")}
    ensure_topics(settings_of(shared, redis_url))
    producer = Producer({"bootstrap.servers": kafka_brokers, "enable.idempotence": True})
    for message in generate_world(200, 20, seed=5).messages():
        producer.produce(inputs["CX_TOPICS__EVENTS"], message.value or b"", partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0
    big = _run(kafka_brokers, redis_url, inputs, f"{topic_prefix}big.", tmp_path / "big", 1000)
    small = _run(kafka_brokers, redis_url, inputs, f"{topic_prefix}small.", tmp_path / "s", 37)
    for kind in (*KINDS, "profiles", "households"):
        assert big[kind], kind
        assert big[kind] == small[kind], kind
