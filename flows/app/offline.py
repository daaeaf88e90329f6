"""Offline runs: a replay log through the flow into a directory of JSONL files."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import cluster_main, run_main

from flows.app.collector import tune_collector
from flows.app.inputs import log_input
from flows.app.stores import make_households, make_store
from flows.dataflow import build_flow
from flows.lanes import lane_of
from flows.metrics import count_outputs
from flows.settings import Settings
from flows.steps.ticks import LaneSet
from replay.log import read_log
from schemas.outputs import ProfileSnapshot
from sinks.jsonl import OFFLINE_FILES, JsonlDirSink, canonical_order, write_profiles
from state.households import HouseholdStore
from state.store import ProfileStore

SAMPLE_LOG = Path(__file__).resolve().parents[2] / "replay" / "samples" / "demo.jsonl"


@dataclass
class RunSummary:
    """What an offline run wrote."""

    out_dir: Path
    counts: dict[str, int]
    dead_letter_reasons: dict[str, int]
    alert_kinds: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"outputs in {self.out_dir}/"]
        lines += [f"  {OFFLINE_FILES[k]:<16}{n:>7}" for k, n in self.counts.items()]
        if self.alert_kinds:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.alert_kinds.items()))
            lines.append(f"alerts by kind: {kinds}")
        if self.dead_letter_reasons:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.dead_letter_reasons.items()))
            lines.append(f"dead letters by reason: {reasons}")
        for kind, items in self.examples.items():
            for item in items:
                lines.append(f"example {kind}: {_one_line(item)}")
        return "\n".join(lines)


def _one_line(item: dict[str, Any], limit: int = 160) -> str:
    text = orjson.dumps(item).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarise(out_dir: Path, examples_per_kind: int = 2) -> RunSummary:
    """Count the records of each output file and pick a few examples."""
    counts: dict[str, int] = {}
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    for kind, name in OFFLINE_FILES.items():
        path = out_dir / name
        rows = path.read_bytes().splitlines() if path.exists() else []
        counts[kind] = len(rows)
        if kind == "dlq":
            reasons.update(orjson.loads(r)["reason"] for r in rows)
        if kind == "alerts":
            kinds.update(orjson.loads(r)["kind"] for r in rows)
        if kind in ("nba", "alerts", "nps", "households") and rows:
            examples[kind] = [orjson.loads(r) for r in rows[:examples_per_kind]]
    return RunSummary(out_dir, counts, dict(reasons), dict(kinds), examples)


class OfflineRunError(RuntimeError):
    """A worker process of a multi-process offline run failed."""


def log_lanes(logs: list[Path]) -> LaneSet:
    """Return the lanes (:mod:`flows.lanes`) of recorded logs.

    Those are the partitions their records came from.

    A replay ends, so no lane is ever given up on as idle.
    """
    return LaneSet(frozenset(lane_of(raw) for path in logs for raw in read_log(path)))


def _offline_flow(  # noqa: PLR0913, PLR0917 (the run's parts)
    settings: Settings,
    logs: list[Path],
    out_dir: Path,
    store: ProfileStore,
    lanes: LaneSet,
    households: HouseholdStore | None,
) -> Any:
    inputs = log_input(logs, settings.kafka.batch_size)
    sink = JsonlDirSink(out_dir, on_write=count_outputs)
    return build_flow(settings, inputs, sink, store, lanes, households=households)


def with_household(profile: ProfileSnapshot, households: HouseholdStore | None) -> ProfileSnapshot:
    """Return the profile with its household's id and excerpt, as the store has it now."""
    household = households.household_of(profile.customer_id) if households else None
    if household is None:
        return profile
    update = {"household_id": household.household_id, "household": household.excerpt()}
    return profile.model_copy(update=update)


def write_final_state(
    out_dir: Path, store: ProfileStore, households: HouseholdStore | None
) -> None:
    """Write ``profiles.jsonl`` and ``households.jsonl`` from the stores.

    Each profile shows its household as of the customer's latest event, as its latest
    record on ``cx.profiles`` does (:mod:`flows.steps.households`).
    """
    profiles = (store.profile(cid) for cid in store.customers())
    write_profiles(out_dir / OFFLINE_FILES["profiles"], (p for p in profiles if p is not None))
    every = households.households() if households is not None else []
    lines = [h.model_dump_json().encode() + b"\n" for h in every]
    (out_dir / OFFLINE_FILES["households"]).write_bytes(b"".join(lines))


def _cluster_worker(
    logs: list[Path], out_dir: Path, addresses: list[str], proc_id: int, lanes: LaneSet
) -> None:
    # A fresh process: settings come from the same CX_* environment as the parent's.
    settings = Settings()
    store = make_store(settings, default="redis", publish=False)
    flow = _offline_flow(settings, logs, out_dir, store, lanes, make_households(settings, store))
    tune_collector()
    cluster_main(  # type: ignore[no-untyped-call]
        flow,
        addresses,
        proc_id,
        epoch_interval=timedelta(seconds=settings.epoch_interval_seconds),
    )
    store.close()


def _run_cluster(logs: list[Path], out_dir: Path, processes: int, lanes: LaneSet) -> None:
    from flows.app.run import free_ports

    addresses = [f"127.0.0.1:{port}" for port in free_ports(processes)]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_cluster_worker, args=(logs, out_dir, addresses, i, lanes))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        msg = f"{len(failed)} of {processes} worker processes failed (exit codes {failed})"
        raise OfflineRunError(msg)


def run_offline(  # noqa: PLR0913 (what to run on; how to run it is keyword-only)
    settings: Settings,
    logs: list[Path],
    out_dir: Path,
    *,
    store: ProfileStore | None = None,
    processes: int = 1,
    workers: int = 1,
) -> RunSummary:
    """Run the flow over ``logs`` (in order, as fast as possible) and summarise the outputs.

    The store is the in-memory twin unless ``CX_IDENTITY__STORE=redis`` (or one is
    given). Several ``processes`` form one Bytewax cluster and share the identity
    graph, so they need the Redis store (``CX_IDENTITY__STORE=redis``). In one process,
    ``workers`` worker threads share the store given or the in-memory one (the tests use
    this: one input partition gives the same output files whatever the worker count).
    """
    # Sink partitions are opened lazily, on their first record: start every file
    # empty so a kind with no output never shows a previous run's records.
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OFFLINE_FILES.values():
        (out_dir / name).write_bytes(b"")
    if processes > 1:
        if settings.identity.store != "redis":
            msg = "several processes share one identity graph: set CX_IDENTITY__STORE=redis"
            raise OfflineRunError(msg)
        _run_cluster(logs, out_dir, processes, log_lanes(logs))
        store = store or make_store(settings, default="redis", publish=False)
        households = make_households(settings, store)
    else:
        # Offline, profiles.jsonl is the final state read back below: nothing to publish.
        store = store or make_store(settings, default="memory", publish=False)
        households = make_households(settings, store)
        flow = _offline_flow(settings, logs, out_dir, store, log_lanes(logs), households)
        epoch_interval = timedelta(seconds=settings.epoch_interval_seconds)
        if workers == 1:
            run_main(flow, epoch_interval=epoch_interval)  # type: ignore[no-untyped-call]
        else:
            cluster_main(  # type: ignore[no-untyped-call]
                flow, [], 0, epoch_interval=epoch_interval, worker_count_per_proc=workers
            )
    for kind, name in OFFLINE_FILES.items():
        if kind not in ("profiles", "households"):
            canonical_order(out_dir / name)
    write_final_state(out_dir, store, households)
    return summarise(out_dir)
