"""End to end on the real Kafka and Redis: events -> flow -> NBA on SSE -> accept -> flow input.

Events are produced to the input topic and ``cxstream run --no-tail`` (a real flow
process, hashing identifiers with a key) processes them; ``cxstream serve``'s
services (in this process, on a port of their own) push the NBA to an SSE client,
look the customer up by the raw email (normalised and hashed as the flow did),
take the agent's Accept, publish the response CloudEvent to the input topic, and
the board no longer lists the NBA.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from api.auth import token_digest
from api.server import kafka_services
from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from flows.settings import IdentitySettings
from tests.api.conftest import LiveServer
from tests.api.test_stream import SseReader
from tests.conftest import make_event
from tests.integration.test_crash_recovery import flow_env, run_to_end, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
TOKEN = "e2e-agent-token"
HASH_KEY = "e2e-hash-key"
EMAIL = "Ann.E2E@Example.com "


def test_event_to_sse_to_response_on_the_input_topic(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
        "CX_REDIS__URL": redis_url,
        "CX_IDENTITY__HASH_IDENTIFIERS": "true",
        "CX_IDENTITY__HASH_KEY": HASH_KEY,
    }
    base = settings_of(env, redis_url)
    identity = IdentitySettings(
        privacy_topic=env["CX_IDENTITY__PRIVACY_TOPIC"],
        hash_identifiers=True,
        hash_key=SecretStr(HASH_KEY),
    )
    tokens = {token_digest(TOKEN): ["profiles:read", "stream:read", "responses:write"]}
    api = base.api.model_copy(update={"tokens": SecretStr(orjson.dumps(tokens).decode())})
    settings = base.model_copy(update={"identity": identity, "api": api})
    ensure_topics(settings)
    services = kafka_services(settings, make_store(settings, default="redis", publish=False))
    with LiveServer(services) as server:
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/healthz").json()["stream"] != "ready":
            assert time.monotonic() < deadline, "the stream consumer got no partitions"
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        sse = SseReader(f"{server.url}/v1/stream", {"kinds": "nba"}, auth)

        ids = {"email": EMAIL}
        events = [
            make_event(1, identifiers=ids),
            {
                **make_event(2, identifiers=ids, channel="call_center", nps=2),
                "type": "cx.survey.nps",
            },
        ]
        events[1]["data"]["touchpoint"] = "call_center.billing"
        now = datetime.now(UTC)  # the board's now is the wall clock: NBAs of today
        for n, event in enumerate(events):
            event["time"] = (now - timedelta(seconds=10 - n)).isoformat().replace("+00:00", "Z")
        producer = Producer({"bootstrap.servers": kafka_brokers})
        for event in events:
            producer.produce(settings.topics.events, orjson.dumps(event), partition=0)
        assert producer.flush(10) == 0
        run_to_end(env)

        pushed = sse.wait_for(1, seconds=60)
        sse.close()
        assert pushed, "no NBA reached the SSE client"
        nba = pushed[0]["data"]
        topic, partition, offset = pushed[0]["id"].rsplit("/", 2)
        assert (topic, partition, offset.isdigit()) == (settings.topics.nba, partition, True)
        with server.client(token=TOKEN) as http:
            found = http.post("/v1/profiles/lookup", json={"type": "email", "value": EMAIL})
            assert found.status_code == 200, found.text
            cid = found.json()["customer_id"]
            assert nba["customer_id"] == cid
            # the store holds the keyed hash, never the address
            assert all("@" not in v for v in found.json()["profile"]["identifiers"]["email"])
            listed = http.get(f"/v1/customers/{cid}/actions").json()["nbas"]
            assert nba["id"] in [n["id"] for n in listed]
            timeline = http.get(f"/v1/customers/{cid}/timeline").json()["interactions"]
            assert [i["id"] for i in timeline] == ["evt-1", "evt-2"]

            body = {
                "nba_id": nba["id"],
                "outcome": "accepted",
                "agent_id": "agent-e2e",
                "time": now.isoformat(),
            }
            reply = http.post("/v1/responses", json=body)
            assert reply.status_code == 202, reply.text
            event_id = reply.json()["event_id"]
            after = http.get(f"/v1/customers/{cid}/actions").json()["nbas"]
            assert nba["id"] not in [n["id"] for n in after]

    inputs = consume_all(kafka_brokers, settings.topics.events)
    responses = [m for m in inputs if orjson.loads(m.value()).get("id") == event_id]
    assert len(responses) == 1
    message = responses[0]
    assert message.key() == cid.encode()
    assert dict(message.headers())["content-type"] == b"application/cloudevents+json"
    cloudevent = orjson.loads(message.value())
    assert cloudevent["type"] == "cx.nba.response"
    assert cloudevent["data"]["nba_id"] == nba["id"]
    assert cloudevent["data"]["outcome"] == "accepted"
    assert cloudevent["data"]["customer_id"] == cid
