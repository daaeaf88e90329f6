"""Redis server time per event, per script, on one server and on a Redis Cluster.

Runs the flow's resolve, profile and board steps (``StoreResolver``, ``ProfileStep``,
``BoardWriter``) over a generated CX stream in batches, as the dataflow calls them,
and reads the main-thread CPU of every Redis primary (``INFO cpu``) before and after
each step's calls: the server time each script costs per event, which ``INFO
commandstats`` cannot split (one EVALSHA for every operation of the store's script).
It also diffs ``INFO commandstats`` around each step: per event, the step's script
calls, the commands they ran (Redis counts a script's commands too) and the scripts'
own share (Lua, argument and reply conversion: the script's time less its commands').
Those are wall-clock microseconds, above the CPU figure when the machine is loaded.
Usage::

    python -m benchmarks.redis_bench [--customers 1000] [--days 30] [--batch 1000]
        [--redis-cluster] [--out benchmarks/results/redis.json]

Without ``--redis-cluster`` it starts a redis-server of its own on a free port
(nobody else's commands in its figures). With it, the same run goes to the local
Redis Cluster (``scripts/redis_cluster.sh start``), once with one store prefix and
once with three (three flows, one a primary: their hash tags are picked so), and
reports each primary's time per event: the busiest primary is the ceiling.
"""

from __future__ import annotations

import argparse
import platform
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster

from benchmarks.resolve_bench import _events
from flows.records import Journeyed, Resolved
from flows.steps.board import BoardWriter
from flows.steps.profile import ProfileStep
from flows.steps.resolve import StoreResolver
from schemas.envelope import InteractionEvent
from state.redis_actions import RedisActionBoard
from state.redis_store import Client, RedisProfileStore

RESULTS = Path(__file__).parent / "results" / "redis.json"
CLUSTER_URL = "redis://127.0.0.1:7001/0"
STEPS = ("resolve", "profile", "board")


def _cpu_us(node: redis.Redis) -> float:
    cpu = node.info("cpu")
    return float(cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"]) * 1e6


def _primaries(client: Client) -> list[redis.Redis]:
    if isinstance(client, RedisCluster):
        return [n.redis_connection for n in client.get_primaries() if n.redis_connection]  # type: ignore[no-untyped-call]
    return [client]


#: Commands of the bench itself, not of the steps it times.
_OWN = ("info", "config", "script", "cluster")
#: The script calls: their time includes the commands the scripts issue.
_SCRIPTS = ("evalsha", "eval")


def _commandstats(node: redis.Redis) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` as {command: (calls, usec)} (commands run by scripts too)."""
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in node.info("commandstats").items()
        if not name.removeprefix("cmdstat_").startswith(_OWN)
    }


class Meter:
    """Server CPU (us) per step and per primary, and commandstats, read around each step's calls."""

    def __init__(self, nodes: list[redis.Redis]) -> None:
        self.nodes = nodes
        self.spent = {step: [0.0] * len(nodes) for step in STEPS}
        self.client_s = dict.fromkeys(STEPS, 0.0)
        self.commands: dict[str, dict[str, list[int]]] = {step: {} for step in STEPS}

    def timed(self, step: str, call: Callable[[], Any]) -> Any:
        stats = [_commandstats(n) for n in self.nodes]
        before = [_cpu_us(n) for n in self.nodes]
        cpu = time.process_time()
        out = call()
        self.client_s[step] += time.process_time() - cpu
        for i, node in enumerate(self.nodes):
            self.spent[step][i] += _cpu_us(node) - before[i]
            for name, (calls, usec) in _commandstats(node).items():
                was = stats[i].get(name, (0, 0))
                total = self.commands[step].setdefault(name, [0, 0])
                total[0] += calls - was[0]
                total[1] += usec - was[1]
        return out

    def breakdown(self, step: str, events: int) -> dict[str, Any]:
        """Return a step's ``INFO commandstats`` per event: its script calls, their commands."""
        used = {k: v for k, v in self.commands[step].items() if v[0]}
        script_us = sum(v[1] for k, v in used.items() if k in _SCRIPTS)
        inner_us = sum(v[1] for k, v in used.items() if k not in _SCRIPTS)
        return {
            "script_calls_per_event": round(sum(used.get(k, [0])[0] for k in _SCRIPTS) / events, 4),
            "commandstats_us_per_event": round(script_us / events, 2),
            # the scripts' own work: Lua, argument and reply conversion
            "lua_us_per_event": round((script_us - inner_us) / events, 2),
            "commands": {
                name: {
                    "calls_per_event": round(calls / events, 3),
                    "us_per_event": round(usec / events, 2),
                }
                for name, (calls, usec) in sorted(used.items(), key=lambda kv: -kv[1][1])
                if name not in _SCRIPTS
            },
        }


def _flows(clients: Sequence[Client], prefixes: Sequence[str]) -> list[tuple[Any, ...]]:
    made = []
    for client, prefix in zip(clients, prefixes, strict=True):
        store = RedisProfileStore(client, prefix)
        store.canonical("warm-up")  # loads the script: not timed
        writer = BoardWriter(RedisActionBoard(client, prefix))
        made.append((store, StoreResolver(store), ProfileStep(store), writer))
    return made


def _board(writer: BoardWriter, journeyed: list[Journeyed], outputs: list[Any]) -> None:
    writer.journeys(list(journeyed))
    writer.outputs(outputs)


def run(
    client: Client, prefixes: Sequence[str], events: list[InteractionEvent], batch: int
) -> dict[str, Any]:
    """Each prefix (a flow of its own) gets every batch in turn; figures per event of all."""
    meter = Meter(_primaries(client))
    flows = _flows([client] * len(prefixes), prefixes)
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        for _store, resolver, profiles, writer in flows:
            resolved: list[Resolved] = meter.timed(
                "resolve", partial(resolver.resolve_batch, chunk)
            )
            journeyed = [Journeyed(r, None, None, {}) for r in resolved]
            meter.timed("profile", partial(profiles.apply_profiles, journeyed))
            outputs = [o for r in resolved for o in r.outputs]
            meter.timed("board", partial(_board, writer, journeyed, outputs))
    seconds = time.perf_counter() - started
    n = len(events) * len(prefixes)
    per_step = {
        step: {
            "server_us_per_event": round(sum(meter.spent[step]) / n, 2),
            "client_cpu_us_per_event": round(meter.client_s[step] / n * 1e6, 2),
            **meter.breakdown(step, n),
        }
        for step in STEPS
    }
    per_primary = [
        round(sum(meter.spent[s][i] for s in STEPS) / n, 2) for i in range(len(meter.nodes))
    ]
    busiest = max(per_primary)
    return {
        "events": n,
        "flows": len(prefixes),
        "seconds": round(seconds, 2),
        "server_us_per_event": round(sum(per_primary), 2),
        "by_step": per_step,
        "server_us_per_event_by_primary": per_primary,
        # what the busiest primary allows, were it the only limit
        "events_per_second_busiest_primary": round(1e6 / busiest) if busiest else None,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[redis.Redis]:
    """Start a redis-server of this run's own on a free port (AOF off: the scripts' figure)."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data]
        command += ["--save", "", "--appendonly", "no"]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 (fixed)
        client = redis.Redis(port=port)
        try:
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            yield client
        finally:
            client.close()
            server.kill()
            server.wait()


def spread_prefixes(client: RedisCluster, count: int) -> list[str]:
    """Prefixes whose store tags land on ``count`` different primaries."""
    found: dict[str, str] = {}
    run_id = uuid.uuid4().hex[:6]
    for n in range(1000):
        prefix = f"bench:{run_id}{n}:"
        node = client.get_node_from_key(  # type: ignore[no-untyped-call]
            RedisProfileStore(client, prefix).key_prefix
        )
        if node is not None and node.name not in found:
            found[node.name] = prefix
        if len(found) == count:
            return list(found.values())
    msg = f"the cluster has fewer than {count} primaries"
    raise RuntimeError(msg)


def _delete(client: Client, prefixes: Sequence[str]) -> None:
    for prefix in prefixes:
        for key in list(client.scan_iter(match=f"{prefix}*", count=5000)):
            client.unlink(key)


def measure(
    customers: int = 300, days: int = 30, batch: int = 1000, *, cluster: bool = False
) -> dict[str, Any]:
    """Return the figures of a run (``python -m benchmarks`` adds them to bench.json)."""
    events = _events(customers, days)
    results: dict[str, Any] = {"workload": f"generate_sample({customers}, {days})", "batch": batch}
    with private_redis() as client:
        results["single"] = run(client, [f"bench:{uuid.uuid4().hex[:6]}:"], events, batch)
    if cluster:
        nodes = RedisCluster.from_url(CLUSTER_URL)
        try:
            for count in (1, 3):
                prefixes = spread_prefixes(nodes, count)
                try:
                    results[f"cluster_{count}_flows"] = run(nodes, prefixes, events, batch)
                finally:
                    _delete(nodes, prefixes)
        finally:
            nodes.close()
    return results


def main() -> None:
    """Run the Redis benchmark from the command line and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--redis-cluster", action="store_true", help="also on the local cluster")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = measure(args.customers, args.days, args.batch, cluster=args.redis_cluster)
    results["machine"] = platform.platform()
    for name, figures in results.items():
        if isinstance(figures, dict):
            print(f"{name}: {figures}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
