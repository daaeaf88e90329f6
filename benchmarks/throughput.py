"""Throughput phases: the passthrough ceiling and the full pipeline over a pre-filled topic.

Both read the same pre-filled input topic from its beginning. The pipeline is
``cxstream run --no-tail`` (1 or N processes) whose /metrics is scraped every
half second until it exits: throughput comes from the flow's own counter of
decoded messages (``cx_step_items_total{step="decode"}``) between the first and
the last scrape that saw input, so process start-up and shutdown are excluded;
the last scrape also gives the per-step profile and Redis round trips, and each
sample records the processes' RSS for the memory figures. Redis server time per
event is the server's main-thread CPU over the phase, with ``INFO commandstats``
(reset when the phase starts) per command beside it: the bench expects the Redis
server to itself while it runs.

>>> slope([(0, 100.0), (1_000_000, 110.0), (2_000_000, 120.0)])
1e-05
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from benchmarks.harness import (
    BenchEnv,
    FlowCluster,
    Samples,
    by_label,
    free_port_pair,
    redis_server_time,
    reset_redis_stats,
    total,
)
from sinks.kafka import producer_config

Say = Callable[[str], None]
SCRAPE_SECONDS = 0.5


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``y`` over ``x``."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    cov = sum((x - mx) * (y - my) for x, y in points)
    return round(cov / var, 12) if var else 0.0


def ceiling(env: BenchEnv, input_topic: str, expected: int, say: Say) -> dict[str, Any]:
    """Measure the ceiling: plain confluent-kafka consume -> orjson.loads -> produce.

    Over the input topic, with one flush per batch and the flow's producer settings;
    events/s from the first message to the end.
    """
    out_topic = f"{env.prefix}ceiling.out"
    env.create_topic(out_topic)
    consumer = Consumer(
        {
            **env.client_config,
            "group.id": f"{env.prefix}ceiling",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    producer = Producer(producer_config(env.client_config, 1_000_000))
    parts = consumer.list_topics(input_topic, timeout=10).topics[input_topic].partitions
    consumer.assign([TopicPartition(input_topic, p, 0) for p in parts])
    remaining, count, parsed = set(parts), 0, 0
    start = 0.0
    try:
        while remaining:
            batch = consumer.consume(1000, timeout=5.0)
            if not batch:
                problem = f"ceiling: no message from {input_topic} for 5 s"
                raise RuntimeError(problem)
            if not start:
                start = time.perf_counter()
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 (confluent-kafka's documented name for end of partition)
                        remaining.discard(msg.partition())
                        continue
                    problem = f"ceiling: {err.str()}"
                    raise RuntimeError(problem)
                value = msg.value()
                try:
                    orjson.loads(value or b"")
                    parsed += 1
                except orjson.JSONDecodeError:
                    pass  # the mix carries invalid messages on purpose: pass them on too
                producer.produce(out_topic, value, msg.key())
                count += 1
            producer.flush()
            if count and count % 50_000 < len(batch):
                say(f"ceiling: {count}/{expected} messages")
        seconds = time.perf_counter() - start
    finally:
        consumer.close()
    return {
        "messages": count,
        "parsed": parsed,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1),
    }


def _profile(last: Samples, events: float) -> dict[str, Any]:
    """Return the wall time of each step, as a share of all timed steps and per event.

    Wall time is the ``cx_step_seconds`` sums, Redis waits included; process CPU
    seconds go beside it.
    """
    steps = {k: v for k, v in by_label(last, "cx_step_seconds_sum", "step").items() if v > 0}
    timed = sum(steps.values())
    rows = {
        step: {
            "seconds": round(sec, 3),
            "share": round(sec / timed, 4) if timed else None,
            "us_per_event": round(sec / events * 1e6, 2) if events else None,
        }
        for step, sec in sorted(steps.items(), key=lambda kv: -kv[1])
    }
    return {
        "timed_seconds": round(timed, 3),
        "process_cpu_seconds": round(total(last, "process_cpu_seconds_total"), 3),
        "steps": rows,
    }


def pipeline(
    env: BenchEnv, input_topic: str, processes: int, expected: int, say: Say
) -> dict[str, Any]:
    """``cxstream run --no-tail`` with ``processes`` processes over the input topic."""
    port = free_port_pair()
    phase = f"p{processes}"
    cluster = FlowCluster(env.flow_env(phase, input_topic, port), processes, tail=False)
    series: list[tuple[float, float, int]] = []  # (seconds, messages decoded, rss bytes)
    last: Samples = {}
    redis_cpu = reset_redis_stats(env.redis_url)
    start = time.monotonic()
    reported = 0.0
    try:
        while cluster.running():
            samples = cluster.scrape()
            decoded = total(samples, "cx_step_items_total", step="decode")
            # A process that already exited adds nothing: keep the fullest scrape.
            if decoded >= total(last, "cx_step_items_total", step="decode"):
                last = samples
                series.append((time.monotonic() - start, decoded, cluster.rss()))
            if decoded - reported >= 50_000:
                reported = decoded
                say(f"pipeline -p {processes}: {int(decoded)}/{expected} messages")
            time.sleep(SCRAPE_SECONDS)
        cluster.wait(timeout=60)
    finally:
        cluster.stop()
    server_cpu_us, server_usec = redis_server_time(env.redis_url, redis_cpu)
    busy = [(t, n, rss) for t, n, rss in series if n > 0]
    if len(busy) < 2 or busy[-1][1] <= busy[0][1]:
        msg = f"pipeline -p {processes}: too few scrapes to measure; use more events"
        raise RuntimeError(msg)
    events = busy[-1][1] - busy[0][1]
    seconds = busy[-1][0] - busy[0][0]
    rate = events / seconds
    decoded_total = busy[-1][1]
    redis_calls = total(last, "cx_redis_calls_total")
    half = busy[len(busy) // 2 :]
    return {
        "processes": processes,
        "messages_measured": int(events),
        "seconds_measured": round(seconds, 3),
        "events_per_second": round(rate, 1),
        "events_per_second_per_process": round(rate / processes, 1),
        "redis_calls": int(redis_calls),
        "redis_calls_per_event": round(redis_calls / decoded_total, 5),
        "redis_calls_by_op": by_label(last, "cx_redis_calls_total", "op"),
        # the server's main-thread CPU over the phase, per event
        "redis_server_us_per_event": round(server_cpu_us / decoded_total, 2),
        # INFO commandstats: a script's own commands are counted within its EVALSHA too
        "redis_server_us_per_event_by_command": {
            cmd: round(usec / decoded_total, 2) for cmd, usec in server_usec.items()
        },
        "process_cpu_us_per_event": round(
            total(last, "process_cpu_seconds_total") / decoded_total * 1e6, 1
        ),
        "outputs_by_kind": by_label(last, "cx_outputs_total", "kind"),
        "profile": _profile(last, decoded_total),
        "memory": {
            "events": int(decoded_total),
            "rss_start_mb": round(busy[0][2] / 2**20, 1),
            "rss_end_mb": round(busy[-1][2] / 2**20, 1),
            "rss_max_mb": round(max(r for _, _, r in busy) / 2**20, 1),
            # second half only: start-up allocations (models, caches) are not growth
            "rss_slope_mb_per_million_events": round(
                slope([(n, r) for _, n, r in half]) * 1e6 / 2**20, 2
            ),
            "series": [(round(t, 1), int(n), round(r / 2**20, 1)) for t, n, r in busy],
        },
    }
