"""``python -m benchmarks`` (``make bench``): the full-pipeline benchmark.

Against the real Kafka and Redis, on topics and keys under a unique prefix that
are deleted at the end:

1. fill one input topic (2 partitions) with ``--events`` messages of the mix;
2. the ceiling: plain consume -> orjson -> produce over it;
3. ``cxstream run --no-tail`` with 1 and 2 processes over it: throughput, Redis
   round trips per event, per-step profile, RSS over the run;
4. latency at each ``--rates`` for ``--seconds`` (a fresh tailing flow each);
5. the Experience API's phases (:mod:`benchmarks.api_bench`; ``--no-api`` skips them,
   ``--api-only`` runs only them, into the saved ``bench.json``'s ``api``).

Results go to ``bench.json`` and ``bench.png`` in ``--results-dir``
(default ``benchmarks/results``); ``--markdown`` prints the README table of a
saved ``bench.json``. ``--soak SECONDS`` runs only the soak (``--rate``, default
1.5 x the highest sustainable rate in the saved ``bench.json``), writes
``soak-kafka.json`` (its lag and p99 figures) and exits 1 when lag, RSS or latency do not
stay bounded.
``--offline-soak [OPTIONS]`` runs the memory soak of :mod:`benchmarks.soak_offline`
instead (the same flow offline, 5M events, ~1.15M people; its own options follow).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import redis_bench, soak_offline
from benchmarks.api_bench import add_arguments as add_api_arguments
from benchmarks.api_bench import api_phases
from benchmarks.harness import BenchEnv
from benchmarks.latency import latency_at, soak
from benchmarks.options import add_arguments
from benchmarks.report import chart, markdown, targets
from benchmarks.throughput import ceiling, pipeline
from benchmarks.workload import fill


def say(text: str) -> None:
    """Print a timestamped progress line to stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    say(f"wrote {path}")


def bench(args: argparse.Namespace, env: BenchEnv) -> dict[str, Any]:
    """Run the ceiling, pipeline and latency phases and return their results."""
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "settings": {
            "events": args.events,
            "rates": args.rates,
            "seconds_per_rate": args.seconds,
            "seed": args.seed,
            "input_partitions": env.partitions,
        },
    }
    topic = env.input_topic()
    env.create_topic(topic)
    say(f"filling {topic} with {args.events} messages of the synthetic mix")

    def progress(n: int) -> None:
        if n % 50_000 == 0:
            say(f"filled {n}/{args.events}")

    fill(env.client_config, topic, env.partitions, args.events, args.seed, progress=progress)
    results["ceiling"] = ceiling(env, topic, args.events, say)
    say(f"ceiling: {results['ceiling']['events_per_second']:,.0f} ev/s")
    results["pipeline"] = {}
    for processes in args.processes:
        run = pipeline(env, topic, processes, args.events, say)
        run["ratio_to_ceiling"] = round(
            run["events_per_second_per_process"] / results["ceiling"]["events_per_second"], 4
        )
        results["pipeline"][str(processes)] = run
        say(f"pipeline -p {processes}: {run['events_per_second']:,.0f} ev/s")
    one, two = results["pipeline"].get("1"), results["pipeline"].get("2")
    if one and two:
        results["scaling_1_to_2"] = round(two["events_per_second"] / one["events_per_second"], 3)
    results["latency"] = [
        latency_at(env, rate, args.seconds, args.seed + 1, say) for rate in args.rates
    ]
    results["sustainable_rate"] = max(
        (r["rate"] for r in results["latency"] if r["sustainable"]), default=None
    )
    results["targets"] = targets(results)
    if not args.no_api:
        results["api"] = api_phases(env, args, say)
    return results


def _api_only(args: argparse.Namespace, env: BenchEnv) -> int:
    """``--api-only``: the API phases, into the saved ``bench.json``'s ``api``."""
    path = args.results_dir / "bench.json"
    saved = orjson.loads(path.read_bytes()) if path.is_file() else {}
    saved["api"] = {**api_phases(env, args, say), "started": datetime.now(UTC).isoformat()}
    saved["api"]["machine"] = _machine()
    _write(path, saved)
    return 0


def _soak(args: argparse.Namespace, env: BenchEnv) -> int:
    rate = args.rate
    if rate is None:
        saved = args.results_dir / "bench.json"
        if not saved.is_file():
            say(f"no {saved} to take the sustainable rate from: pass --rate or run the bench")
            return 2
        sustainable = orjson.loads(saved.read_bytes()).get("sustainable_rate")
        if not sustainable:
            say(f"{saved} has no sustainable rate: pass --rate")
            return 2
        rate = 1.5 * sustainable
    say(f"soak: {args.soak:g} s at {rate:g} ev/s")
    result = soak(
        env,
        rate,
        args.soak,
        args.seed + 2,
        say,
        park_idle=args.park_idle,
        rss_reference_events=args.rss_reference_events,
    )
    result["machine"] = _machine()
    _write(args.results_dir / "soak-kafka.json", result)
    for name, c in result["checks"].items():
        verdict = "ok" if c["ok"] else "GROWING"
        if name == "rss_vs_reference":
            say(
                f"soak rss: {c.get('at_reference_mb')} MB at {c['reference_events']} events, "
                f"{c.get('end_mb')} MB at the end, slope {c.get('slope_mb_per_1m')} MB/1M {verdict}"
            )
            continue
        say(f"soak {name}: max {c['second_half_max']} (limit {c['limit']}) {verdict}")
    return 0 if result["bounded"] else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the ``python -m benchmarks`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    add_api_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run what ``args`` ask for (the bench, the soak or the Markdown table); the exit code."""
    if args.markdown:
        print(markdown(orjson.loads((args.results_dir / "bench.json").read_bytes())))
        return 0
    env = BenchEnv(brokers=args.brokers, redis_url=args.redis_url)
    say(f"topics and Redis keys under {env.prefix!r} (deleted at the end)")
    try:
        if args.soak is not None:
            return _soak(args, env)
        if args.api_only:
            return _api_only(args, env)
        results = bench(args, env)
        say("Redis server time per script (benchmarks/redis_bench.py)")
        results["redis_scripts"] = redis_bench.measure(cluster=args.redis_cluster)
    finally:
        say("cleaning up")
        env.cleanup()
    _write(args.results_dir / "bench.json", results)
    chart(results, args.results_dir / "bench.png")
    say(f"wrote {args.results_dir / 'bench.png'}")
    print(markdown(results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cxstream-bench`` with ``argv`` (default: the command line); the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--offline-soak"]:
        return soak_offline.main(args[1:])
    return run(build_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
