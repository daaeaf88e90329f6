"""The live stream: the hub's fan-out, filters, resume and slow clients; SSE over real Kafka."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from api.stream import DROPPED, Filters, Hub, ResumeError, StreamEvent
from flows.settings import Settings
from tests.api.conftest import DEMO_EMAIL, TOKEN, LiveServer


def _nba(n: int, cid: str = "c1", channel: str = "email", **extra: Any) -> StreamEvent:
    body = {"id": f"nba-{n}", "customer_id": cid, "channel": channel, **extra}
    return StreamEvent(f"cx.nba/0/{n}", "nba", body)


def _alert(n: int, cid: str = "c1", kind: str = "detractor") -> StreamEvent:
    return StreamEvent(
        f"cx.alerts/1/{n}", "alert", {"id": f"al-{n}", "customer_id": cid, "kind": kind}
    )


def _drain(queue: asyncio.Queue[bytes]) -> list[bytes]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def _ids(frames: list[bytes]) -> list[str]:
    return [
        f.split(b"\n", 1)[0].removeprefix(b"id: ").decode() for f in frames if f.startswith(b"id: ")
    ]


def test_fan_out_applies_each_clients_filters() -> None:
    async def scenario() -> dict[str, list[str]]:
        hub = Hub(history=100, client_queue=100)
        clients = {
            "all": hub.subscribe(Filters()),
            "c1": hub.subscribe(Filters(customer_id="c1")),
            "chat": hub.subscribe(Filters(channel="chat")),
            "detractor": hub.subscribe(Filters(alert_kind="detractor")),
            "nba-only": hub.subscribe(Filters(kinds=frozenset({"nba"}))),
            "queue": hub.subscribe(Filters(queue="billing")),
            "agent": hub.subscribe(Filters(agent_id="a7")),
        }
        for event in (
            _nba(1),
            _nba(2, "c2", "chat", profile_excerpt={"queue": "billing"}),
            _alert(3),
            _alert(4, "c2", "sla_breach"),
            _nba(5, agent_id="a7"),
        ):
            hub.publish(event)
        return {name: _ids(_drain(c.queue)) for name, c in clients.items()}

    got = asyncio.run(scenario())
    assert got["all"] == [
        "cx.nba/0/1",
        "cx.nba/0/2",
        "cx.alerts/1/3",
        "cx.alerts/1/4",
        "cx.nba/0/5",
    ]
    assert got["c1"] == ["cx.nba/0/1", "cx.alerts/1/3", "cx.nba/0/5"]
    assert got["chat"] == ["cx.nba/0/2"]
    assert got["detractor"] == ["cx.alerts/1/3"]
    assert got["nba-only"] == ["cx.nba/0/1", "cx.nba/0/2", "cx.nba/0/5"]
    assert got["queue"] == ["cx.nba/0/2"]
    assert got["agent"] == ["cx.nba/0/5"]


def test_resume_from_history_and_refusals() -> None:
    async def scenario() -> None:
        hub = Hub(history=5, client_queue=10)
        for n in range(8):
            hub.publish(_nba(n, "c1" if n % 2 else "c2"))
        resumed = hub.subscribe(Filters(customer_id="c1"), last_event_id="cx.nba/0/4")
        assert _ids(_drain(resumed.queue)) == ["cx.nba/0/5", "cx.nba/0/7"]
        hub.publish(_nba(9))
        assert _ids(_drain(resumed.queue)) == ["cx.nba/0/9"]
        with pytest.raises(ResumeError, match="keeps the last 5 events"):
            hub.subscribe(Filters(), last_event_id="cx.nba/0/1")  # fell out of the history
        with pytest.raises(ResumeError, match="not an id this stream sent"):
            hub.subscribe(Filters(), last_event_id="garbage")

    asyncio.run(scenario())


def test_a_slow_client_is_dropped_and_the_others_get_everything() -> None:
    async def scenario() -> None:
        hub = Hub(history=100, client_queue=3)
        slow, fast = hub.subscribe(Filters()), hub.subscribe(Filters())
        received: list[bytes] = []
        for n in range(10):
            hub.publish(_nba(n))
            received.extend(_drain(fast.queue))  # the fast one keeps up
        assert _ids(received) == [f"cx.nba/0/{n}" for n in range(10)]
        assert slow.dropped
        assert _drain(slow.queue) == [DROPPED]
        assert slow not in hub.clients
        assert fast in hub.clients
        assert hub.dropped == 1

    asyncio.run(scenario())


class SseReader:
    """Reads an SSE response in a thread; ``events`` fills as frames arrive."""

    def __init__(self, url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.status = 0
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, params, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(20), "the stream did not open"

    def _run(self, url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, params=params, headers=headers, timeout=30) as reply:
            self.status = reply.status_code
            self.opened.set()
            frame: dict[str, Any] = {}
            for line in reply.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    if "data" in frame:
                        self.events.append({**frame, "data": orjson.loads(frame["data"])})
                    frame = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    frame[name] = value

    def wait_for(self, count: int, seconds: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events

    def close(self) -> None:
        self._stop.set()


def test_sse_over_kafka_fans_out_filters_and_resumes(
    kafka_server: tuple[LiveServer, Settings],
) -> None:
    server, settings = kafka_server
    with server.client() as http:
        cid = http.post("/v1/profiles/lookup", json={"type": "email", "value": DEMO_EMAIL}).json()[
            "customer_id"
        ]
        other = http.post(
            "/v1/profiles/lookup", json={"type": "crm_id", "value": "C-10010"}
        ).json()["customer_id"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    everything = SseReader(f"{server.url}/v1/stream", {}, auth)
    mine = SseReader(f"{server.url}/v1/stream", {"customer_id": cid}, auth)
    assert (everything.status, mine.status) == (200, 200)
    records = [
        (settings.topics.nba, {"id": "nba-a", "customer_id": cid, "channel": "email"}),
        (settings.topics.nba, {"id": "nba-b", "customer_id": other, "channel": "chat"}),
        (settings.topics.alerts, {"id": "al-c", "customer_id": cid, "kind": "detractor"}),
    ]
    producer = Producer({"bootstrap.servers": settings.kafka.brokers})
    for topic, body in records:
        producer.produce(topic, orjson.dumps(body), key=body["customer_id"].encode(), partition=0)
        producer.flush(10)
    got = everything.wait_for(3)
    # Kafka orders a partition, not two topics: the consumer may read the alerts partition
    # first. Within cx.nba's partition the stream keeps the production order.
    seen = [(e["event"], e["data"]["id"]) for e in got]
    assert sorted(seen) == [("alert", "al-c"), ("nba", "nba-a"), ("nba", "nba-b")]
    assert [s for s in seen if s[0] == "nba"] == [("nba", "nba-a"), ("nba", "nba-b")]
    for event in got:
        topic = settings.topics.nba if event["event"] == "nba" else settings.topics.alerts
        assert event["id"].rsplit("/", 2)[0] == topic
    assert sorted(e["data"]["id"] for e in mine.wait_for(2)) == ["al-c", "nba-a"]
    time.sleep(0.5)
    assert len(mine.events) == 2
    everything.close()
    mine.close()

    # a resume gets what followed the given id in this process's history
    resumed = SseReader(f"{server.url}/v1/stream", {}, {**auth, "Last-Event-ID": got[0]["id"]})
    assert [e["data"]["id"] for e in resumed.wait_for(2)] == [e["data"]["id"] for e in got[1:]]
    resumed.close()
    deadline = time.monotonic() + 20  # the readers leave at their next keep-alive
    while httpx.get(f"{server.url}/healthz").json()["stream_clients"]:
        assert time.monotonic() < deadline, "a disconnected client stayed subscribed"
        time.sleep(0.1)
    with server.client() as http:
        gone = http.get("/v1/stream", headers={"Last-Event-ID": f"{settings.topics.nba}/0/999999"})
        assert gone.status_code == 410
        assert "reconnect without Last-Event-ID" in gone.json()["detail"]
        assert http.get("/v1/stream", params={"customer_id": "cust-nobody"}).status_code == 404
        assert http.get("/v1/stream", params={"kinds": "nope"}).status_code == 422
