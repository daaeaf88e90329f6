"""``python -m benchmarks.api_bench``: the Experience API's phases, against the real services.

On Redis keys and Kafka topics under a unique prefix (deleted or left empty at the end),
with one ``cxstream serve`` process:

1. ``lookup``: ``--customers`` profiles are written to the store, then ``POST
   /v1/profiles/lookup`` is sent open-loop at ``--rate`` requests/s for ``--seconds``
   (each request starts on its schedule, whatever the earlier ones do); p50/p95/p99.
2. ``sse``: ``--clients`` SSE clients connect and stay; the serve process's RSS before
   and with them; then ``--pushes`` NBAs are produced to ``cx.nba`` and the time from
   produce to each client's receipt is measured (fan-out latency p50/p95/p99).

The event -> NBA-on-SSE phase through a tailing flow is not here yet. Results go to
``api.json`` in ``--results-dir`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from confluent_kafka import Producer

from api.auth import token_digest
from benchmarks.options import RESULTS
from flows.app.topics import ensure_topics
from flows.settings import KafkaSettings, Settings, TopicSettings
from schemas.records import OUTPUT_KINDS
from state.profile_hash import ProfileDelta
from state.redis_store import RedisProfileStore
from state.store import ResolveRequest

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"  # noqa: S105 (a throwaway credential of the bench's own server)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/p99 and the count of ``values`` (milliseconds).

    >>> percentiles([float(n) for n in range(1, 101)])["p95"]
    95.0
    """
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * len(ordered)) - 1)]

    return {"count": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)}


def _fill(url: str, prefix: str, customers: int) -> None:
    store = RedisProfileStore(url, prefix)
    try:
        for start in range(0, customers, 500):
            ids = range(start, min(customers, start + 500))
            requests = [
                ResolveRequest(f"b-{n}", 1_772_445_600_000 + n, {"email": f"c{n}@bench.example"})
                for n in ids
            ]
            results = store.resolve_batch(requests)
            deltas = [
                ProfileDelta(
                    r.customer_id or "", f"b-{n}", 1_772_445_600_000 + n, "web", "web.home"
                )
                for n, r in zip(ids, results, strict=True)
            ]
            store.apply_profiles(deltas)
    finally:
        store.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _lookups(base: str, rate: float, seconds: float, customers: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:

        async def one(n: int, due: float) -> None:
            nonlocal failures
            body = {"type": "email", "value": f"C{n % customers}@Bench.example"}
            reply = await http.post("/v1/profiles/lookup", json=body)
            if reply.status_code != 200:
                failures += 1
            latencies.append((time.perf_counter() - due) * 1000)

        start, tasks = time.perf_counter(), []
        for n in range(int(rate * seconds)):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "rate": rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "failures": failures,
        **{k: round(v, 2) for k, v in percentiles(latencies).items()},
    }


async def _sse(  # noqa: PLR0913 (the phase's knobs)
    base: str, *, pid: int, clients: int, pushes: int, brokers: str, topic: str
) -> dict[str, Any]:
    rss_before = _rss_kib(pid)
    received: list[float] = []
    sent: dict[str, float] = {}
    connected = 0
    limits = httpx.Limits(max_connections=clients + 10)
    timeout = httpx.Timeout(120.0, connect=60.0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=timeout
    ) as http:

        async def client() -> None:
            nonlocal connected
            got = 0
            async with http.stream("GET", "/v1/stream", params={"kinds": "nba"}) as reply:
                connected += 1
                async for line in reply.aiter_lines():
                    if line.startswith("data: "):
                        nba_id = orjson.loads(line[6:])["id"]
                        received.append((time.perf_counter() - sent[nba_id]) * 1000)
                        got += 1
                        if got == pushes:
                            return

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        deadline = time.monotonic() + 120
        while connected < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        rss_with = _rss_kib(pid)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
        for n in range(pushes):
            nba_id = f"nba-bench-{n}"
            sent[nba_id] = time.perf_counter()
            producer.produce(
                topic, orjson.dumps({"id": nba_id, "customer_id": "c", "channel": "web"})
            )
            producer.flush(10)
            await asyncio.sleep(1.0)
        await asyncio.wait(tasks, timeout=30)
        for task in tasks:
            task.cancel()
    return {
        "clients": clients,
        "connected": connected,
        "rss_kib_before": rss_before,
        "rss_kib_with_clients": rss_with,
        "rss_kib_per_client": round((rss_with - rss_before) / max(1, connected), 1),
        "deliveries_expected": clients * pushes,
        "fan_out_ms": {k: round(v, 2) for k, v in percentiles(received).items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the API phases; write ``api.json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_bench")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--port", type=int, default=18_480)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--brokers", default=os.environ.get("CX_KAFKA__BROKERS", "127.0.0.1:9092"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("CX_REDIS__URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    tag = f"bench{uuid.uuid4().hex[:8]}."
    prefix = f"bench:{tag}"
    topics = {kind: f"{tag}cx.{kind}" for kind in (*OUTPUT_KINDS, "events")}
    settings = Settings(kafka=KafkaSettings(brokers=args.brokers), topics=TopicSettings(**topics))
    ensure_topics(settings)
    _fill(args.redis_url, prefix, args.customers)
    env = {
        **os.environ,
        "CX_KAFKA__BROKERS": args.brokers,
        "CX_REDIS__URL": args.redis_url,
        "CX_REDIS__PREFIX": prefix,
        "CX_API__TOKENS": orjson.dumps(
            {token_digest(TOKEN): ["profiles:read", "stream:read"]}
        ).decode(),
        "CX_API__RATE_PER_SECOND": "100000",
        "CX_API__RATE_BURST": "100000",
        **{f"CX_TOPICS__{k.upper()}": v for k, v in topics.items()},
    }
    command = [sys.executable, "-m", "flows.app.cli", "serve", "--port", str(args.port)]
    serve = subprocess.Popen(  # noqa: S603 (our own CLI)
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").json()["stream"] == "ready":
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                print("serve did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.2)
        results = {
            "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
            "customers": args.customers,
            "lookup": asyncio.run(_lookups(base, args.rate, args.seconds, args.customers)),
            "sse": asyncio.run(
                _sse(
                    base,
                    pid=serve.pid,
                    clients=args.clients,
                    pushes=args.pushes,
                    brokers=args.brokers,
                    topic=topics["nba"],
                )
            ),
        }
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
        client.close()
    path = args.results_dir / "api.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
