"""The determinism contract: the same log gives byte-identical outputs whatever the batching.

For one input partition every output file is byte-identical for any batch size and
worker count (worker threads of one process, sharing the in-memory store).
With several partitions in one log the event-time windows (NPS windows, SLA
breaches) still are: their clocks merge the lanes in an order only the input
decides (flows.steps.ticks).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from zlib import crc32

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.app.offline import run_offline
from flows.settings import KafkaSettings, Settings
from replay.log import write_log
from replay.synthetic import generate_world
from schemas.records import RawMessage
from sinks.jsonl import OFFLINE_FILES


def _outputs(log: Path, out: Path, batch_size: int, workers: int = 1) -> dict[str, bytes]:
    run_offline(Settings(kafka=KafkaSettings(batch_size=batch_size)), [log], out, workers=workers)
    return {name: (out / name).read_bytes() for name in OFFLINE_FILES.values()}


def _world_log(path: Path, customers: int, days: int, seed: int) -> list[RawMessage]:
    messages = list(generate_world(customers, days, seed=seed).messages())
    write_log(path, messages)
    return messages


@pytest.mark.parametrize("workers", [1, 2])
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    customers=st.integers(3, 60),
    days=st.integers(2, 12),
    seed=st.integers(0, 10_000),
    sizes=st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
)
def test_any_batch_size_gives_byte_identical_outputs(
    tmp_path_factory: object,
    workers: int,
    customers: int,
    days: int,
    seed: int,
    sizes: tuple[int, int],
) -> None:
    base = Path(str(tmp_path_factory.mktemp("det")))  # type: ignore[attr-defined]
    log = base / "events.jsonl"
    messages = _world_log(log, customers, days, seed)
    small = min(sizes[0], max(1, len(messages) // 3))  # make sure batches really split
    first = _outputs(log, base / "a", small)
    second = _outputs(log, base / "b", sizes[1], workers)  # the reference is on one worker
    assert first["profiles.jsonl"]  # the world has customers
    for name, data in first.items():
        assert data == second[name], (
            f"{name} differs between batch sizes {small} and {sizes[1]} on {workers} worker(s)"
        )


def test_two_partitions_give_the_same_windows_whatever_the_batching(tmp_path: Path) -> None:
    # One log of two partitions: customers spread by their first identifier's hash.
    messages = list(generate_world(40, 20, seed=11).messages())
    offsets = [0, 0]
    split = []
    for raw in messages:
        partition = crc32(raw.value or b"") % 2
        split.append(replace(raw, partition=partition, offset=offsets[partition]))
        offsets[partition] += 1
    log = tmp_path / "two.jsonl"
    write_log(log, split)
    outputs = [_outputs(log, tmp_path / str(size), size) for size in (1, 37, 5000)]
    windows = [o["nps.jsonl"] for o in outputs]
    assert windows[0] and windows[0] == windows[1] == windows[2]
    # The same breaches; the customer each names comes from identity resolution, where
    # the interleaving of two partitions may decide who first claimed an identifier.
    breaches = [
        [
            {k: v for k, v in orjson.loads(line).items() if k != "customer_id"}
            for line in o["alerts.jsonl"].splitlines()
            if b'"kind":"sla_breach"' in line
        ]
        for o in outputs
    ]
    assert breaches[0] and breaches[0] == breaches[1] == breaches[2]
