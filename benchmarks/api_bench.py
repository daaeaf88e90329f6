"""The Experience API's bench phases (#19), against the real Kafka, Redis and serve processes.

Part of ``python -m benchmarks`` (``bench.json``'s ``api``; ``--api-only`` runs just these)
and runnable alone as ``python -m benchmarks.api_bench`` (``api.json``). On topics and
Redis keys under the run's prefix (deleted at the end), with one ``cxstream serve``
process (a subprocess, as deployed):

1. ``lookup``: ``--customers`` profiles written to the store, then ``POST
   /v1/profiles/lookup`` open-loop at ``--lookup-rate`` for ``--lookup-seconds``
   (:func:`benchmarks.api_client.open_loop`: latency from each request's intended send
   time, keep-alive connections, a client cheap enough not to be the bottleneck).
   Goal: p95 <= 10 ms at 500/s on one process.
2. ``nba_on_sse``: a tailing ``cxstream run`` and a serve process over the same topics
   and store, one SSE client on ``/v1/stream?kinds=nba``; the bench's mix is produced
   at ``--nba-rate`` events/s for ``--nba-seconds``; latency = an NBA's receipt by the
   SSE client minus the send time of its trigger event (both this process's wall
   clock; the first 2 s left out). Goal: p95 <= 250 ms at 1,000 events/s.
3. ``sse_clients``: ``--clients`` SSE clients held by one serve process; its RSS before
   and with them; then ``--pushes`` NBAs produced to ``cx.nba`` one a second, and the
   time from produce to each client's receipt (fan-out).

``--serve-tree DIR`` runs serve from another checkout (e.g. main, to compare);
``--hide-modules uvloop httptools`` makes them unimportable in the serve process (uvicorn
then falls back to asyncio and h11, as before they were dependencies); ``--compare-tree DIR``
(with ``--compare-hide``, ``--rounds``) runs the lookup phase there and here in turn and
writes ``api-compare.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from api.auth import token_digest
from benchmarks.api_client import SseClient, open_loop
from benchmarks.harness import REPO, BenchEnv, FlowCluster, free_port_pair, rss_bytes
from benchmarks.latency import percentiles, trigger_of
from benchmarks.options import RESULTS
from benchmarks.workload import Sender, mix, paced
from flows.app.topics import ensure_topics
from flows.settings import KafkaSettings, Settings, TopicSettings
from state.profile_hash import ProfileDelta
from state.redis_store import RedisProfileStore
from state.store import ResolveRequest

TOKEN = "bench-token"  # noqa: S105 (a throwaway credential of the bench's own server)
WARMUP_SECONDS = 2.0
Say = Callable[[str], None]


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


@contextlib.contextmanager
def serving(
    env: dict[str, str], tree: Path = REPO, hide: Sequence[str] = ()
) -> Iterator[tuple[int, int]]:
    """Run ``cxstream serve`` with ``env`` until its stream is ready: ``(port, pid)``."""
    port = free_port_pair()
    tokens = {token_digest(TOKEN): ["profiles:read", "stream:read", "responses:write"]}
    with tempfile.TemporaryDirectory(prefix="cxbench-hide-") as hidden:
        for name in hide:
            Path(hidden, f"{name}.py").write_text("raise ImportError('hidden by the bench')\n")
        path = [hidden] if hide else []
        serve_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([*path, str(tree)]),
            "CX_API__TOKENS": orjson.dumps(tokens).decode(),
            "CX_API__RATE_PER_SECOND": "100000",
            "CX_API__RATE_BURST": "100000",
        }
        command = [sys.executable, "-m", "flows.app.cli", "serve", "--port", str(port)]
        serve = subprocess.Popen(  # noqa: S603 (our own CLI)
            command, cwd=tree, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").json()["stream"] == "ready":
                        break
                if serve.poll() is not None or time.monotonic() > deadline:
                    error = serve.stderr.read().decode()[-2000:] if serve.stderr else ""
                    msg = f"cxstream serve did not become ready: {error}"
                    raise RuntimeError(msg)
                time.sleep(0.2)
            yield port, serve.pid
        finally:
            serve.terminate()
            serve.communicate(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rounded(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()}


def lookup(env: BenchEnv, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    """Phase 1: profile lookups open-loop at a fixed rate."""
    phase = "apilookup"
    serve_env = env.flow_env(phase, env.input_topic(phase), 0)
    _fill(env.redis_url, serve_env["CX_REDIS__PREFIX"], args.customers)
    customers = args.customers

    def body(n: int) -> bytes:  # capitals: normalised as the flow does
        return b'{"type": "email", "value": "C%d@Bench.example"}' % (n % customers)

    with serving(serve_env, args.serve_tree, args.hide_modules) as (port, pid):
        cpu_before = cpu_seconds(pid)
        run = asyncio.run(
            open_loop(
                "127.0.0.1",
                port,
                b"/v1/profiles/lookup",
                TOKEN.encode(),
                body,
                rate=args.lookup_rate,
                seconds=args.lookup_seconds,
            )
        )
        cpu = cpu_seconds(pid) - cpu_before
    result = {
        "rate": args.lookup_rate,
        "seconds": args.lookup_seconds,
        "achieved_rate": round(len(run.latencies_ms) / run.elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        **_rounded(percentiles(run.latencies_ms)),
        # the serve process's CPU per request: less at the mercy of the machine's load
        "serve_cpu_us_per_request": round(cpu * 1e6 / max(1, len(run.latencies_ms))),
        "serve_tree": "this checkout" if args.serve_tree == REPO else str(args.serve_tree),
        "hidden_modules": list(args.hide_modules),
    }
    say(
        f"lookup at {args.lookup_rate:g}/s: p50 {result['p50_ms']} p95 {result['p95_ms']} ms, "
        f"{result['serve_cpu_us_per_request']} us of serve CPU each"
    )
    return result


def _sse_thread(port: int, on_data: Callable[[bytes, float], None]) -> Callable[[], None]:
    """Hold one SSE client in a thread of its own; return the function that stops it."""
    loop = asyncio.new_event_loop()
    client = SseClient(on_data)
    task = loop.create_task(client.run("127.0.0.1", port, b"/v1/stream?kinds=nba", TOKEN.encode()))
    thread = threading.Thread(target=loop.run_forever, name="bench-sse", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not client.connected.is_set():
        if time.monotonic() > deadline or task.done():
            msg = "the bench's SSE client did not connect"
            raise RuntimeError(msg)
        time.sleep(0.05)

    def stop() -> None:
        loop.call_soon_threadsafe(task.cancel)
        time.sleep(0.2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    return stop


def nba_on_sse(env: BenchEnv, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    """Phase 2: events produced -> flow -> board and cx.nba -> serve -> an SSE client."""
    phase = "apinba"
    topic = env.input_topic(phase)
    env.create_topic(topic)
    flow_env = env.flow_env(phase, topic, free_port_pair())
    received: list[tuple[str, float]] = []

    def on_data(data: bytes, at: float) -> None:
        trigger = trigger_of("nba", orjson.loads(data))
        if trigger:
            received.append((trigger, at * 1000))

    sent_at: dict[str, int] = {}
    warm_until = 0  # set when sending starts: the first WARMUP_SECONDS are left out

    def on_send(value: bytes | None, now_ms: int) -> None:
        if now_ms >= warm_until:
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                sent_at[orjson.loads(value or b"")["id"]] = now_ms

    cluster = FlowCluster(flow_env, 1, tail=True)
    try:
        cluster.wait_serving()
        with serving(flow_env, args.serve_tree, args.hide_modules) as (port, _pid):
            stop = _sse_thread(port, on_data)
            values = mix(args.seed + 3)
            sender = Sender(env.client_config, topic, env.partitions)
            warm_until = int(time.time() * 1000 + WARMUP_SECONDS * 1000)
            try:
                sent = paced(sender, values, args.nba_rate, args.nba_seconds, on_send=on_send)
                quiet, count = time.monotonic(), 0
                while time.monotonic() - quiet < 3.0:  # until no NBA came for 3 s
                    if len(received) != count:
                        quiet, count = time.monotonic(), len(received)
                    time.sleep(0.2)
            finally:
                values.close()
                stop()
    finally:
        cluster.stop()
    latencies = [at - sent_at[t] for t, at in received if t in sent_at]
    result = {
        "rate": args.nba_rate,
        "seconds": args.nba_seconds,
        "sent": sent,
        "nbas_on_sse": len(received),
        **_rounded(percentiles(latencies)),
    }
    say(f"event -> NBA on SSE at {args.nba_rate:g} ev/s: p95 {result['p95_ms']} ms")
    return result


async def _hold(port: int, clients: int, pushes: int, push: Callable[[int], None]) -> Any:
    received: list[float] = []
    sent: dict[str, float] = {}

    def on_data(data: bytes, at: float) -> None:
        nba_id = orjson.loads(data)["id"]
        if nba_id in sent:
            received.append((at - sent[nba_id]) * 1000)

    held = [SseClient(on_data) for _ in range(clients)]
    path, token = b"/v1/stream?kinds=nba", TOKEN.encode()
    tasks = [asyncio.create_task(c.run("127.0.0.1", port, path, token)) for c in held]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in held)), 120)
    await asyncio.sleep(1.0)
    yield sum(c.status == 200 for c in held)
    for n in range(pushes):
        sent[f"nba-bench-{n}"] = time.time()
        push(n)
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    yield received


def sse_clients(env: BenchEnv, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    """Phase 3: N held SSE clients on one serve process, its RSS, and fan-out latency."""
    phase = "apisse"
    serve_env = env.flow_env(phase, env.input_topic(phase), 0)
    nba_topic = serve_env["CX_TOPICS__NBA"]
    producer = Producer({**env.client_config, "linger.ms": 0})

    def push(n: int) -> None:
        body = {"id": f"nba-bench-{n}", "customer_id": "c", "channel": "web"}
        producer.produce(nba_topic, orjson.dumps(body))
        producer.flush(10)

    async def measure(port: int, pid: int) -> dict[str, Any]:
        rss_before = rss_bytes(pid)
        steps = _hold(port, args.clients, args.pushes, push)
        connected = await anext(steps)
        rss_with = rss_bytes(pid)
        received = await anext(steps)
        return {
            "clients": args.clients,
            "connected": connected,
            "rss_mib_before": round(rss_before / 2**20, 1),
            "rss_mib_with_clients": round(rss_with / 2**20, 1),
            "rss_kib_per_client": round((rss_with - rss_before) / 1024 / max(1, connected), 1),
            "deliveries": f"{len(received)} of {connected * args.pushes}",
            "fan_out": _rounded(percentiles(received)),
        }

    settings = Settings(
        kafka=KafkaSettings(brokers=env.brokers), topics=TopicSettings(nba=nba_topic)
    )
    ensure_topics(settings)
    with serving(serve_env, args.serve_tree, args.hide_modules) as (port, pid):
        result = asyncio.run(measure(port, pid))
    say(
        f"{result['connected']} SSE clients: RSS {result['rss_mib_with_clients']} MiB "
        f"({result['rss_kib_per_client']} KiB each)"
    )
    return result


PHASES = {"lookup": lookup, "nba_on_sse": nba_on_sse, "sse_clients": sse_clients}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the API phases' options (also ``python -m benchmarks``'s) to ``parser``."""
    api = parser.add_argument_group("API phases (#19)")
    api.add_argument("--api-phases", nargs="+", choices=sorted(PHASES), default=sorted(PHASES))
    api.add_argument("--customers", type=int, default=5_000, help="profiles for lookups")
    api.add_argument("--lookup-rate", type=float, default=500.0)
    api.add_argument("--lookup-seconds", type=float, default=20.0)
    api.add_argument("--nba-rate", type=float, default=1_000.0, help="events/s, NBA phase")
    api.add_argument("--nba-seconds", type=float, default=20.0)
    api.add_argument("--clients", type=int, default=1_000, help="held SSE clients")
    api.add_argument("--pushes", type=int, default=3, help="NBAs fanned out to them")
    api.add_argument("--serve-tree", type=Path, default=REPO, help="the checkout serve runs")
    api.add_argument("--hide-modules", nargs="*", default=[], help="unimportable in serve")
    api.add_argument("--no-api", action="store_true", help="python -m benchmarks: skip them")
    api.add_argument("--api-only", action="store_true", help="python -m benchmarks: only them")


def api_phases(env: BenchEnv, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    """Run the chosen API phases in ``env``; their results by name, and the goals."""
    out: dict[str, Any] = {}
    for name in args.api_phases:
        say(f"API phase {name}")
        out[name] = PHASES[name](env, args, say)
    goals: dict[str, Any] = {}
    if "lookup" in out:
        goals["lookup_p95_le_10ms_at_500"] = (
            args.lookup_rate >= 500 and (out["lookup"]["p95_ms"] or 1e9) <= 10
        )
    if "nba_on_sse" in out:
        goals["nba_on_sse_p95_le_250ms_at_1000"] = (
            args.nba_rate >= 1000 and (out["nba_on_sse"]["p95_ms"] or 1e9) <= 250
        )
    out["goals"] = goals
    return out


def compare(env: BenchEnv, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    """``--compare-tree``: the lookup phase on that tree and on this one, alternately."""
    other = argparse.Namespace(
        **{**vars(args), "serve_tree": args.compare_tree, "hide_modules": args.compare_hide}
    )
    rounds: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for n in range(args.rounds):
        say(f"round {n + 1} of {args.rounds}")
        rounds["before"].append({**lookup(env, other, say), "load_average": os.getloadavg()})
        rounds["after"].append({**lookup(env, args, say), "load_average": os.getloadavg()})
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the API phases alone; write ``api.json`` (``api-compare.json`` with a compare)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_bench")
    add_arguments(parser)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--compare-tree", type=Path, help="lookups there and here, in turn")
    parser.add_argument("--compare-hide", nargs="*", default=[], help="hidden in that tree")
    parser.add_argument("--rounds", type=int, default=3, help="compare: rounds of both")
    parser.add_argument("--brokers", default=os.environ.get("CX_KAFKA__BROKERS", "127.0.0.1:9092"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("CX_REDIS__URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    env = BenchEnv(brokers=args.brokers, redis_url=args.redis_url)

    def say(text: str) -> None:
        print(f"[api bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    started = os.getloadavg()
    try:
        results = compare(env, args, say) if args.compare_tree else api_phases(env, args, say)
    finally:
        env.cleanup()
    results["machine"] = {"cpus": os.cpu_count(), "load_average_at_start": started}
    results["command"] = " ".join(["python -m benchmarks.api_bench", *(argv or sys.argv[1:])])
    path = args.results_dir / ("api-compare.json" if args.compare_tree else "api.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
