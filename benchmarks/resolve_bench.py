"""Resolve-and-profile throughput against the real Redis (and the in-memory twin).

Runs the flow's resolve and profile steps (``StoreResolver``) over a generated
CX stream in batches, as the dataflow calls them, and reports events per second
and Redis round trips per event. Usage::

    python -m benchmarks.resolve_bench [--customers 3000] [--days 30] [--batch 1000]
        [--stores memory,redis] [--repeat 3] [--out benchmarks/results/resolve.json]

Each store runs ``--repeat`` times on a fresh state (interleaved: memory, redis,
memory, ...) and the median run is reported, with every run's rate beside it.
Results go to ``--out`` (``benchmarks/results/resolve.json`` by default).

For Redis each step also reports the server's time per event: the main thread's CPU
(``INFO cpu``) and the EVALSHA time (``INFO commandstats``) spent during its calls,
read before and after each call. Point ``--redis`` at a private server (one nobody
else uses) for these to mean anything.
"""

from __future__ import annotations

import argparse
import platform
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis

from flows.records import Journeyed, Resolved, Tombstone
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


Probe = Callable[[], tuple[float, float]]


def _server_time(client: redis.Redis) -> Probe:
    """Return a reading of the server's (main-thread CPU us, EVALSHA us) so far."""

    def read() -> tuple[float, float]:
        cpu = client.info("cpu")
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        used = cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"]
        return used * 1e6, float(stats.get("usec", 0))

    return read


def _run(
    store: ProfileStore, events: list[InteractionEvent], batch: int, probe: Probe | None = None
) -> dict[str, float]:
    resolver = StoreResolver(store)
    profiles = ProfileStep(store)
    # per step: client CPU seconds, server CPU us, server EVALSHA us
    spent = {"resolve": [0.0, 0.0, 0.0], "profile": [0.0, 0.0, 0.0]}

    def timed(step: str, call: Callable[[], Any]) -> Any:
        server = probe() if probe else (0.0, 0.0)
        cpu = time.process_time()
        out = call()
        spent[step][0] += time.process_time() - cpu
        if probe:
            after = probe()
            spent[step][1] += after[0] - server[0]
            spent[step][2] += after[1] - server[1]
        return out

    started = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        resolved: list[Resolved] = timed("resolve", partial(resolver.resolve_batch, chunk))
        journeyed: list[Journeyed | Tombstone] = [Journeyed(r, None, None, {}) for r in resolved]
        timed("profile", partial(profiles.apply_profiles, journeyed))
    seconds = time.perf_counter() - started
    n = len(events)
    result = {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_second": round(n / seconds),
        "us_per_event": round(seconds / n * 1e6, 1),
    }
    for step, (client_s, server_cpu, server_eval) in spent.items():
        result[f"{step}_client_cpu_us_per_event"] = round(client_s / n * 1e6, 1)
        if probe:
            result[f"{step}_server_cpu_us_per_event"] = round(server_cpu / n, 1)
            result[f"{step}_server_evalsha_us_per_event"] = round(server_eval / n, 1)
    return result


def _redis_run(url: str, events: list[InteractionEvent], batch: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    store = RedisProfileStore(client, prefix)
    try:
        store.canonical("warm-up")  # loads the script on a fresh server: not timed
        store.round_trips = 0
        result = _run(store, events, batch, _server_time(client))
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
