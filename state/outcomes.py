"""What resolving an event did to the graph, recorded so a re-run reports it again.

A merge happens once: when the flow re-processes an event after a crash (Bytewax
resumes from its last snapshot while the store keeps its state) or re-sends a batch
whose reply was lost, the graph already holds the merge and a fresh walk finds
nothing to merge. The merge's outputs (the ``IdentityMerge`` event and the
merged-away customer's tombstone) would be lost with the first attempt. So each
store records, under the event id, the merges and conflicts an event produced
(:class:`Entries`) and reports them again when that event id is resolved again.

Both stores keep the same policy (``state/lua/identity.lua`` mirrors this module):

- A record is kept for ``ProfileRules.idempotence_window_ms`` of event time before
  the latest recorded event, like the applied event ids of a profile.
- A re-run reports the recorded entries first, then anything new its own walk did
  (:func:`combine`), and the record grows by those.
- An entry naming a customer that no longer exists, neither live nor merged into a
  live one (i.e. erased), is dropped for good (:func:`known_only`): an erased
  customer's id never comes out of the store again.

>>> merge = ("cust-b", "cust-a", ("email:ann@example.com",))
>>> recorded = Entries(merged=(merge,))
>>> fresh = Entries(limited=(("cust-b", "email:x@example.com"),))
>>> both = combine(recorded, fresh)
>>> both.merged == (merge,), both.limited
(True, (('cust-b', 'email:x@example.com'),))
>>> known_only(both, lambda cid: cid != "cust-a").merged
()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (survivor id, merged id, linking "type:value" members)
MergedEntry = tuple[str, str, tuple[str, ...]]
# (survivor id, other id, identifier types over their limit, linking members)
RefusedEntry = tuple[str, str, tuple[str, ...], tuple[str, ...]]
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


def combine(recorded: Entries, fresh: Entries) -> Entries:
    """``recorded``, then the entries of ``fresh`` it does not hold yet.

    A fresh entry is the same as a recorded one of its kind when it names the same
    merged id, refused customer or limited member: a re-run repeats the recorded
    payload (same output ids, same bytes) instead of a variant of it, e.g. a
    refusal whose linking identifiers grew by the ones the first run linked.

    >>> a = Entries(refused=(("c1", "c2", ("crm_id",), ("email:a",)),))
    >>> b = Entries(refused=(("c1", "c2", ("crm_id",), ("email:a", "phone:b")),))
    >>> combine(a, b) == a
    True
    """
    merged = list(recorded.merged)
    merged_ids = {entry[1] for entry in merged}
    merged += [e for e in fresh.merged if e[1] not in merged_ids]
    refused = list(recorded.refused)
    refused_ids = {entry[1] for entry in refused}
    refused += [e for e in fresh.refused if e[1] not in refused_ids]
    limited = list(recorded.limited)
    members = {entry[1] for entry in limited}
    limited += [e for e in fresh.limited if e[1] not in members]
    return Entries(tuple(merged), tuple(refused), tuple(limited))


def known_only(entries: Entries, known: Callable[[str], bool]) -> Entries:
    """The entries whose customers all pass ``known`` (live, or an alias of a live one)."""
    return Entries(
        tuple(e for e in entries.merged if known(e[0]) and known(e[1])),
        tuple(e for e in entries.refused if known(e[0]) and known(e[1])),
        tuple(e for e in entries.limited if known(e[0])),
    )


class OutcomeLog:
    """Recorded :class:`Entries` by event id, with their event time (the memory store's).

    >>> log = OutcomeLog()
    >>> log.put("e1", 1_000, Entries(limited=(("c1", "email:a"),)))
    >>> log.put("e2", 9_000, Entries(limited=(("c1", "email:b"),)))
    >>> log.trim(5_000)
    >>> log.get("e1") is None, log.get("e2") is not None
    (True, True)
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entries] = {}
        self._times: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, event_id: str) -> Entries | None:
        return self._entries.get(event_id)

    def put(self, event_id: str, event_time_ms: int, entries: Entries) -> None:
        """Record (or replace) an event's entries; a replaced record keeps its time."""
        self._entries[event_id] = entries
        self._times.setdefault(event_id, event_time_ms)

    def drop(self, event_id: str) -> None:
        self._entries.pop(event_id, None)
        self._times.pop(event_id, None)

    def trim(self, window_ms: int) -> None:
        """Forget records older than ``window_ms`` before the latest recorded one."""
        if not self._times:
            return
        horizon = max(self._times.values()) - window_ms
        for event_id in [e for e, ms in self._times.items() if ms < horizon]:
            self.drop(event_id)
