"""Bytewax recovery for ``cxstream run``: where state and Kafka offsets are snapshotted.

Bytewax never commits offsets to Kafka; they live in its recovery snapshots with
the flow's state (dedupe ids, journeys, NPS and SLA windows). With recovery on, a
killed run restarts from its last snapshot, possibly with a different number of
processes, and re-processes what came after it. That replay is safe: outputs have
deterministic ids (consumers upsert), and the profile store ignores an event it has
already applied.

The recovery directory holds ``partitions`` SQLite files, created on first use.
That count is fixed for good (Bytewax cannot re-partition it) and is the most
worker processes that can ever run against the directory.

>>> import tempfile
>>> from flows.settings import RecoverySettings
>>> tmp = Path(tempfile.mkdtemp())
>>> conf = prepare_recovery(RecoverySettings(directory=tmp / "rec", partitions=2), workers=2)
>>> sorted(p.name for p in (tmp / "rec").iterdir() if p.suffix == ".sqlite3")
['part-0.sqlite3', 'part-1.sqlite3']
>>> prepare_recovery(RecoverySettings(directory=tmp / "rec", partitions=2), workers=3)
Traceback (most recent call last):
...
flows.app.recovery.RecoveryError: the recovery directory ... has 2 partitions, fewer than ...

**Snapshots a killed run wrote past its resume point are discarded before a new
run starts** (:func:`discard_unreached`), working round a Bytewax 0.21.1 bug.
Bytewax writes each epoch's snapshots before the progress (``fronts``) that
says the epoch is done, and a resume starts at the least worker frontier ``R``
and loads each key's last snapshot *before* ``R``. A SIGKILL after a snapshot
of epoch ``e >= R`` was written (between the snapshot and the frontier write,
or with two processes whose frontiers differ) leaves that snapshot behind, and
Bytewax never deletes it (``src/recovery.rs`` at v0.21.1: only the GC in
``RecoveryCommitter::commit`` deletes, and it keeps each key's newest snapshot
at or before the committed epoch, so it keeps the stale one and deletes the new
run's older ones). The new run numbers its epochs from ``R`` again, but the
same epoch number holds other input (other epoch interval, other speed): a key
it does not touch in epoch ``e`` keeps the dead run's snapshot there, and a
later resume past ``e`` restores it, i.e. state as of another input offset than
the one the source resumes from. That is how the crash test lost and
double-counted events in the Bytewax-state steps (NPS windows, journeys, the
lane models) while the Redis state stayed right. Deleting every snapshot at or
after ``R`` changes nothing this resume loads, and is what Bytewax should do.

>>> import sqlite3
>>> rec = tmp / "killed"
>>> _ = prepare_recovery(RecoverySettings(directory=rec, partitions=1), workers=1)
>>> with sqlite3.connect(rec / "part-0.sqlite3") as db:
...     _ = db.execute("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (0, 1, 1)")
...     _ = db.execute("INSERT INTO fronts (ex_num, worker_index, worker_frontier)"
...                    " VALUES (0, 0, 3)")
...     _ = db.executemany("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change)"
...                        " VALUES ('s', 'k', ?, NULL)", [(1,), (2,), (3,), (4,)])
>>> discard_unreached(rec)  # the resume epoch is 3: the snapshots of 3 and 4 go
2
>>> with sqlite3.connect(rec / "part-0.sqlite3") as db:
...     db.execute("SELECT snap_epoch FROM snaps ORDER BY 1").fetchall()
[(1,), (2,)]
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flows.settings import RecoverySettings

if TYPE_CHECKING:
    from bytewax.recovery import RecoveryConfig


log = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """The recovery directory cannot serve this run; the message says what to do."""


def partitions(directory: Path) -> int:
    """How many recovery partition files ``directory`` holds."""
    return sum(1 for _ in directory.glob("part-*.sqlite3"))


def _connect(part: Path) -> sqlite3.Connection:
    return sqlite3.connect(part, timeout=30, isolation_level=None)


def resume_epoch(directory: Path) -> int | None:
    """Return the epoch the next run resumes from, by Bytewax 0.21.1's rule (None: unknown).

    Bytewax's ``resume_from``: of the latest execution, the least worker frontier (a
    worker that wrote none: the execution's own resume epoch); 1 before any execution.
    None when the directory lacks some partition (a cluster across machines sees only
    its own) or a partition was committed past that epoch (Bytewax refuses to resume).
    """
    parts: dict[int, int] = {}
    exs: list[tuple[int, int, int]] = []
    fronts: dict[tuple[int, int], int] = {}
    commits: list[int] = []
    for path in sorted(directory.glob("part-*.sqlite3")):
        with closing(_connect(path)) as db:
            parts.update(db.execute("SELECT part_index, part_count FROM parts").fetchall())
            exs += db.execute("SELECT ex_num, worker_count, resume_epoch FROM exs").fetchall()
            for ex, worker, frontier in db.execute(
                "SELECT ex_num, worker_index, worker_frontier FROM fronts"
            ):
                fronts[ex, worker] = max(frontier, fronts.get((ex, worker), frontier))
            commits += [epoch for (epoch,) in db.execute("SELECT commit_epoch FROM commits")]
    if not parts or set(parts) != set(range(max(parts.values()))):
        return None
    resume = 1
    if exs:
        ex, workers, start = max(exs)
        resume = min(max(start, fronts.get((ex, w), start)) for w in range(workers))
    return None if any(epoch > resume for epoch in commits) else resume


def discard_unreached(directory: Path) -> int:
    """Delete the snapshots of epochs at or after the resume epoch; how many went.

    See the module docstring: they were written by a killed execution for epochs the
    next one runs again, and Bytewax would restore them later in place of the new
    run's own. Call only while no process runs on ``directory``.
    """
    resume = resume_epoch(directory)
    if resume is None:
        return 0
    discarded = 0
    for path in sorted(directory.glob("part-*.sqlite3")):
        with closing(_connect(path)) as db:
            discarded += db.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (resume,)).rowcount
    if discarded:
        log.warning(
            "recovery: discarded %d snapshots of epochs from %d on, written by the killed "
            "run past its resume epoch",
            discarded,
            resume,
        )
    return discarded


def prepare_recovery(settings: RecoverySettings, workers: int) -> RecoveryConfig | None:
    """Create the recovery partitions if missing; None when recovery is off.

    Several processes of one cluster may call this at once: a lock on the
    directory makes exactly one of them create the partitions. Each discards
    the snapshots past the resume epoch (:func:`discard_unreached`); the first
    does the work, the others find none, as no process of the cluster starts
    its dataflow before every process has connected, after this call.
    """
    if not settings.enabled:
        return None
    from bytewax.recovery import RecoveryConfig, init_db_dir  # the CLI imports this module early

    directory = settings.directory
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = partitions(directory)
        if found == 0:
            init_db_dir(directory, settings.partitions)  # type: ignore[no-untyped-call]
            found = settings.partitions
        discard_unreached(directory)
    if found < workers:
        msg = (
            f"the recovery directory {directory} has {found} partitions, fewer than the "
            f"{workers} worker processes asked for; run fewer processes, or start over with "
            "a new CX_RECOVERY__DIRECTORY and a larger CX_RECOVERY__PARTITIONS"
        )
        raise RecoveryError(msg)
    backup = timedelta(seconds=settings.backup_interval_seconds)
    return RecoveryConfig(directory, backup_interval=backup)  # type: ignore[no-untyped-call]
