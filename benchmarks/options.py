"""The bench's command-line options (``python -m benchmarks``, ``make bench``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench options (sizes, rates, seed, results directory, servers) to ``parser``."""
    parser.add_argument("--events", type=int, default=150_000, help="messages in the input topic")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 2500.0, 5000.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per latency rate")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--brokers", default=os.environ.get("CX_KAFKA__BROKERS", "127.0.0.1:9092"))
    parser.add_argument(
        "--redis-url", default=os.environ.get("CX_REDIS__URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--markdown", action="store_true", help="print the table of bench.json")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="also time the Redis scripts on the local cluster (scripts/redis_cluster.sh)",
    )
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="run only the soak")
    parser.add_argument("--rate", type=float, help="soak rate (default 1.5 x sustainable)")
    parser.add_argument(
        "--park-idle",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="soak: CX_JOURNEY__PARK_IDLE_SECONDS of the flow (0: journeys never parked)",
    )
    parser.add_argument(
        "--rss-reference-events",
        type=int,
        default=1_000_000,
        help="soak: RSS at the end may exceed RSS at this many events by 10 %% at most",
    )
