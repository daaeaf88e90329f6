"""The CloudEvents Kafka binding end to end, on the real broker: a producer using the official
SDK in both modes, the flow, and consumers reading every output back with the SDK's from_kafka."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Producer

from flows.app.topics import ensure_topics
from replay.kafka_io import play, record
from replay.log import read_log
from schemas.cloudevents import OUTPUT_TYPES
from tests.conftest import make_event
from tests.integration.test_crash_recovery import flow_env, run_to_end, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
CUSTOMERS = 6


def _sdk_message(n: int, mode: str) -> ce_kafka.KafkaMessage:
    body = make_event(n, identifiers={"email": f"ce{n % CUSTOMERS}@example.com"}, nps=n % 11)
    body["type"] = "cx.survey.nps"
    data = body.pop("data")
    body["time"] = datetime.fromisoformat(body["time"])
    attributes = {**body, "datacontenttype": "application/json", "partitionkey": f"p{n}"}
    event = CloudEvent(attributes=attributes, data=data)
    return (
        ce_kafka.to_binary_event(event) if mode == "binary" else ce_kafka.to_structured_event(event)
    )


def _produce(brokers: str, topic: str, messages: list[ce_kafka.KafkaMessage]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    for message in messages:
        # a header with a null value too (Kafka allows it; it is kept as an empty one)
        headers: list[tuple[str, str | bytes | None]] = [
            *message.headers.items(),
            ("x-trace", None),
        ]
        producer.produce(topic, message.value, message.key, headers=headers)
    assert producer.flush(30) == 0


def _as_sdk_message(msg: Any) -> ce_kafka.KafkaMessage:
    return ce_kafka.KafkaMessage(
        headers=dict(msg.headers() or []), key=msg.key(), value=msg.value()
    )


def test_sdk_messages_in_both_modes_are_processed_and_every_output_reads_as_a_cloudevent(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
    }
    settings = settings_of(env, redis_url)
    ensure_topics(settings)
    events_topic = settings.topics.events
    binary = [_sdk_message(n, "binary") for n in range(0, 40, 2)]
    structured = [_sdk_message(n, "structured") for n in range(1, 40, 2)]
    tombstone = ce_kafka.KafkaMessage({**binary[0].headers, "ce_id": b"gone"}, b"t", None)  # type: ignore[arg-type]
    bad_spec = ce_kafka.KafkaMessage(
        {**binary[1].headers, "ce_specversion": b"0.3"}, None, binary[1].value
    )
    _produce(kafka_brokers, events_topic, [*binary, *structured, tombstone, bad_spec])

    # Record / replay round-trips binary-mode messages exactly (headers included).
    log = tmp_path / "in.jsonl"
    assert record(settings.kafka.client_config(), events_topic, log) == 42
    again = f"{topic_prefix}replayed"
    play({"bootstrap.servers": kafka_brokers}, log, topic=again)
    log2 = tmp_path / "again.jsonl"
    record(settings.kafka.client_config(), again, log2)
    strip = [(m.key, m.value, m.headers) for m in read_log(log)]
    assert sorted(strip, key=repr) == sorted(
        ((m.key, m.value, m.headers) for m in read_log(log2)), key=repr
    )
    assert any(dict(h).get("ce_specversion") == b"1.0" for _, _, h in strip)
    assert all(dict(h)["x-trace"] == b"" for _, _, h in strip)

    run_to_end(env)

    topics = settings.topics.output_topics()
    latest: dict[str, dict[str, Any]] = {}
    seen_types: set[str] = set()
    for kind, topic in topics.items():
        for msg in consume_all(kafka_brokers, topic):
            if msg.value() is None:
                continue  # a tombstone of the compacted profiles topic
            event = ce_kafka.from_kafka_event(_as_sdk_message(msg))
            record_json = orjson.loads(msg.value())
            headers = dict(msg.headers())
            assert event.get_id() == headers["cx-id"].decode()  # the deterministic output id
            assert event.get_data() == record_json  # the value is the record JSON, unchanged
            assert event.get_source() == "/cxstream"
            assert event.get_datacontenttype() == "application/json"
            seen_types.add(event.get_type())
            assert event.get_type() in OUTPUT_TYPES.values()
            if kind == "profiles":
                assert event.get_subject() == record_json["customer_id"] == msg.key().decode()
                assert event.get_time() == datetime.fromisoformat(record_json["last_seen"])
                if (
                    record_json["version"]
                    >= latest.get(record_json["customer_id"], {"version": -1})["version"]
                ):
                    latest[record_json["customer_id"]] = record_json
            elif kind == "dlq":
                assert event.get_type() == "cx.event.dead_lettered"
            elif "time" in record_json:
                assert event.get_time() == datetime.fromisoformat(record_json["time"])
    # Every valid event, of either mode, counted once; the two bad ones dead-lettered.
    assert sum(p["event_count"] for p in latest.values()) == 40
    assert len(latest) == CUSTOMERS
    assert {"cx.profile.updated", "cx.event.dead_lettered"} <= seen_types
    dead = [orjson.loads(m.value()) for m in consume_all(kafka_brokers, topics["dlq"])]
    assert sorted(d["reason"] for d in dead) == ["tombstone", "unknown_specversion"]
    for letter in dead:
        kept = {name: base64.b64decode(value) for name, value in letter["headers"]}
        assert kept["ce_source"] == b"/tests"  # the original headers, kept
    bad = next(d for d in dead if d["reason"] == "unknown_specversion")
    assert base64.b64decode(bad["original_b64"]) == binary[1].value
