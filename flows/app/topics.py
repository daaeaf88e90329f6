"""Create the topics cxstream reads and writes, when they are missing; list the input lanes."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.settings import Settings


class KafkaUnavailableError(RuntimeError):
    """The brokers could not be reached."""


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics (``cx.profiles``, ``cx.households`` compacted); return those made."""
    admin_config: dict[str, str | int | float | bool] = {**settings.kafka.client_config()}
    admin = AdminClient(admin_config)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        msg = (
            f"cannot reach Kafka at {settings.kafka.brokers} ({exc.args[0]}); start it with "
            "`bash scripts/services.sh start` or set CX_KAFKA__BROKERS"
        )
        raise KafkaUnavailableError(msg) from exc
    topics = settings.topics
    wanted = [topics.events, settings.identity.privacy_topic, *topics.output_topics().values()]
    max_bytes = str(settings.kafka.max_message_bytes)
    new = []
    for name in dict.fromkeys(wanted):
        if name in existing:
            continue
        config = {"max.message.bytes": max_bytes}
        if name in (topics.profiles, topics.households):
            config["cleanup.policy"] = "compact"
        new.append(NewTopic(name, topics.partitions, topics.replication_factor, config=config))
    if not new:
        return []
    for future in admin.create_topics(new, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise
    return [t.topic for t in new]


def input_lanes(settings: Settings, timeout: float = 30.0) -> frozenset[str]:
    """Return the lanes (``topic:partition``, :mod:`flows.lanes`) of the input topics.

    Waits up to ``timeout`` for the topics to exist (another process may be creating
    them).
    """
    admin = AdminClient({**settings.kafka.client_config()})
    wanted = (settings.topics.events, settings.identity.privacy_topic)
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(name in topics and topics[name].partitions for name in wanted):
            return frozenset(f"{name}:{p}" for name in wanted for p in topics[name].partitions)
        if time.monotonic() > deadline:
            missing = [name for name in wanted if name not in topics]
            msg = f"input topics {missing} do not exist; `cxstream run` creates them"
            raise KafkaUnavailableError(msg)
        time.sleep(0.2)
