"""Latency at fixed input rates, and the bounded soak.

**Latency** (one fresh tailing flow and input topic per rate, so a rate's backlog
never spills into the next): a paced producer sends the mix at the rate for a
fixed time, stamping each message with its send time (its Kafka CreateTime).
Afterwards the outputs caused directly by one input are read back and matched to
it: identity merges (``event_id``), event-driven alerts (detractor,
sentiment_drop, identity_conflict: ``evidence.event_ids``) and next-best actions
(``trigger_event_ids``). Profiles are left out on purpose: their publication is
rate-limited per customer in event time, so a held-back profile goes out with
the customer's *next* event and its delay is policy, not processing; timer-driven
alerts (SLA, NPS) likewise. A latency is the output's CreateTime (stamped by the
flow's producer) minus the trigger's. The first
:data:`WARMUP_SECONDS` of each rate are left out. A rate is *unsustainable* when
the flow is more than a second of input behind when sending stops; its
percentiles then only cover what the flow got through (a lower bound).

**Soak**: one tailing flow at one rate for a long time, fed a mix whose population
keeps growing (:data:`~benchmarks.workload.SOAK_CHUNK_DAYS`: 1,000 new customers every
~3,200 events), journeys parked after ``park_idle`` seconds; every second it records
the lag (sent minus decoded), the flow's RSS, the customers created so far, and the
in-flow ``cx_e2e_latency_seconds`` histogram, whose p99 per window comes from bucket
differences. The series are *bounded* when the second half does not outgrow the
first and the RSS at the end is within 10 % of the RSS once 1M events were sent
(see :func:`bounded`, :func:`rss_check`).

>>> quantile([(0.01, 0.0), (0.02, 50.0), (0.05, 100.0), (float("inf"), 100.0)], 0.99)
0.0494
>>> percentiles([5.0, 1.0, 3.0, 2.0, 4.0])
{'count': 5, 'p50_ms': 3.0, 'p95_ms': 5.0, 'p99_ms': 5.0, 'max_ms': 5.0}
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from benchmarks.harness import BenchEnv, FlowCluster, Samples, free_port_pair, total
from benchmarks.workload import SOAK_CHUNK_DAYS, Sender, mix, paced

Say = Callable[[str], None]
WARMUP_SECONDS = 2.0
DRAIN_SECONDS = 15.0
Buckets = list[tuple[float, float]]


def percentiles(values_ms: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p95/p99 and max of ``values_ms``."""
    if not values_ms:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values_ms)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "p50_ms": rank(0.50),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "max_ms": ordered[-1],
    }


def buckets(samples: Samples, name: str = "cx_e2e_latency_seconds_bucket") -> Buckets:
    """Cumulative ``(upper bound, count)`` of a histogram, by bound."""
    out: dict[float, float] = {}
    for (n, labels), value in samples.items():
        if n == name:
            le = float(dict(labels)["le"])
            out[le] = out.get(le, 0.0) + value
    return sorted(out.items())


def quantile(diff: Buckets, q: float) -> float | None:
    """Prometheus-style ``histogram_quantile`` (linear within a bucket), in seconds."""
    if not diff or diff[-1][1] <= 0:
        return None
    target = q * diff[-1][1]
    lower, below = 0.0, 0.0
    for le, count in diff:
        if count >= target:
            if math.isinf(le):
                return lower
            share = (target - below) / (count - below) if count > below else 1.0
            return round(lower + (le - lower) * share, 6)
        lower, below = le, count
    return lower


def subtract(after: Buckets, before: Buckets) -> Buckets:
    """Return the bucket counts added between two scrapes of a cumulative histogram."""
    earlier = dict(before)
    return [(le, count - earlier.get(le, 0.0)) for le, count in after]


def _start_flow(
    env: BenchEnv, phase: str, extra_env: dict[str, str] | None = None
) -> tuple[FlowCluster, Sender, str]:
    topic = env.input_topic(phase)
    env.create_topic(topic)
    flow_env = {**env.flow_env(phase, topic, free_port_pair()), **(extra_env or {})}
    cluster = FlowCluster(flow_env, 1, tail=True)
    cluster.wait_serving()
    return cluster, Sender(env.client_config, topic, env.partitions), topic


def _decoded(cluster: FlowCluster) -> float:
    return total(cluster.scrape(), "cx_step_items_total", step="decode")


def _drain(cluster: FlowCluster, sent: int, seconds: float) -> float:
    """Wait until the flow has decoded ``sent`` messages, or ``seconds`` pass.

    Return the seconds it took, or -1 when it did not catch up.
    """
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if _decoded(cluster) >= sent:
            return round(time.monotonic() - start, 2)
        time.sleep(0.2)
    return -1.0


EVENT_ALERTS = frozenset({"detractor", "sentiment_drop", "identity_conflict"})


def trigger_of(kind: str, body: dict[str, Any]) -> str | None:
    """Return the input event id that directly caused an output, if there is one.

    >>> trigger_of("alerts", {"kind": "detractor", "evidence": {"event_ids": ["e1"]}})
    'e1'
    >>> trigger_of("alerts", {"kind": "sla_breach", "evidence": {"event_ids": ["e1"]}}) is None
    True
    """
    if kind == "identity":
        return body.get("event_id")
    if kind == "nba":
        ids = body.get("trigger_event_ids") or []
        return ids[-1] if ids else None
    if kind == "alerts" and body.get("kind") in EVENT_ALERTS:
        ids = (body.get("evidence") or {}).get("event_ids") or []
        return ids[-1] if ids else None
    return None


def _triggers(env: BenchEnv, phase: str) -> list[tuple[str, int]]:
    """``(trigger event id, output CreateTime ms)`` of the outputs one input caused."""
    topics = env.output_topics(phase)
    kinds = {topics[kind]: kind for kind in ("identity", "alerts", "nba")}
    consumer = Consumer(
        {
            **env.client_config,
            "group.id": f"{env.prefix}{phase}.reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    out: list[tuple[str, int]] = []
    try:
        assign = []
        for topic in kinds:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            assign += [TopicPartition(topic, p, 0) for p in parts]
        consumer.assign(assign)
        remaining = {(tp.topic, tp.partition) for tp in assign}
        while remaining:
            batch = consumer.consume(1000, timeout=10.0)
            if not batch:
                problem = f"no output to read back in 10 s from {sorted(remaining)}"
                raise RuntimeError(problem)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 (confluent-kafka's documented name for end of partition)
                        remaining.discard((msg.topic(), msg.partition()))
                    continue
                value = msg.value()
                if not value:
                    continue  # tombstone
                trigger = trigger_of(kinds.get(msg.topic() or "", ""), orjson.loads(value))
                if trigger:
                    out.append((trigger, msg.timestamp()[1]))
    finally:
        consumer.close()
    return out


def latency_at(env: BenchEnv, rate: float, seconds: float, seed: int, say: Say) -> dict[str, Any]:
    """Send the mix at ``rate`` for ``seconds`` through a fresh tailing flow."""
    phase = f"lat{int(rate)}"
    cluster, sender, _topic = _start_flow(env, phase)
    sent_at: dict[str, int] = {}
    warm_until = int(time.time() * 1000 + WARMUP_SECONDS * 1000)
    lags: list[tuple[float, float]] = []

    def on_send(value: bytes | None, now_ms: int) -> None:
        if now_ms < warm_until:
            return
        # invalid messages of the mix have no usable id
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            sent_at[orjson.loads(value or b"")["id"]] = now_ms

    def on_tick(elapsed: float) -> None:
        lags.append((round(elapsed, 1), sender.sent - _decoded(cluster)))

    values = mix(seed)
    try:
        before = buckets(cluster.scrape())
        sent = paced(sender, values, rate, seconds, on_send=on_send, on_tick=on_tick)
        lag_end = sent - _decoded(cluster)
        sustainable = lag_end <= rate
        drain = _drain(cluster, sent, DRAIN_SECONDS if sustainable else 3.0)
        time.sleep(1.0)  # the last outputs' flush
        in_flow = subtract(buckets(cluster.scrape()), before)
    finally:
        values.close()
        cluster.stop()
    latencies = [
        float(ts - sent_at[trigger]) for trigger, ts in _triggers(env, phase) if trigger in sent_at
    ]
    result = {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "sustainable": sustainable,
        "lag_at_end": int(lag_end),
        "drain_seconds": drain,
        "lag_series": lags,
        **percentiles(latencies),
        "in_flow_histogram": {
            f"p{int(q * 100)}_ms": None if (v := quantile(in_flow, q)) is None else v * 1000
            for q in (0.5, 0.95, 0.99)
        },
    }
    say(
        f"latency at {rate:g} ev/s: p50 {result['p50_ms']} p99 {result['p99_ms']} ms, "
        f"lag at end {int(lag_end)} ({'sustainable' if sustainable else 'UNSUSTAINABLE'})"
    )
    return result


def bounded(series: list[dict[str, Any]], rate: float) -> dict[str, dict[str, Any]]:
    """Check that lag, RSS and windowed p99 latency stay bounded over a soak.

    After the first 10 % (warm-up), the second half may not exceed the first half
    by more than a margin: lag max <= 1.25 x first-half max + 2 s of input; RSS
    max <= 1.1 x first-half max + 50 MB; p99 max <= 1.5 x first-half max + 0.1 s.
    (A lag growing linearly from the start ends near 1.8 x its first-half max.)
    """
    body = series[len(series) // 10 :]
    first, second = body[: len(body) // 2], body[len(body) // 2 :]

    def peak(rows: list[dict[str, Any]], key: str) -> float:
        return max((r[key] for r in rows if r.get(key) is not None), default=0.0)

    limits = {
        "lag": 1.25 * peak(first, "lag") + 2 * rate,
        "rss_mb": 1.1 * peak(first, "rss_mb") + 50,
        "p99_s": 1.5 * peak(first, "p99_s") + 0.1,
    }
    return {
        key: {"second_half_max": peak(second, key), "limit": round(limit, 3)}
        | {"ok": bool(second) and peak(second, key) <= limit}
        for key, limit in limits.items()
    }


def rss_check(series: list[dict[str, Any]], reference_events: int = 1_000_000) -> dict[str, Any]:
    """RSS at the end against RSS once ``reference_events`` were sent: within 10 %.

    Judged only when the run sent at least twice that (else ``judged`` is False and
    ``ok`` True: pass a smaller ``reference_events`` to judge a short run);
    ``slope_mb_per_1m`` fits a line through the RSS from the reference on (MB per 1M
    events sent).

    >>> rows = [{"sent": n * 1000, "rss_mb": 100.0 + n / 100} for n in range(1, 101)]
    >>> check = rss_check(rows, 20_000)
    >>> check["at_reference_mb"], check["end_mb"], check["judged"], check["ok"]
    (100.2, 101.0, True, True)
    >>> round(check["slope_mb_per_1m"], 1), rss_check(rows)["judged"]
    (10.0, False)
    """
    rows = [r for r in series if r.get("rss_mb")]
    judged = bool(rows) and rows[-1]["sent"] >= 2 * reference_events
    tail = [r for r in rows if r["sent"] >= reference_events] or rows[-1:]
    if not tail:
        return {"reference_events": reference_events, "judged": False, "ok": False}
    at_ref, end = tail[0]["rss_mb"], rows[-1]["rss_mb"]
    slope = None
    if len(tail) > 1 and tail[-1]["sent"] > tail[0]["sent"]:
        xs, ys = [r["sent"] / 1e6 for r in tail], [r["rss_mb"] for r in tail]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return {
        "reference_events": reference_events,
        "at_reference_mb": at_ref,
        "end_mb": end,
        "growth": round(end / at_ref - 1, 4),
        "slope_mb_per_1m": None if slope is None else round(slope, 1),
        "judged": judged,
        "ok": not judged or end <= 1.1 * at_ref,
    }


def soak(  # noqa: PLR0913 (a soak's knobs; the window is keyword-only)
    env: BenchEnv,
    rate: float,
    seconds: float,
    seed: int,
    say: Say,
    *,
    window: float = 10.0,
    park_idle: float = 30.0,
    rss_reference_events: int = 1_000_000,
) -> dict[str, Any]:
    """One tailing flow at ``rate`` for ``seconds``; series of lag, RSS, customers and p99."""
    parking = {"CX_JOURNEY__PARK_IDLE_SECONDS": str(park_idle)}
    cluster, sender, _topic = _start_flow(env, "soak", parking)
    series: list[dict[str, Any]] = []
    history: list[tuple[float, Buckets]] = []

    def on_tick(elapsed: float) -> None:
        samples = cluster.scrape()
        if not samples:  # the scrape timed out (a busy flow): a missing sample, not a zero
            return
        now = buckets(samples)
        history.append((elapsed, now))
        older = [b for t, b in history if t <= elapsed - window]
        p99 = quantile(subtract(now, older[-1] if older else []), 0.99)
        row = {
            "t": round(elapsed, 1),
            "sent": sender.sent,
            "lag": sender.sent - total(samples, "cx_step_items_total", step="decode"),
            "rss_mb": round(cluster.rss() / 2**20, 1),
            "customers": int(total(samples, "cx_identity_resolutions_total", outcome="created")),
            "p99_s": p99,
        }
        series.append(row)
        if len(series) % 10 == 0:
            say(f"soak {row['t']:.0f}/{seconds:g} s: {row}")

    values = mix(seed, days=SOAK_CHUNK_DAYS)
    try:
        sent = paced(sender, values, rate, seconds, on_tick=on_tick, tick_seconds=1.0)
        cluster.check_alive()
    finally:
        values.close()
        cluster.stop()
    checks: dict[str, dict[str, Any]] = bounded(series, rate)
    checks["rss_vs_reference"] = rss_check(series, rss_reference_events)
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "customers": series[-1]["customers"] if series else 0,
        "park_idle_seconds": park_idle,
        "window_seconds": window,
        "bounded": all(c["ok"] for c in checks.values()),
        "checks": checks,
        "series": series,
    }
