"""A short memory soak: `python -m benchmarks --offline-soak`, the flow over a growing population.

It runs the real flow (every step, the Redis store and parked journeys in a redis-server
of the soak's own) over the soak mix, with a small label bound, and checks what must hold
whatever the machine's speed: every input message is accounted for (decoded, then valid
or a dead letter; valid, then fresh or a duplicate), the population keeps growing, and
the state the flow keeps is bounded by count: the churn label book never holds more than
``CX_MODELS__CHURN__MAX_PENDING``, and parked journeys leave the process. Timing (events a
second, RSS) is the soak's result (benchmarks/results/soak.json), not asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EVENTS = 24_000
EVERY = 4_000
MAX_PENDING = 3_000


def test_short_soak_accounts_for_every_event_and_bounds_state(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--offline-soak", "--events", str(EVENTS),
         "--every", str(EVERY), "--park-idle", "0.5", "--rss-reference-events", str(EVERY),
         "--results-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "CX_MODELS__CHURN__MAX_PENDING": str(MAX_PENDING)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    result = orjson.loads((tmp_path / "soak.json").read_bytes())
    assert run.returncode == (0 if result["bounded"] else 1), run.stderr[-3000:]
    series = result["series"]
    assert result["events"] == EVENTS and not result["stopped_early"]
    assert [row["events"] for row in series] == [*range(EVERY, EVENTS + 1, EVERY), EVENTS]
    # nothing lost: each message decoded once, then valid or dead; valid, fresh or duplicate
    acc = result["accounting"]
    assert acc["read"] == acc["decoded"] == EVENTS
    assert acc["valid"] + acc["dead_letters"] == acc["decoded"]
    assert acc["fresh"] + acc["duplicates"] == acc["valid"]
    assert acc["dead_letters"] > 0 and acc["duplicates"] > 0  # the mix has both
    assert result["outputs"]["dlq"] == acc["dead_letters"]
    # new people all along: ~230 per 1,000 events (chunks of 7 days)
    customers = [row["customers"] for row in series]
    assert customers == sorted(customers) and customers[-1] > 0.2 * EVENTS
    # bounded by count: the label book reached its bound (dropping the oldest), never past it
    held = [row["labels_pending"] + row["labels_awaiting"] for row in series]
    assert max(held) <= MAX_PENDING and series[-1]["labels_dropped"] > 0
    # parked journeys leave the process (0.5 s idle; this holds unless the flow ran the last
    # half of the input within 0.5 s, ~25k events/s, 10x this machine)
    assert series[-1]["journeys"] < series[-1]["customers"] / 2
    assert result["checks"]["rss_vs_reference"]["judged"] is True
