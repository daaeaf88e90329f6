"""Parking: an idle customer's journey leaves Bytewax for the store, and comes back.

The journey step (:mod:`flows.steps.journey`) parks a customer idle for
``CX_JOURNEY__PARK_IDLE_SECONDS`` of wall time: it writes a *version* (the
journey, and per lane the last input position folded into it) to a
:class:`~state.parking.ParkingStore` and drops the key from Bytewax state. When
the customer's next event comes, the journey is read back (*rehydrated*) and the
event folded in as if it had never left. Whether a customer is parked, and when,
changes nothing in the outputs: a version is the journey itself, byte for byte.

**Crash safety.** Bytewax restores each key as of the last committed snapshot
(epoch C) and replays the input after it. A key present at C is restored from
Bytewax and never reads the store. A key absent at C had been parked, and the
right version is the last one written before C: it holds only events before C's
resume position. After C the run may have rehydrated and parked the customer
again, writing versions that hold replayed events; folding the replay into one of
those would count events twice. So a version records, per lane, the last ``seq``
(:mod:`flows.lanes`) it folded, and a customer is rehydrated from the **newest
version whose position on the event's lane is before the event**. With one lane
(the case outputs are byte-identical for), the first replayed event of the
customer is exactly the first event it got after C in the crashed run, which
every later version holds: they are all skipped, and the last version written
before C is taken. (With several lanes the choice can be off when the crashed run
saw another lane first; then the journey's per-lane positions catch each replayed
event already folded, which is folded on a copy instead: counted once.)

Versions that no resume can need go when the next version is written: everything
older than the newest version whose positions are all before the **committed
floor**, the dedupe step's ``seq`` per lane in the last snapshot Bytewax has
committed (read from the recovery partitions, :class:`CommitFloor`). Without
recovery nothing is ever replayed, and only the newest version is kept.

An erased or merged-away customer gets an empty version (a tombstone) at the
request's position; once that is committed, the customer's list is deleted.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flows.records import Resolved
from flows.steps.dedupe import LaneSnapshot
from schemas.outputs import IdentityErasure
from state.parking import ParkingStore

Pos = dict[str, int]
"""Per lane, the last input ``seq`` folded into a journey."""
Floor = Mapping[str, int] | None
"""Per lane, the committed resume ``seq`` (None: no recovery, nothing is replayed)."""

DEDUPE_STEP = "cxstream.dedupe"


def encode_version(pos: Pos, state: bytes) -> bytes:
    """One stored version: the positions, and the journey's bytes (b"": erased)."""
    return pickle.dumps((pos, state), protocol=pickle.HIGHEST_PROTOCOL)


def decode_version(version: bytes) -> tuple[Pos, bytes]:
    """Return ``(positions, journey bytes)`` of :func:`encode_version`."""
    pos, state = pickle.loads(version)  # noqa: S301 (our own record in our own store)
    return pos, state


def is_before(pos: Pos, floor: Mapping[str, int]) -> bool:
    """Whether every position is before the floor (no resume can replay into it).

    >>> is_before({"a": 3}, {"a": 4}), is_before({"a": 4}, {"a": 4}), is_before({}, {})
    (True, False, True)
    """
    return all(seq < floor.get(lane, 0) for lane, seq in pos.items())


def choose(versions: list[Pos], lane: str, seq: int) -> int:
    """Return the index of the version to resume from for an event at ``(lane, seq)``.

    The newest whose position on ``lane`` is before ``seq`` (-1: none, a new journey);
    a position of its own (seq < 0) takes the newest.

    >>> choose([{"L": 3}, {"L": 9}], "L", 5), choose([{"L": 3}], "L", 10), choose([], "L", 1)
    (0, 0, -1)
    """
    for i in range(len(versions) - 1, -1, -1):
        if seq < 0 or versions[i].get(lane, -1) < seq:
            return i
    return -1


def droppable(versions: list[Pos], floor: Floor) -> int:
    """How many of the oldest versions no resume can need any more.

    >>> droppable([{"L": 1}, {"L": 5}, {"L": 9}], {"L": 6}), droppable([{"L": 1}], None)
    (1, 1)
    """
    if floor is None:
        return len(versions)
    for i in range(len(versions) - 1, -1, -1):
        if is_before(versions[i], floor):
            return i
    return 0


class CommitFloor:
    """The dedupe step's ``seq`` per lane in the snapshot a resume would restore now.

    Read from the recovery partitions (``part-*.sqlite3``) at most every
    ``refresh_seconds``; nothing snapshotted yet gives an empty floor (keep everything).
    """

    def __init__(
        self,
        directory: Path,
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._floor: dict[str, int] = {}
        self._read_at = float("-inf")

    def __call__(self) -> dict[str, int]:
        """Return the floor, refreshed if it is older than ``refresh_seconds``."""
        now = self.clock()
        if now - self._read_at >= self.refresh_seconds:
            self._read_at = now
            # unreadable now (a writer's lock, another layout): keep the last floor
            with contextlib.suppress(sqlite3.Error, pickle.UnpicklingError, TypeError, IndexError):
                self._floor = self.read()
        return self._floor

    def read(self) -> dict[str, int]:
        """Read the floor from the recovery partitions now.

        The resume epoch is Bytewax's own (its ``resume_from``): of the latest
        execution, the least worker frontier (a worker with none: the execution's
        resume epoch); a resume restores each key's last snapshot before it.
        """
        parts = sorted(self.directory.glob("part-*.sqlite3"))
        exs: list[tuple[int, int, int]] = []
        fronts: dict[tuple[int, int], int] = {}
        for part in parts:
            with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5) as db:
                exs += db.execute("SELECT ex_num, worker_count, resume_epoch FROM exs").fetchall()
                for ex, worker, frontier in db.execute(
                    "SELECT ex_num, worker_index, worker_frontier FROM fronts"
                ):
                    fronts[ex, worker] = max(frontier, fronts.get((ex, worker), frontier))
        if not exs:
            return {}
        ex, workers, start = max(exs)
        resume = min(max(start, fronts.get((ex, w), start)) for w in range(workers))
        floor: dict[str, int] = {}
        for part in parts:  # each lane's last snapshot before the resume epoch, only that
            with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute(
                    "SELECT state_key, ser_change FROM snaps AS s WHERE step_id = ?1"
                    " AND snap_epoch = (SELECT MAX(snap_epoch) FROM snaps WHERE step_id = ?1"
                    " AND state_key = s.state_key AND snap_epoch < ?2)",
                    (DEDUPE_STEP, resume),
                ).fetchall()
            for lane, change in rows:
                if change is not None:
                    snap: LaneSnapshot = pickle.loads(change)  # noqa: S301 (Bytewax's own snapshot of our step)
                    floor[lane] = snap[1]
        return floor


@dataclass
class Parking:
    """What the journey step needs to park and rehydrate customers."""

    store: ParkingStore
    idle_seconds: float
    floor: Callable[[], Floor] = lambda: None
    clock: Callable[[], float] = time.time
    calls: list[int] = field(default_factory=lambda: [0, 0, 0])  # reads, writes, deletes

    def rehydrate(self, customer_id: str, lane: str, seq: int) -> tuple[bytes, list[Pos]]:
        """Return the journey to resume from (b"": a new one) and the versions kept."""
        self.calls[0] += 1
        stored = [decode_version(v) for v in self.store.versions(customer_id)]
        at = choose([pos for pos, _ in stored], lane, seq)
        if at < len(stored) - 1:  # versions of a crashed run's future: never the right one
            self.store.keep_first(customer_id, at + 1)
            self.calls[1] += 1
        return (stored[at][1] if at >= 0 else b""), [pos for pos, _ in stored[: at + 1]]

    def park(
        self, customer_id: str, pos: Pos, state: bytes, stored: list[Pos] | Pos | None
    ) -> list[Pos]:
        """Write a version, dropping the ones no resume can need; return the versions kept.

        ``stored``: the versions as this journey knows them, or, for a journey Bytewax
        restored, its positions then: a version past them is a crashed run's; None for a
        journey begun by the event that created the customer: any version in the store is
        a crashed run's (it holds only events the restart replayed), so it is overwritten.
        """
        version = encode_version(pos, state)
        if stored is None:
            self.calls[1] += 1
            self.store.replace(customer_id, [version])
            return [pos]
        if isinstance(
            stored, dict
        ):  # restored from a snapshot: a crashed run may have written more
            self.calls[0] += 1
            kept = [
                (p, s)
                for p, s in (decode_version(v) for v in self.store.versions(customer_id))
                if all(seq <= stored.get(lane, -1) for lane, seq in p.items())
            ]
            kept = kept[droppable([p for p, _ in kept], self.floor()) :]
            self.calls[1] += 1
            self.store.replace(customer_id, [*(encode_version(p, s) for p, s in kept), version])
            return [*(p for p, _ in kept), pos]
        drop = droppable(stored, self.floor())
        self.calls[1] += 1
        self.store.append(customer_id, version, drop)
        return [*stored[drop:], pos]

    def settled(self, pos: Pos) -> bool:
        """Whether a tombstone at ``pos`` is committed (then the list may be deleted)."""
        floor = self.floor()
        return floor is None or is_before(pos, floor)

    def delete(self, customer_id: str) -> None:
        self.calls[2] += 1
        self.store.delete(customer_id)


def forgotten_customers(resolved: Resolved) -> list[Resolved]:
    """Return the event once for each customer it erased or merged away, addressed to them.

    The journey step forgets them: an erased customer's journey, features and interest
    go; a merged-away fragment's journey goes too (the survivor continues from its own,
    and no event resolves to the old id any more). Each copy keeps the event's lane and
    ``seq``: the position of the tombstone the journey step parks.
    """
    return [
        Resolved(
            customer_id,
            resolved.event,
            (FORGET,),
            lane=resolved.lane,
            seq=resolved.seq,
            wm_ms=resolved.wm_ms,
        )
        for customer_id in resolved.gone()
    ]


FORGET_ID = "journey-forget"
FORGET = IdentityErasure.model_validate(
    {
        "id": FORGET_ID,
        "customer_id": "-",
        "event_id": "-",
        "time": "2000-01-01T00:00:00Z",
        "existed": False,
        "identifiers_removed": 0,
        "aliases_removed": 0,
    }
)
"""The marker of a forget addressed to the journey step (never an output)."""


def is_forget(resolved: Resolved) -> bool:
    """Whether ``resolved`` asks the journey step to forget its customer."""
    outputs = resolved.outputs
    return bool(outputs) and isinstance(outputs[0], IdentityErasure) and outputs[0].id == FORGET_ID
