"""Resolve-and-profile throughput against the real Redis (and the in-memory twin).

Runs the flow's resolve and profile steps (``StoreResolver``) over a generated
CX stream in batches, as the dataflow calls them, and reports events per second
and Redis round trips per event. Usage::

    python -m benchmarks.resolve_bench [--customers 3000] [--days 30] [--batch 1000]

Results go to ``benchmarks/results/resolve.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis

from flows.resolve import Journeyed, StoreResolver
from replay.sample import generate_sample
from schemas.envelope import InteractionEvent
from state.memory import MemoryProfileStore
from state.redis_store import RedisProfileStore
from state.store import ProfileStore

RESULTS = Path(__file__).parent / "results" / "resolve.json"


def _events(customers: int, days: int) -> list[InteractionEvent]:
    events = []
    for raw in generate_sample(customers=customers, days=days, seed=11):
        try:
            events.append(InteractionEvent.model_validate_json(raw.value or b""))
        except ValueError:
            continue
    return events


def _run(store: ProfileStore, events: list[InteractionEvent], batch: int) -> dict[str, float]:
    resolver = StoreResolver(store)
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        resolved = resolver.resolve_batch(events[start : start + batch])
        resolver.apply_profiles([Journeyed(r, None, None, {}) for r in resolved])
    seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": round(seconds, 3),
        "events_per_second": round(len(events) / seconds),
        "us_per_event": round(seconds / len(events) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    events = _events(args.customers, args.days)
    print(f"{len(events)} events from {args.customers} customers over {args.days} days")
    results: dict[str, Any] = {"machine": platform.platform(), "batch": args.batch}
    results["memory"] = _run(MemoryProfileStore(), events, args.batch)
    print("memory:", results["memory"])

    client = redis.Redis.from_url(args.redis)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    store = RedisProfileStore(client, prefix)
    try:
        results["redis"] = _run(store, events, args.batch)
        results["redis"]["round_trips_per_event"] = round(store.round_trips / len(events), 4)
        print("redis:", results["redis"])
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
