"""The whole loop on the real Kafka and Redis: events -> flow -> SSE -> response -> next decision.

Surveys of two detractors are produced to the input topic and ``cxstream run --no-tail``
(a real flow process, hashing identifiers with a key) decides a callback for each;
``cxstream serve``'s services (in this process, on a port of their own, with the real
Kafka feed and the Redis store and board) push both NBAs to an SSE client and look the
customer up by the raw email (normalised and hashed as the flow did). The agent
rejects Ann's callback with ``POST /v1/responses``: the response CloudEvent goes to the
input topic. Both answer another survey after the callback's 2 h cool-down of the send
but within the cool-down of the rejection; the flow, run again (resumed from its
recovery snapshot), reads the response and then the surveys: Bob gets a new callback
on the SSE stream, Ann none (held back, reason ``rejected``).

The events' times are set back from the wall clock (the board's now), so the NBAs are
current when the API reads them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from api.auth import token_digest
from api.server import kafka_services
from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from flows.settings import IdentitySettings, Settings
from tests.api.conftest import LiveServer
from tests.api.test_stream import SseReader
from tests.flows.test_responses import CATALOGUE
from tests.integration.test_crash_recovery import flow_env, produce, run_to_end, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration
TOKEN = "e2e-agent-token"
HASH_KEY = "e2e-hash-key"
ANN = "Ann.E2E@Example.com "  # capitals and a space: normalised as the flow does
BOB = "bob.e2e@example.com"


def _survey(n: int, at: datetime, email: str) -> bytes:
    data = {"channel": "survey", "touchpoint": "store.till", "identifiers": {"email": email}}
    event = {
        "id": f"evt-{n}",
        "source": "/tests/e2e",
        "type": "cx.survey.completed",
        "time": at.isoformat(),
        "data": {**data, "nps": 3},
    }
    return orjson.dumps(event)


def _settings(env: dict[str, str], redis_url: str) -> Settings:
    base = settings_of(env, redis_url)
    identity = IdentitySettings(
        privacy_topic=env["CX_IDENTITY__PRIVACY_TOPIC"],
        hash_identifiers=True,
        hash_key=SecretStr(HASH_KEY),
    )
    tokens = {token_digest(TOKEN): ["profiles:read", "stream:read", "responses:write"]}
    api = base.api.model_copy(update={"tokens": SecretStr(orjson.dumps(tokens).decode())})
    return base.model_copy(update={"identity": identity, "api": api})


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/healthz").json()["stream"] != "ready":
        assert time.monotonic() < deadline, "the stream consumer got no partitions"
        time.sleep(0.1)


def _by_trigger(pushed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["data"]["trigger_event_ids"][-1]: e["data"] for e in pushed}


def test_events_sse_response_and_the_next_decision(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(CATALOGUE, encoding="utf-8")  # callback: cool-down 2 h, expiry 24 h
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
        "CX_REDIS__URL": redis_url,
        "CX_NBA__CATALOGUE": str(catalogue),
        "CX_IDENTITY__HASH_IDENTIFIERS": "true",
        "CX_IDENTITY__HASH_KEY": HASH_KEY,
    }
    settings = _settings(env, redis_url)
    ensure_topics(settings)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    events = settings.topics.events
    services = kafka_services(settings, make_store(settings, default="redis", publish=False))
    with LiveServer(services) as server, server.client(token=TOKEN) as http:
        _wait_ready(server.url)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        sse = SseReader(f"{server.url}/v1/stream", {"kinds": "nba"}, auth)
        produce(kafka_brokers, events, [_survey(1, t0, ANN), _survey(2, t0, BOB)])
        run_to_end(env, processes=1)

        first = _by_trigger(sse.wait_for(2, seconds=60))
        assert sorted(first) == ["evt-1", "evt-2"], "both callbacks reach the SSE client"
        ann_nba = first["evt-1"]
        topic, _, offset = sse.events[0]["id"].rsplit("/", 2)
        assert (topic, offset.isdigit()) == (settings.topics.nba, True)
        found = http.post("/v1/profiles/lookup", json={"type": "email", "value": ANN})
        assert found.status_code == 200, found.text
        ann = found.json()["customer_id"]
        assert ann_nba["customer_id"] == ann
        # the store holds the keyed hash, never the address
        assert all("@" not in v for v in found.json()["profile"]["identifiers"]["email"])
        listed = http.get(f"/v1/customers/{ann}/actions").json()["nbas"]
        assert [n["id"] for n in listed] == [ann_nba["id"]]
        timeline = http.get(f"/v1/customers/{ann}/timeline").json()["interactions"]
        assert [i["id"] for i in timeline] == ["evt-1"]

        body = {
            "nba_id": ann_nba["id"],
            "outcome": "rejected",
            "agent_id": "agent-e2e",
            "time": (t0 + timedelta(minutes=10)).isoformat(),
        }
        reply = http.post("/v1/responses", json=body)
        assert reply.status_code == 202, reply.text
        event_id = reply.json()["event_id"]
        assert http.get(f"/v1/customers/{ann}/actions").json()["nbas"] == []

        # 125 min after the first surveys: past the send's cool-down, within the rejection's
        later = t0 + timedelta(minutes=125)
        produce(kafka_brokers, events, [_survey(3, later, ANN), _survey(4, later, BOB)])
        run_to_end(env, processes=1)
        second = _by_trigger(sse.wait_for(3, seconds=60))
        time.sleep(2)  # an NBA for Ann would come with Bob's (the same batch)
        sse.close()
        assert sorted(_by_trigger(sse.events)) == ["evt-1", "evt-2", "evt-4"], second
        assert second["evt-4"]["customer_id"] == first["evt-2"]["customer_id"]
        assert http.get(f"/v1/customers/{ann}/actions").json()["nbas"] == []

    inputs = consume_all(kafka_brokers, events)
    responses = [m for m in inputs if orjson.loads(m.value()).get("id") == event_id]
    assert len(responses) == 1
    message = responses[0]
    assert message.key() == ann.encode()
    assert dict(message.headers())["content-type"] == b"application/cloudevents+json"
    cloudevent = orjson.loads(message.value())
    assert cloudevent["type"] == "cx.nba.response"
    assert (cloudevent["data"]["nba_id"], cloudevent["data"]["outcome"]) == (
        ann_nba["id"],
        "rejected",
    )
    # the flow took the response (no unknown_nba / response_conflict dead letter) ...
    assert consume_all(kafka_brokers, settings.topics.dlq) == []
    # ... and the NBA topic has what the SSE client saw: Ann's second survey held back
    on_topic = [orjson.loads(m.value()) for m in consume_all(kafka_brokers, settings.topics.nba)]
    assert sorted(n["trigger_event_ids"][-1] for n in on_topic) == ["evt-1", "evt-2", "evt-4"]
