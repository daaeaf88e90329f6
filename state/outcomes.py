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

- A record is kept for ``ProfileRules.idempotence_window_ms`` of event time before
  the latest recorded event, like the applied event ids of a profile; past it the
  event is walked again (and recorded again).
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
from collections.abc import Callable
from dataclasses import dataclass

# (survivor id, merged id, linking "type:value" members)
MergedEntry = tuple[str, str, tuple[str, ...]]
# (event's customer id, refused customer id, types over their limit (or "weak:<type>"),
#  linking members, the event's members the refused customer keeps: not linked)
RefusedEntry = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
# (customer id, member left unlinked because its type was full)
LimitedEntry = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Entries:
    """The merges and conflicts of one event, each naming its customers."""

    merged: tuple[MergedEntry, ...] = ()
    refused: tuple[RefusedEntry, ...] = ()
    limited: tuple[LimitedEntry, ...] = ()

    def __bool__(self) -> bool:
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
    """The entries whose customers all pass ``known`` (live, or an alias of a live one)."""
    return Entries(
        tuple(e for e in entries.merged if known(e[0]) and known(e[1])),
        tuple(e for e in entries.refused if known(e[0]) and known(e[1])),
        tuple(e for e in entries.limited if known(e[0])),
    )


class OutcomeLog:
    """Recorded :class:`Outcome` by event id, with their event time (the memory store's).

    >>> log = OutcomeLog()
    >>> log.put("e1", 1_000, Outcome("c1"))
    >>> log.put("e2", 9_000, Outcome("c1"))
    >>> log.trim(5_000)
    >>> log.get("e1") is None, log.get("e2")
    (True, Outcome(customer_id='c1', created=False, entries=Entries(merged=(), refused=(), limited=()), withdrawn=(), shared=()))
    """  # noqa: E501

    def __init__(self) -> None:
        self._outcomes: dict[str, Outcome] = {}
        self._times: dict[str, int] = {}
        # (ms, event id) of every put, stale ones skipped when popped: trimming costs
        # what it removes, not the size of the log (every event is recorded)
        self._heap: list[tuple[int, str]] = []
        self._latest: int | None = None

    def __len__(self) -> int:
        return len(self._outcomes)

    def get(self, event_id: str) -> Outcome | None:
        return self._outcomes.get(event_id)

    def put(self, event_id: str, event_time_ms: int, outcome: Outcome) -> None:
        """Record an event's outcome at ``event_time_ms`` (a new record's time wins)."""
        self._outcomes[event_id] = outcome
        self._times[event_id] = event_time_ms
        heapq.heappush(self._heap, (event_time_ms, event_id))
        if self._latest is None or event_time_ms > self._latest:
            self._latest = event_time_ms

    def replace(self, event_id: str, outcome: Outcome) -> None:
        """Change a recorded outcome, keeping its time."""
        self._outcomes[event_id] = outcome

    def drop(self, event_id: str) -> None:
        self._outcomes.pop(event_id, None)
        self._times.pop(event_id, None)

    def trim(self, window_ms: int) -> None:
        """Forget records older than ``window_ms`` before the latest recorded one."""
        if self._latest is None:
            return
        horizon = self._latest - window_ms
        heap = self._heap
        while heap and heap[0][0] < horizon:
            ms, event_id = heapq.heappop(heap)
            if self._times.get(event_id) == ms:
                self.drop(event_id)
