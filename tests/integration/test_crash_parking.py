"""The crash test with journeys parked almost at once: still byte-identical to a run without.

``CX_JOURNEY__PARK_IDLE_SECONDS=0.05`` parks every customer a twentieth of a second
after their last batch, so across the random kills (tests/integration/test_crash_recovery.py)
customers are parked, read back and parked again between snapshots: the case where a
parked version holds events the restart replays (flows/steps/parking.py says why the
version chosen is the right one). The reference is the fault-free offline run with no
parking at all; the verifier compares every output topic byte for byte.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from tests.integration.test_crash_recovery import crash_and_verify, kill_seed
from tests.integration.test_crash_recovery import flows as running_flows

flows = running_flows  # the fixture that kills whatever cluster a test leaves behind

pytestmark = pytest.mark.integration


def test_killed_runs_that_park_journeys_lose_or_duplicate_nothing(
    kafka_brokers: str,
    redis_url: str,
    topic_prefix: str,
    tmp_path: Path,
    flows: list[subprocess.Popen[bytes]],
) -> None:
    seed = kill_seed()
    parking = {"CX_JOURNEY__PARK_IDLE_SECONDS": "0.05"}
    problems = crash_and_verify(
        kafka_brokers, redis_url, topic_prefix, tmp_path, flows, seed, kills=4, extra_env=parking
    )
    assert not problems, f"kill seed {seed} (CX_CRASH_SEED={seed} replays it):\n" + "\n".join(
        problems
    )
    client = redis.Redis.from_url(redis_url)
    try:  # the journeys were parked for real, under the run's prefix
        parked = list(client.scan_iter(match=f"test:{topic_prefix}park:*", count=1000))
    finally:
        client.close()
    assert len(parked) > 100
