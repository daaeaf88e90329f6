"""A resume never restores a snapshot that a killed run wrote past its resume epoch.

Real Bytewax runs on a real recovery directory. A SIGKILL between Bytewax's
snapshot write and its frontier write is reproduced exactly by deleting the
frontier rows of a finished run: its snapshots stay, its progress says the
epoch never ended (flows.app.recovery explains the Bytewax 0.21.1 bug).
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.app.recovery import discard_unreached, prepare_recovery, resume_epoch
from flows.settings import RecoverySettings

ITEMS = [("a", 1), ("b", 1), ("c", 1), ("k", 1)]


def _count(directory: Path, items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Run a per-key running sum over ``items`` the way ``cxstream run`` starts; its output."""
    recovery = prepare_recovery(RecoverySettings(directory=directory, partitions=1), workers=1)
    flow = Dataflow("count")
    inp = op.input("inp", flow, TestingSource(items, batch_size=10))
    sums = op.stateful_map("sum", inp, lambda total, n: ((total or 0) + n,) * 2)
    out: list[tuple[str, int]] = []
    op.output("out", sums, TestingSink(out))
    # one epoch per run: everything read is snapshotted at epoch 1
    run_main(flow, epoch_interval=timedelta(seconds=30), recovery_config=recovery)  # type: ignore[no-untyped-call]
    return out


def _kill_before_frontier(directory: Path) -> None:
    """Leave the run's snapshots, drop its progress: a SIGKILL just after the snapshot write."""
    with sqlite3.connect(directory / "part-0.sqlite3") as db:
        db.execute("DELETE FROM fronts")


def test_a_resume_never_restores_what_a_killed_run_snapshotted_past_its_resume_epoch(
    tmp_path: Path,
) -> None:
    rec = tmp_path / "rec"
    assert _count(rec, ITEMS) == [("a", 1), ("b", 1), ("c", 1), ("k", 1)]
    _kill_before_frontier(rec)  # k's snapshot of epoch 1 stays; the resume epoch is 1 again
    assert resume_epoch(rec) == 1
    # The next run reads only three messages in its epoch 1 (a slower run), then stops;
    # k's snapshot of epoch 1 is the killed run's, unless it was discarded at the start.
    assert _count(rec, ITEMS[:3]) == [("a", 1), ("b", 1), ("c", 1)]
    # The input resumes after "c": k is read for the first time in this history.
    assert _count(rec, ITEMS) == [("k", 1)]  # Bytewax alone says ("k", 2)


def test_what_a_resume_restores_is_left_alone(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    assert _count(rec, ITEMS[:2]) == [("a", 1), ("b", 1)]
    assert resume_epoch(rec) == 2  # the first run ended in epoch 1
    assert discard_unreached(rec) == 0
    assert _count(rec, [*ITEMS[:2], ("a", 1)]) == [("a", 2)]


def test_a_directory_missing_a_partition_is_left_alone(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    prepare_recovery(RecoverySettings(directory=rec, partitions=2), workers=1)
    (rec / "part-1.sqlite3").unlink()  # the other machine's partition, in a cluster
    with sqlite3.connect(rec / "part-0.sqlite3") as db:
        db.execute("INSERT INTO snaps (step_id, state_key, snap_epoch) VALUES ('s', 'k', 1)")
    assert resume_epoch(rec) is None
    assert discard_unreached(rec) == 0
