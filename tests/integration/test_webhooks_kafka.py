"""Webhooks in `cxstream run`: every matching output reaches a real receiver that fails first,
and one that never answers leaves each record in cx.dlq with its last answer."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka

from flows.app.topics import ensure_topics
from tests.conftest import make_event
from tests.integration.test_crash_recovery import flow_env, produce, run_to_end, settings_of
from tests.integration.verifier import consume_all
from tests.sinks.test_webhook import SECRET, Receiver, verify

pytestmark = pytest.mark.integration
RECEIVER_PORT = 18419
DEAD_PORT = 18421  # nothing listens here: every attempt is refused


def test_webhooks_deliver_every_matching_output_and_dead_letter_the_rest(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    common = {
        "kind": "profiles",
        "secret": SECRET,
        "backoff_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
    }
    desk = {"name": "desk", "url": f"http://127.0.0.1:{RECEIVER_PORT}/cx", **common}
    gone = {"name": "gone", "url": f"http://127.0.0.1:{DEAD_PORT}/cx", "max_attempts": 2, **common}
    targets = orjson.dumps([desk, gone]).decode()
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
        "CX_WEBHOOKS__TARGETS": targets,
    }
    settings = settings_of(env, redis_url)
    ensure_topics(settings)
    events = [make_event(n, identifiers={"email": f"w{n % 4}@example.com"}) for n in range(12)]
    produce(kafka_brokers, settings.topics.events, [orjson.dumps(e) for e in events])
    receiver = Receiver(RECEIVER_PORT)
    receiver.script = [503, 503]  # fails twice, then takes everything
    try:
        run = run_to_end(env)
    finally:
        receiver.close()
    assert SECRET not in run.stderr and SECRET not in run.stdout

    profiles = {
        m.value(): m for m in consume_all(kafka_brokers, settings.topics.profiles) if m.value()
    }
    ids = {dict(m.headers())["cx-id"].decode() for m in profiles.values()}
    assert ids
    delivered = {headers["ce-id"] for headers, _, _ in receiver.requests}
    assert delivered == ids  # every profile, at least once
    for headers, body, received in receiver.requests:
        assert verify(headers, body, SECRET, received)
        assert body in profiles

    dead = consume_all(kafka_brokers, settings.topics.dlq)
    letters = [orjson.loads(m.value()) for m in dead]
    assert {letter["reason"] for letter in letters} == {"webhook_failed"}
    assert len(letters) == len(ids)  # one per record the dead target never took
    for message, letter in zip(dead, letters, strict=True):
        assert "webhook gone: not delivered after 2 attempt(s)" in letter["error"]
        assert base64.b64decode(letter["original_b64"]) in profiles
        event = ce_kafka.from_kafka_event(
            ce_kafka.KafkaMessage(dict(message.headers()), message.key(), message.value())
        )
        assert event.get_type() == "cx.event.dead_lettered" and event.get_id() == letter["id"]
