"""The flow against the real broker: valid events once, invalid ones in cx.dlq, nothing lost."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from flows.app.topics import ensure_topics
from flows.settings import IdentitySettings, KafkaSettings, Settings, TopicSettings
from schemas.records import OUTPUT_KINDS
from tests.conftest import make_event
from tests.integration.test_crash_recovery import flow_env, run_to_end
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
ONE_MB = 1_048_576


def _invalid_messages() -> dict[str, bytes]:
    wrong_types = make_event(900, nps="ten", amount="lots")
    missing_id = make_event(901)
    del missing_id["id"]
    too_big = make_event(902, text="x" * ONE_MB)
    return {
        "not_json": b"{this is not json",
        "not_utf8": b'{"id": "\xff\xfe"}',
        "wrong_types": orjson.dumps(wrong_types),
        "missing_id": orjson.dumps(missing_id),
        "nps_11": orjson.dumps(make_event(903, nps=11)),
        "too_large": orjson.dumps(too_big),
        "empty": b"",
    }


def _valid_events() -> list[dict[str, Any]]:
    events = [make_event(n, identifiers={"email": f"c{n % 17}@example.com"}) for n in range(300)]
    # Unknown fields, at both levels, must not make an event invalid.
    events[5] = {**events[5], "x_trace": "abc", "data": {**events[5]["data"], "x_basket": [1, 2]}}
    return events


def _produce(brokers: str, topic: str, values: list[bytes]) -> dict[bytes, tuple[int, int]]:
    """Send values round-robin over partitions; return value -> (partition, offset)."""
    producer = Producer(
        {"bootstrap.servers": brokers, "enable.idempotence": True, "message.max.bytes": 16_000_000}
    )
    placed: dict[bytes, tuple[int, int]] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        placed.setdefault(msg.value() or b"", (msg.partition(), msg.offset()))

    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % 2, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    return placed


@pytest.mark.parametrize("processes", [1, 2])
def test_valid_events_once_invalid_in_dlq_nothing_lost(
    kafka_brokers: str, redis_url: str, topic_prefix: str, processes: int, tmp_path: Path
) -> None:
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
    }
    topics = {k: env[f"CX_TOPICS__{k.upper()}"] for k in ("events", "profiles", "dlq")}
    settings = Settings(
        identity=IdentitySettings(privacy_topic=env["CX_IDENTITY__PRIVACY_TOPIC"]),
        kafka=KafkaSettings(brokers=kafka_brokers),
        topics=TopicSettings(
            **{k: env[f"CX_TOPICS__{k.upper()}"] for k in OUTPUT_KINDS}, events=topics["events"]
        ),
    )
    created = ensure_topics(settings)
    assert topics["events"] in created and topics["profiles"] in created

    valid = _valid_events()
    invalid = _invalid_messages()
    valid_bytes = [orjson.dumps(e) for e in valid]
    duplicates = valid_bytes[:25]  # at-least-once input: re-deliveries
    placed = _produce(
        kafka_brokers, topics["events"], valid_bytes + duplicates + list(invalid.values())
    )

    run_to_end(env, processes)

    # Each invalid message is in cx.dlq once, with its original bytes, reason and coordinates.
    dead = [orjson.loads(m.value()) for m in consume_all(kafka_brokers, topics["dlq"])]
    by_original = {base64.b64decode(d["original_b64"]): d for d in dead}
    assert len(dead) == len(invalid)
    for name, value in invalid.items():
        letter = by_original[value]
        assert (letter["partition"], letter["offset"]) == placed[value], name
        assert letter["topic"] == topics["events"]
        assert letter["reason"] and letter["error"], name
    reasons = {name: by_original[value]["reason"] for name, value in invalid.items()}
    assert reasons == {
        "not_json": "not_json",
        "not_utf8": "not_utf8",
        "wrong_types": "invalid_event",
        "missing_id": "invalid_event",
        "nps_11": "invalid_event",
        "too_large": "too_large",
        "empty": "empty",
    }
    assert "data.nps" in by_original[invalid["nps_11"]]["error"]

    # Every valid event is counted exactly once in the final profiles.
    latest: dict[str, dict[str, Any]] = {}
    for message in consume_all(kafka_brokers, topics["profiles"]):
        profile = orjson.loads(message.value())
        assert message.key().decode() == profile["customer_id"]
        if profile["version"] >= latest.get(profile["customer_id"], {"version": -1})["version"]:
            latest[profile["customer_id"]] = profile
    assert len(latest) == 17
    assert sum(p["event_count"] for p in latest.values()) == len(valid)
    # Nothing lost: every produced message is a counted event, a dropped re-delivery or a
    # dead letter.
    counted = sum(p["event_count"] for p in latest.values())
    produced = len(valid_bytes) + len(duplicates) + len(invalid)
    assert counted + len(duplicates) + len(dead) == produced
