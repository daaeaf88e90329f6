r"""Pipeline phase only, settings compared in interleaved pairs on one filled topic.

``python -m benchmarks.pair_bench EVENTS ROUNDS NAME=VAR:VALUE,VAR:VALUE ...`` fills one
input topic with the synthetic mix, then runs ``cxstream run --no-tail`` (one process)
once per variant and round, A B A B ..., each run with its own topics, Redis prefix and
recovery directory, and prints one JSON line per run: events/s, the flow's CPU us per
event, Redis server us per event (the shared server's: others' load counts too) and the
step timers. Compare the variants pair by pair: single runs move by +-15 % here.

    python -m benchmarks.pair_bench 60000 2 on=CX_HOUSEHOLDS__ENABLED:false \
        off=CX_HOUSEHOLDS__ENABLED:false,CX_INSIGHTS__ENABLED:false
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.harness import BenchEnv
from benchmarks.throughput import pipeline
from benchmarks.workload import fill


def parse_variants(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``NAME=VAR:VALUE,VAR:VALUE`` -> {name: {var: value}}.

    >>> parse_variants(["off=CX_INSIGHTS__ENABLED:false", "on="])
    {'off': {'CX_INSIGHTS__ENABLED': 'false'}, 'on': {}}
    """
    variants: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, _, envs = spec.partition("=")
        variants[name] = dict(e.split(":", 1) for e in envs.split(",") if e)
    return variants


def run_pairs(events: int, rounds: int, variants: dict[str, dict[str, str]]) -> list[Any]:
    """Fill a topic, then run every variant ``rounds`` times in turn; one row per run."""
    env = BenchEnv()
    base = dict(os.environ)
    flow_env = env.flow_env
    rows: list[Any] = []
    try:
        topic = env.input_topic()
        env.create_topic(topic)
        fill(env.client_config, topic, env.partitions, events, 8)
        for n in range(rounds * len(variants)):
            name = list(variants)[n % len(variants)]
            os.environ.clear()
            os.environ.update({**base, **variants[name]})
            env.flow_env = lambda phase, *a, n=n: flow_env(f"{phase}r{n}", *a)  # type: ignore[method-assign]
            out = pipeline(env, topic, 1, events, lambda _text: None)
            steps = out["profile"]["steps"]
            row = {
                "variant": name,
                "round": n // len(variants),
                "events_per_second": out["events_per_second"],
                "cpu_us_per_event": out["process_cpu_us_per_event"],
                "redis_server_us_per_event": out["redis_server_us_per_event"],
                "steps_us_per_event": {k: v["us_per_event"] for k, v in steps.items()},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        os.environ.clear()
        os.environ.update(base)
        env.cleanup()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: EVENTS ROUNDS VARIANT..."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    run_pairs(int(args[0]), int(args[1]), parse_variants(args[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
