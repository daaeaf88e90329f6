"""``cxstream run``: the flow on Kafka, in one process or several.

Threads in one process share the GIL, so cxstream scales with processes:
``--processes N`` starts N local processes that form one Bytewax cluster
(each takes its share of the Kafka partitions). Across machines, start one
process per machine with ``--process-id`` and the same ``--addresses``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from types import FrameType

from bytewax.run import cli_main

from flows.app.collector import tune_collector
from flows.app.health import Health, dependency_checks, serve
from flows.app.inputs import kafka_input
from flows.app.recovery import prepare_recovery
from flows.app.retry import Retrier, RetryingHouseholds, RetryingStore
from flows.app.stores import make_households, make_parking, make_store
from flows.app.topics import ensure_topics, input_lanes
from flows.dataflow import build_flow
from flows.metrics import DEAD_LETTERS, count_outputs
from flows.settings import Settings
from flows.steps.encode import Encoded, encode
from flows.steps.ticks import LaneSet
from flows.timing import observe_outputs
from schemas.outputs import ProfileSnapshot
from sinks.kafka import KafkaOutputSink, producer_config, publish
from sinks.webhook import KafkaDeadLetters, WebhookSink


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _count_webhook_dead_letters(kind: str, n: int) -> None:
    count_outputs(kind, n)
    DEAD_LETTERS.labels("webhook_failed").inc(n)


def encoded_profiles(profiles: list[ProfileSnapshot]) -> list[Encoded]:
    """Serialise profile snapshots as output records (see :func:`flows.steps.encode.encode`)."""
    return [item for profile in profiles for item in encode(profile)]


def run_process(
    settings: Settings,
    *,
    tail: bool = True,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run this process's share of the flow until input ends (``tail=False``) or a signal."""
    if process_id in (None, 0):
        ensure_topics(settings)
    use_redis = (settings.identity.store or "redis") == "redis"
    health = Health(dependency_checks(settings, use_redis=use_redis))
    if settings.metrics.enabled and settings.metrics.port:
        # /metrics, /healthz and /readyz; the daemon thread ends with the process
        serve(settings.metrics.host, settings.metrics.port + (process_id or 0), health)
    config = producer_config(settings.kafka.client_config(), settings.kafka.max_message_bytes)
    sink = KafkaOutputSink(
        config, settings.topics.output_topics(), on_write=count_outputs, on_sent=observe_outputs
    )
    recovery = prepare_recovery(settings.recovery, workers=len(addresses or [None]))
    base = make_store(settings, default="redis")
    households = make_households(settings, base)
    store = RetryingStore(base, Retrier(settings.retry))
    # The NPS and SLA clocks wait for every input partition; a live run stops waiting
    # for one that has been silent a while (flows.steps.ticks).
    idle = settings.kafka.idle_partition_seconds if tail else None
    lanes = LaneSet(input_lanes(settings), idle)
    parking = make_parking(settings, default="redis")  # idle journeys, next to the profiles
    webhooks = None
    if settings.webhooks.targets:  # dead letters of webhooks go to cx.dlq, as the others
        topic = settings.topics.output_topics()["dlq"]
        dead = KafkaDeadLetters(config, topic, on_write=_count_webhook_dead_letters)
        webhooks = WebhookSink(settings.webhooks, dead)
    flow = build_flow(
        settings,
        kafka_input(settings, tail=tail),
        sink,
        store,
        lanes,
        parking=parking,
        webhooks=webhooks,
        households=RetryingHouseholds(households, store.retrier) if households else None,
    )
    health.started()
    tune_collector()
    try:
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=1,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(seconds=settings.epoch_interval_seconds),
            recovery_config=recovery,
        )
    except Exception as exc:
        health.failed(f"{type(exc).__name__}: {exc}")
        raise
    # End of input (--no-tail): changes still held back by the rate limit go out now.
    publish(
        config,
        settings.topics.output_topics(),
        encoded_profiles(store.flush_pending()),
        on_write=count_outputs,
        on_sent=observe_outputs,
    )
    if households is not None:
        households.close()
    store.close()


def spawn_cluster(settings: Settings, processes: int, *, tail: bool = True) -> int:
    """Start ``processes`` local processes as one cluster; return the worst exit code."""
    # Created here once, before the children race for it (they take a lock anyway).
    prepare_recovery(settings.recovery, workers=processes)
    addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(processes))
    args = [sys.executable, "-m", "flows.app.cli", "run", "--addresses", addresses]
    if not tail:
        args.append("--no-tail")
    children = [
        subprocess.Popen([*args, "--process-id", str(i)], env=os.environ.copy())
        for i in range(processes)
    ]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)
