"""Golden test: a small committed log and its committed expected outputs.

A change that alters any output shows up here as a diff. When the change is
intended, regenerate with ``CX_UPDATE_GOLDEN=1 pytest tests/replay/test_golden.py``
and review the diff of ``tests/replay/golden/expected/``. The log is replayed at
three batch sizes: the outputs are byte-identical whatever the batching.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.app.offline import run_offline
from flows.settings import KafkaSettings, Settings
from replay.log import write_log
from replay.synthetic import generate_world
from sinks.jsonl import OFFLINE_FILES

GOLDEN = Path(__file__).parent / "golden"
LOG = GOLDEN / "events.jsonl"
EXPECTED = GOLDEN / "expected"


@pytest.mark.parametrize("batch_size", [1000, 97, 1])
def test_the_golden_log_gives_the_golden_outputs(tmp_path: Path, batch_size: int) -> None:
    if os.environ.get("CX_UPDATE_GOLDEN") and batch_size == 1000:
        write_log(LOG, generate_world(25, 21, seed=2026).messages())
        run_offline(Settings(), [LOG], EXPECTED)
    run_offline(Settings(kafka=KafkaSettings(batch_size=batch_size)), [LOG], tmp_path)
    for name in OFFLINE_FILES.values():
        expected = (EXPECTED / name).read_bytes().splitlines()
        got = (tmp_path / name).read_bytes().splitlines()
        assert got == expected, f"{name} differs from the golden output"
    assert (EXPECTED / "profiles.jsonl").stat().st_size > 0
