"""The memory soak, offline: the same flow over a growing population, in bounded time.

``python -m benchmarks --offline-soak [--events N ...]`` (or ``python -m benchmarks.soak_offline``)
builds the flow of ``cxstream run`` (:func:`flows.dataflow.build_flow`, every step, the
settings of the environment) in this process and feeds it, as fast as it goes, the soak's
mix (:func:`benchmarks.workload.mix` in chunks of ``--chunk-days``, default 7: 1,000 new
people every ~4,300 events, so 5M events bring ~1.15M people; each chunk seven days of
event time after the one before, so event time runs far ahead of wall time and label
horizons pass). Journeys park after ``--park-idle`` wall seconds. The input is one lane
(``cx.events:0``), the outputs are counted and dropped, and
the profile store and the parked journeys are in a Redis of the soak's own
(``redis-server`` on a free port, no persistence, stopped at the end; ``--redis-url``
uses another under a unique prefix, deleted at the end), so the process holds only
what the flow holds. Bytewax recovery is off (as in any offline run), and so is the
agent desktop's board (``CX_API__BOARD``; its state is in Redis only, ~0.8 KB a
customer there) unless the environment sets it.

Every ``--every`` events it records the process's RSS, the customers created, the
labels the churn engine keeps, the journeys and decide keys in memory
(:func:`state_counts`) and the wall time; ``--max-seconds`` ends the input early
(the run is then judged on what it read). The result is
*bounded* when the RSS at the end is within 10 % of the RSS once
``--rss-reference-events`` were read (:func:`benchmarks.latency.rss_check`), judged on
a run of at least twice that.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from benchmarks.harness import rss_bytes
from benchmarks.latency import rss_check
from benchmarks.options import RESULTS
from benchmarks.redis_bench import private_redis
from benchmarks.workload import mix
from schemas.records import RawMessage

LANE_TOPIC = "cx.events"
BATCH = 1000  # messages per source batch
CHUNK_DAYS = 7  # ~4.3 events a person: 5M events, ~1.15M people
Sample = Callable[[int, bool], None]


class _MixPartition(StatefulSourcePartition[RawMessage, None]):
    def __init__(self, values: Iterator[bytes | None], source: MixSource) -> None:
        self._values = values
        self._left = source.events
        self._offset = 0
        self._sample = source.sample
        self._deadline = time.monotonic() + source.max_seconds

    def next_batch(self) -> list[RawMessage]:
        if self._left <= 0 or time.monotonic() > self._deadline:
            self._sample(self._offset, True)
            raise StopIteration
        n = min(BATCH, self._left)
        out = [
            RawMessage(next(self._values), None, LANE_TOPIC, 0, self._offset + i) for i in range(n)
        ]
        self._offset += n
        self._left -= n
        self._sample(self._offset, False)
        return out

    def snapshot(self) -> None:
        return None


class MixSource(FixedPartitionedSource[RawMessage, None]):
    """``events`` messages of the soak mix on one partition; ``sample`` sees the count read."""

    def __init__(self, args: argparse.Namespace, sample: Sample) -> None:
        self.seed, self.events, self.days = args.seed, args.events, args.chunk_days
        self.max_seconds: float = args.max_seconds
        self.sample = sample

    def list_parts(self) -> list[str]:
        return [f"{LANE_TOPIC}:0"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _MixPartition:
        return _MixPartition(mix(self.seed, days=self.days), self)


class _CountPartition(StatelessSinkPartition[Any]):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def write_batch(self, items: list[Any]) -> None:
        for kind, _ in items:
            self.counts[kind] = self.counts.get(kind, 0) + 1


class CountSink(DynamicSink[Any]):
    """Counts the flow's encoded outputs by kind, and drops them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountPartition:
        return _CountPartition(self.counts)


def state_counts() -> dict[str, int]:
    """Count what the flow holds in this process (found through the GC).

    The churn engines' pending labels (unlabelled, and positives awaiting their
    horizon), those dropped at the bound, and the customers they are of; the journeys in
    Bytewax state (not parked) and the decide step's customer keys.
    """
    from flows.steps.decide import DecideLogic
    from flows.steps.journey import JourneyLogic
    from online_models.labels import DelayedLabels

    counts = dict.fromkeys(("labels_pending", "labels_awaiting", "labels_dropped"), 0)
    counts["label_customers"] = 0
    counts |= {"journeys": 0, "decide_keys": 0}
    for obj in gc.get_objects():
        if isinstance(obj, DelayedLabels):
            counts["labels_pending"] += obj.pending
            counts["labels_awaiting"] += obj.awaiting
            counts["labels_dropped"] += obj.dropped
            counts["label_customers"] += obj.customers()
        elif isinstance(obj, JourneyLogic):
            counts["journeys"] += 1
        elif isinstance(obj, DecideLogic):
            counts["decide_keys"] += 1
    return counts


def _metric(name: str, **labels: str) -> int:
    """Return a counter of this process, summed over the label sets matching ``labels``."""
    n = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                n += sample.value
    return int(n)


def accounting(read: int) -> dict[str, int]:
    """Where every input message went: decoded, valid or dead, duplicate or fresh."""
    valid = _metric("cx_events_total")
    return {
        "read": read,
        "decoded": _metric("cx_step_items_total", step="decode"),
        "valid": valid,
        "dead_letters": _metric("cx_dead_letters_total"),
        "duplicates": _metric("cx_duplicates_dropped_total"),
        "fresh": valid - _metric("cx_duplicates_dropped_total"),
    }


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    """Unlink every key under ``prefix`` (the soak's, on a Redis it was given)."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the offline soak in this process; return its result (series and verdict)."""
    events, every, redis_url, park_idle = args.events, args.every, args.redis_url, args.park_idle
    stack = contextlib.ExitStack()
    prefix = f"cxsoak{uuid.uuid4().hex[:8]}:"
    if redis_url is None:  # a redis-server of its own, killed at the end
        client = stack.enter_context(private_redis())
        url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    else:
        client, url = redis.Redis.from_url(redis_url), redis_url
        stack.callback(_delete_keys, client, prefix)
    os.environ.update(
        {
            "CX_IDENTITY__STORE": "redis",
            "CX_REDIS__URL": url,
            "CX_REDIS__PREFIX": prefix,
            "CX_RECOVERY__ENABLED": "false",
            "CX_JOURNEY__PARK_IDLE_SECONDS": str(park_idle),
        }
    )
    os.environ.setdefault("CX_API__BOARD", "false")
    from flows.app.stores import make_households, make_parking, make_store
    from flows.dataflow import build_flow
    from flows.settings import Settings
    from flows.steps.ticks import LaneSet

    settings = Settings()
    store = make_store(settings, default="redis", publish=False)
    series: list[dict[str, Any]] = []
    start = time.monotonic()
    next_at = [every]

    def sample(read: int, last: bool = False) -> None:
        if read < next_at[0] and not last:
            return
        next_at[0] += every
        row = {
            "events": read,
            "sent": read,  # the name rss_check reads
            "wall_s": round(time.monotonic() - start, 1),
            "rss_mb": round(rss_bytes(os.getpid()) / 2**20, 1),
            "customers": _metric("cx_identity_resolutions_total", outcome="created"),
            **state_counts(),
        }
        row["redis_mb"] = round(int(client.info("memory")["used_memory"]) / 2**20, 1)
        series.append(row)
        say(f"offline soak: {row}")

    sink = CountSink()
    with stack:
        flow = build_flow(
            settings,
            lambda f: op.input("input", f, MixSource(args, sample)),
            sink,
            store,
            LaneSet(frozenset({f"{LANE_TOPIC}:0"})),
            parking=make_parking(settings, "redis"),
            households=make_households(settings, store),
        )
        run_main(flow)  # type: ignore[no-untyped-call]
    rss = rss_check(series, args.rss_reference_events)
    return {
        "kind": "offline",
        "command": " ".join(["python -m benchmarks --offline-soak", *args.argv]),
        "events": events,
        "customers": series[-1]["customers"] if series else 0,
        "park_idle_seconds": park_idle,
        "chunk_days": args.chunk_days,
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("CX_")}
        | {"CX_REDIS__URL": "private redis-server" if redis_url is None else "given"},
        "wall_seconds": series[-1]["wall_s"] if series else 0,
        "stopped_early": len(series) > 0 and series[-1]["events"] < events,
        "accounting": accounting(series[-1]["events"] if series else 0),
        "outputs": dict(sorted(sink.counts.items())),
        "bounded": bool(rss["judged"] and rss["ok"]),
        "checks": {"rss_vs_reference": rss},
        "series": series,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the offline soak from the command line; write soak.json; exit 1 unless bounded."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak_offline")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--park-idle", type=float, default=5.0, help="wall seconds")
    parser.add_argument("--chunk-days", type=int, default=CHUNK_DAYS)
    parser.add_argument("--every", type=int, default=50_000, help="events between samples")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="input time limit")
    parser.add_argument("--rss-reference-events", type=int, default=1_000_000)
    parser.add_argument("--redis-url", default=None, help="default: a private redis-server")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    def say(text: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = run(args, say)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / "soak.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    rss = result["checks"]["rss_vs_reference"]
    say(f"offline soak: bounded={result['bounded']} {rss} -> {out}")
    return 0 if result["bounded"] else 1


if __name__ == "__main__":
    sys.exit(main())
