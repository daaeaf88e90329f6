"""Chaos run, outside CI: kill -9 the real flow many times, then verify every output.

The harness of tests/integration/test_crash_recovery.py with more kills (20 by
default) at seeded random points, with 1 and 2 processes and snapshot intervals
down to 0.2 s; then the verifier compares every output topic byte for byte and
the Redis graph with a fault-free offline run. The result (seed, kills, problems,
seconds) goes to benchmarks/results/chaos.json.

    bash scripts/services.sh start
    .venv/bin/python scripts/chaos.py [--kills 20] [--seed N] [--customers 1200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_crash_recovery import crash_and_verify, kill_plan  # noqa: E402

RESULT = REPO / "benchmarks" / "results" / "chaos.json"


def main() -> int:
    """Run the chaos test from the command line; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**32))
    parser.add_argument("--customers", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    brokers = os.environ.get("CX_KAFKA__BROKERS", "127.0.0.1:9092")
    redis_url = os.environ.get("CX_REDIS__URL", "redis://127.0.0.1:6379/0")
    prefix = f"chaos{uuid.uuid4().hex[:8]}."
    flows: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    print(f"chaos: {args.kills} kills, seed {args.seed}, {args.customers} customers", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            problems = crash_and_verify(
                brokers, redis_url, prefix, Path(tmp), flows, args.seed, args.kills, args.customers
            )
    finally:
        for proc in flows:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"test:{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
        client.close()
    result = {
        "command": " ".join(["python", "scripts/chaos.py", *sys.argv[1:]]),
        "seed": args.seed,
        "kills": args.kills,
        "plan": [
            {"processes": p, "epoch_seconds": e, "kill_after_seconds": round(d, 3)}
            for p, e, d in kill_plan(random.Random(args.seed), args.kills)
        ],
        "customers": args.customers,
        "seconds": round(time.monotonic() - started, 1),
        "problems": problems,
        "passed": not problems,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(problems) if problems else "chaos: every output as in the reference")
    print(f"chaos: result in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
