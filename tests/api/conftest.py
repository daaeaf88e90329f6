"""API fixtures: a real uvicorn server on a port of its own, over the demo's results."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.routes import Services
from api.server import demo_services
from api.stream import KafkaFeed
from flows.app.offline import SAMPLE_LOG, run_offline
from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from flows.settings import KafkaSettings, Settings, TopicSettings
from state.store import ProfileStore

TOKEN = "demo-token-for-tests"
#: a demo customer with current NBAs and an email with capitals and spaces in the log
DEMO_EMAIL = "fay.smith33@example.com"


def free_port() -> int:
    """A port the OS just chose as free (bind to port 0), for a server started by number.

    Two suites at once get different ports (the OS hands out ephemeral ports in turn);
    :class:`LiveServer` needs no number: it serves on a socket it keeps bound.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """uvicorn serving an app in a thread; ``url`` once started."""

    def __init__(self, services: Services, port: int | None = None) -> None:
        self.services = services
        # bound here and handed to uvicorn: no other process can take the port meanwhile
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port or 0))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(services), host="127.0.0.1", port=self.port, log_level="info"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, args=([self.socket],), name="test-uvicorn", daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                msg = f"the API server did not start on port {self.port}"
                raise RuntimeError(msg)
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.socket.close()

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        """An HTTP client of this server (with the bearer token, unless None)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@dataclass
class Demo:
    """The demo's results in a memory store, and its output directory."""

    settings: Settings
    store: ProfileStore
    out_dir: Path


def run_demo(out_dir: Path, settings: Settings | None = None) -> Demo:
    """Run the flow over the shipped sample into a fresh memory store (as `demo --serve`)."""
    settings = settings or Settings()
    store = make_store(settings, default="memory", publish=False)
    run_offline(settings, [SAMPLE_LOG], out_dir, store=store)
    return Demo(settings, store, out_dir)


@pytest.fixture
def demo(tmp_path: Path) -> Demo:
    """A fresh demo run (the tests answer NBAs and erase customers: one each)."""
    return run_demo(tmp_path / "demo")


@pytest.fixture
def demo_server(demo: Demo) -> Iterator[LiveServer]:
    """The API over the demo's results, with :data:`TOKEN` holding every scope."""
    with LiveServer(demo_services(demo.settings, demo.store, demo.out_dir, TOKEN)) as server:
        yield server


@pytest.fixture
def kafka_server(
    demo: Demo, kafka_brokers: str, topic_prefix: str
) -> Iterator[tuple[LiveServer, Settings]]:
    """The API over the demo with a real Kafka feed on topics of this test's own."""
    topics = TopicSettings(
        nba=f"{topic_prefix}cx.nba", alerts=f"{topic_prefix}cx.alerts", partitions=2
    )
    settings = Settings(kafka=KafkaSettings(brokers=kafka_brokers), topics=topics)
    ensure_topics(settings)
    services = demo_services(demo.settings, demo.store, demo.out_dir, TOKEN)
    services.conf = services.conf.model_copy(update={"stream_heartbeat_seconds": 0.5})
    services.feed = KafkaFeed(
        settings.kafka.client_config(), {"nba": topics.nba, "alert": topics.alerts}
    )
    with LiveServer(services) as server:
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/healthz").json()["stream"] != "ready":
            assert time.monotonic() < deadline, "the stream consumer got no partitions"
            time.sleep(0.1)
        yield server, settings
