"""The Experience API over real HTTP (uvicorn) on the demo's results: each endpoint's contract."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from api.auth import token_digest
from api.openapi import openapi_document
from api.server import demo_services
from flows.app.cli import main
from state.redis_actions import board_for
from tests.api.conftest import DEMO_EMAIL, TOKEN, Demo, LiveServer

NOW = "2026-03-16T08:00:00Z"


def _customer(server: LiveServer, email: str = DEMO_EMAIL) -> str:
    with server.client() as http:
        found = http.post("/v1/profiles/lookup", json={"type": "email", "value": email})
    assert found.status_code == 200, found.text
    return str(found.json()["customer_id"])


def test_lookup_normalises_like_the_flow(demo_server: LiveServer) -> None:
    with demo_server.client() as http:
        messy = http.post(
            "/v1/profiles/lookup", json={"type": " Email", "value": " FAY.Smith33@Example.COM "}
        )
        assert messy.status_code == 200
        body = messy.json()
        assert body["customer_id"] == body["profile"]["customer_id"]
        assert body["profile"]["event_count"] > 1
        crm = http.post("/v1/profiles/lookup", json={"type": "crm_id", "value": "C-10033"})
        assert crm.json()["customer_id"] == body["customer_id"]
        missing = http.post(
            "/v1/profiles/lookup", json={"type": "email", "value": "nobody@example.com"}
        )
        assert (missing.status_code, missing.json()) == (
            404,
            {"detail": "no customer has this identifier"},
        )
        bad = http.post("/v1/profiles/lookup", json={"type": "email", "value": "not-an-email"})
        assert bad.status_code == 422
        assert "not-an-email" not in bad.text
        extra = http.post("/v1/profiles/lookup", json={"type": "email", "value": "a@b.c", "x": 1})
        assert extra.status_code == 422
        assert "a@b.c" not in extra.text  # validation errors never echo the input


def test_customer_timeline_and_actions(demo_server: LiveServer) -> None:
    cid = _customer(demo_server)
    with demo_server.client() as http:
        profile = http.get(f"/v1/customers/{cid}").json()
        assert profile["customer_id"] == cid
        timeline = http.get(f"/v1/customers/{cid}/timeline").json()
        interactions = timeline["interactions"]
        assert len(interactions) == profile["event_count"]  # all of them: under the bound
        assert [i["time"] for i in interactions] == sorted(i["time"] for i in interactions)
        assert {"stage", "sentiment", "touchpoint", "channel", "type", "id"} <= set(interactions[0])
        assert any(isinstance(i["sentiment"], float) for i in interactions)
        assert timeline["sentiment"]["windows"] == profile["sentiment_windows"]
        assert timeline["sentiment"]["trend"] == profile["sentiment_trend"]
        actions = http.get(f"/v1/customers/{cid}/actions").json()
        assert len(actions["nbas"]) == 2
        assert all(n["customer_id"] == cid and n["outcomes"] == [] for n in actions["nbas"])
        assert all(n["expires_at"] > profile["last_seen"] for n in actions["nbas"])
        assert http.get("/v1/customers/cust-nobody").status_code == 404


def test_responses_validated_idempotent_and_published(demo: Demo, demo_server: LiveServer) -> None:
    cid = _customer(demo_server)
    with demo_server.client() as http:
        first, second = http.get(f"/v1/customers/{cid}/actions").json()["nbas"]

        def send(nba_id: str, outcome: str, **extra: object) -> tuple[int, dict[str, object]]:
            body = {
                "nba_id": nba_id,
                "outcome": outcome,
                "agent_id": "agent-7",
                "time": NOW,
                **extra,
            }
            reply = http.post("/v1/responses", json=body)
            return reply.status_code, reply.json()

        assert send(first["id"], "impression")[0] == 202
        code, accepted = send(first["id"], "accepted")
        assert (code, accepted["duplicate"], accepted["outcomes"]) == (
            202,
            False,
            ["impression", "accepted"],
        )
        code, again = send(first["id"], "accepted")
        assert (code, again["duplicate"], again["event_id"]) == (202, True, accepted["event_id"])
        code, refused = send(first["id"], "rejected")
        assert code == 409
        assert "already answered" in str(refused["detail"])
        assert send("nba-unknown", "accepted")[0] == 404
        assert send(second["id"], "maybe")[0] == 422
        assert send(second["id"], "accepted", time="2026-03-16T08:00:00")[0] == 422  # no zone
        listed = [n["id"] for n in http.get(f"/v1/customers/{cid}/actions").json()["nbas"]]
        assert listed == [second["id"]]
    published = [
        orjson.loads(line) for line in (demo.out_dir / "responses.jsonl").read_bytes().splitlines()
    ]
    assert [(e["data"]["outcome"], e["type"]) for e in published] == [
        ("impression", "cx.nba.response"),
        ("accepted", "cx.nba.response"),
        ("accepted", "cx.nba.response"),  # the duplicate again: the same event id
    ]
    assert published[1] == published[2]
    assert published[1]["id"] == accepted["event_id"]
    assert published[1]["data"]["customer_id"] == cid
    assert published[1]["data"]["nba_id"] == first["id"]


def test_an_expired_nba_takes_no_response(demo: Demo, demo_server: LiveServer) -> None:
    cid = _customer(demo_server)
    board = board_for(demo.store)
    old = [
        n
        for n in board.actions(cid, 0).nbas
        if n["id"]
        not in {x["id"] for x in board.actions(cid, demo_server.services.now_ms(cid)).nbas}
    ]
    assert old, "the demo customer has an NBA that expired before their last event"
    with demo_server.client() as http:
        body = {"nba_id": old[0]["id"], "outcome": "accepted", "agent_id": "a", "time": NOW}
        reply = http.post("/v1/responses", json=body)
    assert reply.status_code == 409
    assert "expired" in reply.json()["detail"]


def test_tokens_scopes_and_rate(demo: Demo) -> None:
    reader, writer = "reader-token", "writer-token"
    services = demo_services(demo.settings, demo.store, demo.out_dir, TOKEN)
    tokens = {token_digest(reader): ["profiles:read"], token_digest(writer): ["responses:write"]}
    conf = services.conf.model_copy(
        update={
            "tokens": SecretStr(orjson.dumps(tokens).decode()),
            "rate_per_second": 1.0,
            "rate_burst": 3,
        }
    )
    services.conf = conf
    with LiveServer(services) as server:
        body = {"type": "email", "value": DEMO_EMAIL}
        with server.client(token=None) as anonymous:
            none = anonymous.post("/v1/profiles/lookup", json=body)
            assert none.status_code == 401
            assert none.headers["www-authenticate"] == "Bearer"
            wrong = anonymous.post(
                "/v1/profiles/lookup", json=body, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            basic = anonymous.post(
                "/v1/profiles/lookup", json=body, headers={"Authorization": "Basic eDp5"}
            )
            assert basic.status_code == 401
            assert anonymous.get("/healthz").status_code == 200  # health needs no token
        with server.client(token=writer) as http:
            forbidden = http.post("/v1/profiles/lookup", json=body)
            assert forbidden.status_code == 403
            assert "profiles:read" in forbidden.json()["detail"]
            assert http.get("/v1/stream").status_code == 403
        with server.client(token=reader) as http:
            codes = [http.post("/v1/profiles/lookup", json=body).status_code for _ in range(5)]
            assert codes[:3] == [200, 200, 200]
            assert codes[3:] == [429, 429]
            limited = http.post("/v1/profiles/lookup", json=body)
            assert int(limited.headers["retry-after"]) >= 1
    assert "reader-token" not in repr(conf) and token_digest(reader) not in repr(conf)


def test_cors_allow_list_and_body_limit(demo: Demo) -> None:
    services = demo_services(demo.settings, demo.store, demo.out_dir, TOKEN)
    services.conf = services.conf.model_copy(
        update={"cors_origins": ["https://crm.example"], "max_body_bytes": 512}
    )
    with LiveServer(services) as server, server.client() as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = http.options(
            "/v1/profiles/lookup", headers={"Origin": "https://crm.example", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://crm.example"
        evil = http.options(
            "/v1/profiles/lookup", headers={"Origin": "https://evil.example", **preflight}
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        big = http.post("/v1/profiles/lookup", json={"type": "email", "value": "x" * 600})
        assert big.status_code == 413
        assert "512" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:
            yield b'{"type": "email", "value": "'
            yield b"x" * 600
            yield b'"}'

        streamed = http.post(
            "/v1/profiles/lookup", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413


def test_an_erased_customer_is_404_everywhere(demo: Demo, demo_server: LiveServer) -> None:
    cid = _customer(demo_server)
    with demo_server.client() as http:
        nba_id = http.get(f"/v1/customers/{cid}/actions").json()["nbas"][0]["id"]
    demo.store.erase(cid)  # as the flow does for an erase request (the board keeps its items)
    with demo_server.client() as http:
        lookup = http.post("/v1/profiles/lookup", json={"type": "email", "value": DEMO_EMAIL})
        assert lookup.status_code == 404
        for path in ("", "/timeline", "/actions"):
            assert http.get(f"/v1/customers/{cid}{path}").status_code == 404, path
        assert http.get("/v1/stream", params={"customer_id": cid}).status_code == 404
        body = {"nba_id": nba_id, "outcome": "accepted", "agent_id": "a", "time": NOW}
        assert http.post("/v1/responses", json=body).status_code == 404


def test_no_identifier_value_in_any_log_line(
    demo_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Fay.Smith33@Example.com"
    with caplog.at_level(logging.DEBUG), demo_server.client() as http:
        assert (
            http.post("/v1/profiles/lookup", json={"type": "email", "value": secret}).status_code
            == 200
        )
        http.post(
            "/v1/profiles/lookup", json={"type": "email", "value": "someone.else@example.com"}
        )
        http.post("/v1/profiles/lookup", json={"type": "phone", "value": "not a phone"})
        http.post("/v1/profiles/lookup", json={"type": "crm_id", "value": "C-10033"})
    lines = [record.getMessage() for record in caplog.records]
    assert any("POST /v1/profiles/lookup" in line for line in lines)  # access log captured
    assert any("lookup by email" in line for line in lines)
    for value in (secret, secret.lower(), "someone.else", "not a phone", "C-10033"):
        assert not [line for line in lines if value in line], value


def test_openapi_served_and_exported(demo_server: LiveServer, tmp_path: Path) -> None:
    with demo_server.client(token=None) as http:
        served = http.get("/openapi.json").json()
    assert set(served["paths"]) >= {
        "/healthz",
        "/v1/profiles/lookup",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/timeline",
        "/v1/customers/{customer_id}/actions",
        "/v1/stream",
        "/v1/responses",
    }
    assert served == openapi_document()
    assert main(["schema", "openapi", str(tmp_path)]) == 0
    path = tmp_path / "openapi.json"
    assert orjson.loads(path.read_bytes()) == served
    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    assert committed.read_bytes() == path.read_bytes(), "regenerate: cxstream schema openapi docs"
