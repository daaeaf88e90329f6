"""``cxstream serve`` and ``cxstream demo --serve``: the services behind the API, and uvicorn.

``serve`` reads the Redis profile store and board the flow writes (``CX_REDIS__*``,
``CX_IDENTITY__*``), consumes ``cx.nba`` and ``cx.alerts`` for the live stream and
publishes responses to the flow's input topic (``CX_KAFKA__*``, ``CX_TOPICS__*``).
The demo serves the results of ``cxstream demo`` from the in-memory store it just
filled: no servers, responses appended to ``<out>/responses.jsonl``, a one-time token
printed with the desktop's address.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import orjson
import uvicorn
from pydantic import SecretStr

from api.app import create_app
from api.auth import token_digest
from api.publish import FileResponses, KafkaResponses
from api.routes import Services
from api.stream import Hub, KafkaFeed
from flows.api_settings import SCOPES
from flows.app.stores import make_store
from flows.app.topics import ensure_topics
from flows.settings import Settings
from flows.steps.board import board_rules
from sinks.kafka import producer_config
from state.redis_actions import board_for
from state.store import ProfileStore

log = logging.getLogger("cxstream.api")


def kafka_services(settings: Settings, store: ProfileStore) -> Services:
    """Return the services of ``cxstream serve``: the store given, the board next to it, Kafka."""
    conf, kafka = settings.api, settings.kafka
    topics = {"nba": settings.topics.nba, "alert": settings.topics.alerts}
    return Services(
        conf=conf,
        store=store,
        board=board_for(store, board_rules(conf)),
        hub=Hub(conf.stream_history, conf.stream_client_queue),
        publisher=KafkaResponses(
            producer_config(kafka.client_config(), kafka.max_message_bytes), settings.topics.events
        ),
        phone_country_code=settings.limits.phone_country_code,
        feed=KafkaFeed(kafka.client_config(), topics),
    )


def run(
    services: Services, host: str, port: int, on_ready: Callable[[], None] | None = None
) -> None:
    """Serve ``services`` on ``host:port`` until interrupted."""
    if not services.conf.token_scopes():
        log.warning("CX_API__TOKENS is empty: every request but /healthz gets 401")
    config = uvicorn.Config(
        create_app(services),
        host=host,
        port=port,
        log_level="info",
        access_log=services.conf.access_log,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready()
    try:
        server.run()
    finally:
        services.publisher.close()
        services.store.close()


def serve(settings: Settings, host: str, port: int) -> None:
    """Run ``cxstream serve`` (creating the topics it reads and writes when missing)."""
    ensure_topics(settings)  # Kafka down: KafkaUnavailableError, which the CLI words
    run(kafka_services(settings, make_store(settings, default="redis", publish=False)), host, port)


def demo_services(settings: Settings, store: ProfileStore, out_dir: Path, token: str) -> Services:
    """Services over the demo's filled memory store; ``token`` gets every scope."""
    conf = settings.api.model_copy(
        update={"tokens": SecretStr(orjson.dumps({token_digest(token): list(SCOPES)}).decode())}
    )
    # The board's now: the customer's last event time (the demo's NBAs are current
    # then, not today).
    seen = {cid: p.last_seen.timestamp() for cid in store.customers() if (p := store.profile(cid))}
    return Services(
        conf=conf,
        store=store,
        board=board_for(store, board_rules(conf)),
        hub=Hub(conf.stream_history, conf.stream_client_queue),
        publisher=FileResponses(out_dir / "responses.jsonl"),
        phone_country_code=settings.limits.phone_country_code,
        clock=lambda customer_id: seen.get(customer_id, 0.0),
    )


def demo_token() -> str:
    """Return a one-time token for the demo desktop."""
    return secrets.token_urlsafe(18)
