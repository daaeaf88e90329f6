"""Resolve-and-profile throughput against the real Redis (and the in-memory twin).

Runs the flow's resolve and profile steps (``StoreResolver``) over a generated
CX stream in batches, as the dataflow calls them, and reports events per second
and Redis round trips per event. Usage::

    python -m benchmarks.resolve_bench [--customers 3000] [--days 30] [--batch 1000]
        [--stores memory,redis] [--repeat 3] [--out benchmarks/results/resolve.json]

Each store runs ``--repeat`` times on a fresh state (interleaved: memory, redis,
memory, ...) and the median run is reported, with every run's rate beside it.
Results go to ``--out`` (``benchmarks/results/resolve.json`` by default).
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

from flows.records import Journeyed
from flows.steps.profile import ProfileStep
from flows.steps.resolve import StoreResolver
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
    profiles = ProfileStep(store)
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        resolved = resolver.resolve_batch(events[start : start + batch])
        profiles.apply_profiles([Journeyed(r, None, None, {}) for r in resolved])
    seconds = time.perf_counter() - started
    return {
        "events": len(events),
        "seconds": round(seconds, 3),
        "events_per_second": round(len(events) / seconds),
        "us_per_event": round(seconds / len(events) * 1e6, 1),
    }


def _redis_run(url: str, events: list[InteractionEvent], batch: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    store = RedisProfileStore(client, prefix)
    try:
        store.canonical("warm-up")  # loads the script on a fresh server: not timed
        store.round_trips = 0
        result = _run(store, events, batch)
        result["round_trips_per_event"] = round(store.round_trips / len(events), 4)
        return result
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
        client.close()


def _median_run(runs: list[dict[str, float]]) -> dict[str, Any]:
    rates = [run["events_per_second"] for run in runs]
    median = sorted(runs, key=lambda run: run["events_per_second"])[len(runs) // 2]
    return {**median, "runs_events_per_second": rates, "median_of": len(runs)}


def main() -> None:
    """Run the resolve benchmark from the command line and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--stores", default="memory,redis", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per store (median kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    unknown = set(stores) - {"memory", "redis"}
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}: use memory and/or redis")

    events = _events(args.customers, args.days)
    print(f"{len(events)} events from {args.customers} customers over {args.days} days")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
    for attempt in range(args.repeat):
        for name in stores:
            if name == "memory":
                result = _run(MemoryProfileStore(), events, args.batch)
            else:
                result = _redis_run(args.redis, events, args.batch)
            runs[name].append(result)
            print(f"run {attempt + 1}/{args.repeat} {name}: {result}", flush=True)
    results: dict[str, Any] = {"machine": platform.platform(), "batch": args.batch}
    for name in stores:
        results[name] = _median_run(runs[name])
        print(f"{name} (median): {results[name]['events_per_second']} ev/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
