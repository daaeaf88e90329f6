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
"""

from __future__ import annotations

import fcntl
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flows.settings import RecoverySettings

if TYPE_CHECKING:
    from bytewax.recovery import RecoveryConfig


class RecoveryError(RuntimeError):
    """The recovery directory cannot serve this run; the message says what to do."""


def partitions(directory: Path) -> int:
    """How many recovery partition files ``directory`` holds."""
    return sum(1 for _ in directory.glob("part-*.sqlite3"))


def prepare_recovery(settings: RecoverySettings, workers: int) -> RecoveryConfig | None:
    """Create the recovery partitions if missing; None when recovery is off.

    Several processes of one cluster may call this at once: a lock on the
    directory makes exactly one of them create the partitions.
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
    if found < workers:
        msg = (
            f"the recovery directory {directory} has {found} partitions, fewer than the "
            f"{workers} worker processes asked for; run fewer processes, or start over with "
            "a new CX_RECOVERY__DIRECTORY and a larger CX_RECOVERY__PARTITIONS"
        )
        raise RecoveryError(msg)
    backup = timedelta(seconds=settings.backup_interval_seconds)
    return RecoveryConfig(directory, backup_interval=backup)  # type: ignore[no-untyped-call]
