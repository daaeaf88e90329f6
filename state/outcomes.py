"""What resolving an event decided, recorded so a re-run takes the same decision.

When the flow re-processes an event after a crash (Bytewax resumes from its last
snapshot while the store keeps its state) or re-sends a batch whose reply was
lost, the graph already holds what the first attempt did: a fresh walk would find
nothing left to merge (the ``IdentityMerge`` output and the merged-away
customer's tombstone would be lost), and could land the event elsewhere (on the
survivor of a later merge, so the journey step would key it differently). So
each store records, under the event id, the whole :class:`Outcome` it reported
and returns it again when that event id is resolved again, without a walk.

Both stores keep the same policy (``state/lua/identity.lua`` mirrors this module):

- A record is kept for ``ProfileRules.outcome_retention_ms`` of *wall-clock* time
  after it was recorded (an hour by default; 0: nothing is recorded), whatever the
  event times: a flow restored within that time re-processes every event with the
  decision it took, however much event time its backlog spans (a 60-day backlog
  replayed in minutes included). Past it the event is walked again (and recorded
  again, with a new time). Reading a record does not extend it. The memory store
  reads its injectable clock (``time.time`` by default), Redis its ``TIME``.
- Expired records are deleted in bounded steps: a bounded number per call in
  memory (:func:`prune_budget`, oldest first), a wall-clock bucket of half the
  retention at a time in Redis (``state/lua/profile.lua``), so the cost is
  amortised; an expired record not yet deleted is never returned.
- A record whose customer no longer exists, neither live nor merged into a live
  one (i.e. erased), is dropped and the event walked afresh: an erased
  customer's id never comes out of the store again. Merges and conflicts naming
  an erased customer are dropped from a record for good (:func:`known_only`).

>>> merge = ("cust-b", "cust-a", ("email:ann@example.com",))
>>> entries = Entries(merged=(merge,), limited=(("cust-b", "email:x@example.com"),))
>>> known_only(entries, lambda cid: cid != "cust-a").merged
()
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

# (survivor id, merged id, linking "type:value" members)
MergedEntry = tuple[str, str, tuple[str, ...]]
# (event's customer id, refused customer id, types over their limit (or "weak:<type>"),
#  linking members, the event's members the refused customer keeps: not linked)
RefusedEntry = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
# (customer id, member left unlinked because its type was full)
LimitedEntry = tuple[str, str]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Entries:
    """The merges and conflicts of one event, each naming its customers."""

    merged: tuple[MergedEntry, ...] = ()
    refused: tuple[RefusedEntry, ...] = ()
    limited: tuple[LimitedEntry, ...] = ()

    def __bool__(self) -> bool:
        """Tell whether there is any merge, refusal or limit entry."""
        return bool(self.merged or self.refused or self.limited)


NO_ENTRIES = Entries()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one resolution did, as both implementations report (and record) it.

    ``entries`` are the merges and conflicts to report, each naming its customers;
    ``withdrawn`` the customer's withdrawn consent as (purpose, ms)
    (``profile_hash.parse_withdrawn``); ``shared`` the event's members not used
    because they are shared.
    """

    customer_id: str | None
    created: bool = False
    entries: Entries = NO_ENTRIES
    withdrawn: tuple[tuple[str, int], ...] = ()
    shared: tuple[str, ...] = ()


def known_only(entries: Entries, known: Callable[[str], bool]) -> Entries:
    """Return the entries whose customers all pass ``known`` (live, or an alias of a live one)."""
    return Entries(
        tuple(e for e in entries.merged if known(e[0]) and known(e[1])),
        tuple(e for e in entries.refused if known(e[0]) and known(e[1])),
        tuple(e for e in entries.limited if known(e[0])),
    )


def wall_ms(clock: Callable[[], float]) -> int:
    """Return a clock's reading (seconds, as ``time.time``) in whole milliseconds.

    The same as the Redis store turns ``TIME`` into ms (seconds * 1000 +
    microseconds // 1000).
    """
    return math.floor(clock() * 1000)


def prune_budget(recorded: int) -> int:
    """Return how many expired records one call may delete.

    A constant plus twice what it recorded, so pruning keeps ahead of recording and
    a call's cost stays bounded (``state/lua/identity.lua`` uses the same budget).
    """
    return PRUNE_MIN + 2 * recorded


PRUNE_MIN = 128


class RecentLog(Generic[V]):
    """Values by event id with the wall-clock ms they were recorded at.

    The memory store's recorded outcomes, and the applied-event marks of its
    profile step.

    A record is *current* while it was recorded at or after the horizon (``now -
    retention``); :meth:`get` never returns an expired one, whether or not
    :meth:`prune` has deleted it yet, so pruning (a bounded number per call, as in
    Redis) never changes what a store answers.

    >>> log: RecentLog[str] = RecentLog()
    >>> log.put("e1", "c1", now_ms=1_000)
    >>> log.put("e2", "c2", now_ms=9_000)
    >>> log.get("e1", horizon_ms=5_000), log.get("e2", horizon_ms=5_000)
    (None, 'c2')
    >>> log.prune(horizon_ms=5_000, most=10), len(log)
    (1, 1)
    """

    def __init__(self) -> None:
        self._values: dict[str, tuple[V, int]] = {}
        # (recorded ms, event id) of every put; stale ones (the event was recorded
        # again since) are skipped when popped: pruning costs what it removes
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        """Return how many values are recorded."""
        return len(self._values)

    def get(self, event_id: str, horizon_ms: int) -> V | None:
        """Return the value recorded for ``event_id`` at or after ``horizon_ms``, if any."""
        item = self._values.get(event_id)
        if item is None or item[1] < horizon_ms:
            return None
        return item[0]

    def recorded_at(self, event_id: str) -> int:
        """When ``event_id`` was recorded (wall ms; -1: it is not)."""
        item = self._values.get(event_id)
        return -1 if item is None else item[1]

    def put(self, event_id: str, value: V, now_ms: int) -> None:
        """Record a value at wall-clock ``now_ms`` (replacing any record and its time)."""
        self._values[event_id] = (value, now_ms)
        heapq.heappush(self._heap, (now_ms, event_id))

    def replace(self, event_id: str, value: V) -> None:
        """Change a recorded value, keeping the time it was recorded at."""
        item = self._values.get(event_id)
        if item is not None:
            self._values[event_id] = (value, item[1])

    def prune(self, horizon_ms: int, most: int) -> int:
        """Delete up to ``most`` records made before ``horizon_ms``, oldest first.

        Return how many went (as ZRANGEBYSCORE ... LIMIT 0 most in Redis).
        """
        heap, removed = self._heap, 0
        while heap and removed < most and heap[0][0] < horizon_ms:
            ms, event_id = heapq.heappop(heap)
            item = self._values.get(event_id)
            if item is not None and item[1] == ms:
                del self._values[event_id]
                removed += 1
        return removed
