"""Households in the store: the protocol and the in-memory twin.

The rules (evidence, limits, ids) are :mod:`state.household_rules`, the figures
:mod:`state.household_figures`; the Redis store is :mod:`state.redis_households`
(``state/lua/households.lua``), and the contract tests hold both to the same results.

A batch is a list of :class:`HouseholdItem` in lane order (:mod:`flows.steps.households`),
each the :class:`HouseholdChange` list of one event: a *merge* (the merged-away
customer's evidence and figures go to the survivor; the store remembers where it
went), a *link* (the evidence the event presents is recorded for its customer, and
the event's :class:`~state.household_figures.MemberFigures` are folded in) or an
*erase* (the customer's evidence and figures go, and it never links again). The
items are applied one after the other, each regrouping the customers whose evidence
changed (connected components of customers and evidence within its limit; see the
rules), and each item gets back its customer's household *as that item leaves it*:
item i sees exactly the items before it and itself, whatever the batching. An item
with an event id is recorded with that answer for the retention (wall clock), and a
re-processed one (a retried call, a restored run) changes nothing and gets its first
answer again. Then every household the batch touched is returned for publication,
built from its members' figures, with its publication count; one that lost its
members (split, renamed: its smallest evidence changed, or dissolved) as gone.

The structure is a function of the evidence each canonical customer presented (sets,
so order and repetition do not matter), so processes adding members in any order end
with the same households. A value past its limit by
:data:`~state.household_rules.OVER_LIMIT_KEPT` customers is over for good (its later
users are not remembered): then only merges among its first users can tell orders
apart, never which customers it links (none).

>>> from state.household_figures import MemberFigures
>>> def event(eid, cid, address, cents):
...     figures = MemberFigures(f"1|{eid}", 1, amount_cents=cents)
...     return HouseholdItem(eid, cid, (HouseholdChange("link", cid, {"address": address},
...                                                      figures=figures),))
>>> store = MemoryHouseholdStore()
>>> batch = store.step([event("e1", "a", "1 Main Street", 500),
...                     event("e2", "b", "1 MAIN ST.", 250)])
>>> [c.household_id != "" for c in batch.contexts], batch.contexts[1].ltv_cents
([False, True], 750)
>>> [(h.member_count, h.lifetime_value) for h in batch.published]
[(2, 7.5)]
>>> store.household_of("a") == store.household_of("b") == batch.published[0]
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from schemas.outputs import HouseholdSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.household_figures import (
    NO_HOUSEHOLD,
    HouseholdView,
    MemberFigures,
    add_to_totals,
    build_snapshot,
    contribution,
    figures_of,
    fold_figures,
    merge_figures,
    totals_of,
)
from state.household_rules import OVER_LIMIT_KEPT, HouseholdPolicy, household_id
from state.store import member_type

ChangeKind = Literal["link", "merge", "erase"]
#: Days a household's daily budget is kept (event time may go back a little).
BUDGET_DAYS_KEPT = 3
BUDGET_KEYS_KEPT = 10_000
#: Wall-clock ms an item's answer is kept for a re-processed event (the identity
#: outcomes' default, ``CX_IDENTITY__OUTCOME_RETENTION_SECONDS``).
RETENTION_MS = 3_600_000


@dataclass(slots=True)  # not frozen: one is made per event, and frozen init is slow
class HouseholdChange:
    """One change: ``link`` (customer, identifiers, figures), ``merge``, ``erase``."""

    kind: ChangeKind
    customer_id: str
    identifiers: Mapping[str, str] = field(default_factory=dict)
    survivor_id: str = ""
    figures: MemberFigures | None = None


@dataclass(slots=True)
class HouseholdItem:
    """One event's changes, in order; ``customer_id``: whose household to answer with.

    ``event_id`` empty: not recorded (an erase, applied twice, changes nothing).
    """

    event_id: str
    customer_id: str | None
    changes: tuple[HouseholdChange, ...]


@dataclass(frozen=True, slots=True)
class HouseholdBatch:
    """What a batch did: households to publish (by id), gone ids, versions, per-item answers."""

    published: list[HouseholdSnapshot]
    gone: list[str]
    #: household id -> its publication count (published and gone), for ordering
    versions: dict[str, int]
    #: per item: its customer's household just after it (NO_HOUSEHOLD: none, or no customer)
    contexts: list[HouseholdView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Spend:
    """One NBA asking for room in its household's budget of an event-time day."""

    household_id: str
    day: int
    token: str  # the NBA id: a re-processed decision gets its first answer
    limit: int


class HouseholdStore(Protocol):
    """Households kept next to the profiles (one call per batch)."""

    def step(self, items: Sequence[HouseholdItem]) -> HouseholdBatch:
        """Apply the items in order; return the households touched and each item's answer."""
        ...

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        """Return the customer's household now, if any."""
        ...

    def households(self) -> list[HouseholdSnapshot]:
        """Every household, by id."""
        ...

    def spend(self, asks: Sequence[Spend]) -> list[bool]:
        """Take, in order, one send of each ask's household and day; True where it fits.

        Idempotent per token: a token already granted is granted again.
        """
        ...

    def close(self) -> None: ...


def apply_changes(store: HouseholdStore, changes: Sequence[HouseholdChange]) -> HouseholdBatch:
    """Apply ``changes`` as one unrecorded item (tests, tools)."""
    return store.step([HouseholdItem("", None, tuple(changes))])


class MemoryHouseholdStore:
    """:class:`HouseholdStore` in plain dicts (offline runs, tests)."""

    def __init__(
        self,
        policy: HouseholdPolicy | None = None,
        hasher: Hasher | None = None,
        *,
        retention_ms: int = RETENTION_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy or HouseholdPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self.retention_ms = retention_ms
        self.clock = clock
        self._holders: dict[str, set[str]] = {}  # evidence -> customers presenting it
        self._over: set[str] = set()  # evidence over its limit for good
        self._evidence: dict[str, set[str]] = {}  # customer -> evidence
        self._of: dict[str, str] = {}  # customer -> household id
        self._members: dict[str, set[str]] = {}  # household id -> customers
        self._types: dict[str, list[str]] = {}  # household id -> linking evidence types
        self._versions: dict[str, int] = {}
        self._sent: dict[tuple[str, int], set[str]] = {}  # (household, day) -> tokens
        self._figures: dict[str, dict[str, str]] = {}  # customer -> figures hash
        self._totals: dict[str, dict[str, str]] = {}  # household id -> totals
        self._alias: dict[str, str] = {}  # merged-away customer -> survivor
        self._erased: set[str] = set()
        self._answers: dict[str, tuple[int, str]] = {}  # event id -> (wall ms, view text)

    def _canonical(self, cid: str) -> str:
        while cid in self._alias:
            cid = self._alias[cid]
        return cid

    def _linking(self, e: str) -> bool:
        return e not in self._over and len(self._holders[e]) <= self.policy.limit(member_type(e))

    def _link(self, cid: str, evidence: list[str], affected: dict[str, None]) -> None:
        if not evidence:
            return  # most events: no entry for a customer without evidence
        mine = self._evidence.setdefault(cid, set())
        for e in evidence:
            if e in mine or e in self._over:
                continue
            holders = self._holders.setdefault(e, set())
            limit = self.policy.limit(member_type(e))
            mine.add(e)
            holders.add(cid)
            affected[cid] = None
            if len(holders) == limit + 1:  # it stops linking: its holders split
                affected.update(dict.fromkeys(sorted(holders)))
            elif len(holders) > limit + OVER_LIMIT_KEPT:
                self._over.add(e)

    def _unlink(self, cid: str, affected: dict[str, None]) -> set[str]:
        gone = self._evidence.pop(cid, set())
        for e in sorted(gone):
            holders = self._holders[e]
            holders.discard(cid)
            affected.update(dict.fromkeys(sorted(holders)))
            if not holders:
                del self._holders[e]
        affected[cid] = None
        return gone

    def _change(self, change: HouseholdChange, affected: dict[str, None], dirty: set[str]) -> None:
        """Apply the structural part of one change (evidence, merges, erases)."""
        if change.kind == "link":
            cid = self._canonical(change.customer_id)
            if cid not in self._erased:
                self._link(cid, self.policy.evidence_of(change.identifiers, self.hasher), affected)
            return
        cid = change.customer_id if change.kind == "merge" else self._canonical(change.customer_id)
        survivor = self._canonical(change.survivor_id) if change.kind == "merge" else ""
        if survivor == cid:
            return
        if cid in self._of:
            dirty.add(self._of[cid])
        moved, figures = self._unlink(cid, affected), self._figures.pop(cid, None)
        if change.kind == "erase":
            self._erased.add(cid)
            return
        self._alias[cid] = survivor
        if survivor in self._erased:
            return
        if figures is not None:
            merge_figures(self._figures.setdefault(survivor, {}), figures)
        if survivor in self._of:  # its figures may have moved: recompute, publish
            dirty.add(self._of[survivor])
        self._link(survivor, sorted(moved), affected)
        affected[survivor] = None

    def _fold(self, change: HouseholdChange) -> str | None:
        """Fold a link's figures in (the totals move by the difference); its household."""
        cid = self._canonical(change.customer_id)
        if cid in self._erased:
            return None
        hid = self._of.get(cid)
        if change.figures is not None:
            h = self._figures.setdefault(cid, {})
            totals = self._totals[hid] if hid is not None else None
            if totals is not None:
                add_to_totals(totals, contribution(h), -1)
            fold_figures(h, change.figures)
            if totals is not None:
                add_to_totals(totals, contribution(h), 1)
        return hid

    def _view(self, customer_id: str | None) -> HouseholdView:
        hid = None if customer_id is None else self._of.get(self._canonical(customer_id))
        if hid is None:
            return NO_HOUSEHOLD
        return HouseholdView.of(hid, len(self._members[hid]), self._totals[hid])

    def _answer(self, event_id: str, now: int) -> str | None:
        found = self._answers.get(event_id) if event_id else None
        if found is None or now - found[0] > self.retention_ms:
            return None
        return found[1]

    def _record(self, event_id: str, now: int, view: HouseholdView) -> None:
        if not event_id or self.retention_ms <= 0:
            return
        self._answers[event_id] = (now, view.text())
        oldest = next(iter(self._answers.values()))
        if now - oldest[0] > self.retention_ms:  # as Redis's expiry: the old ones go
            self._answers = {
                k: v for k, v in self._answers.items() if now - v[0] <= self.retention_ms
            }

    def step(self, items: Sequence[HouseholdItem]) -> HouseholdBatch:
        now = int(self.clock() * 1000)
        changed: dict[str, None] = {}
        gone: dict[str, None] = {}
        contexts = []
        for item in items:
            recorded = self._answer(item.event_id, now)
            if recorded is not None:  # re-processed: nothing again, the first answer
                view = HouseholdView.parse(recorded)
                current = self._view(item.customer_id)
                if current.household_id:
                    changed[current.household_id] = None
                contexts.append(view)
                continue
            affected: dict[str, None] = {}
            dirty: set[str] = set()
            for change in item.changes:
                self._change(change, affected, dirty)
            self._settle(affected, dirty, changed, gone)
            for change in item.changes:
                if change.kind == "link":
                    hid = self._fold(change)
                    if hid is not None:
                        changed[hid] = None
            view = self._view(item.customer_id)
            self._record(item.event_id, now, view)
            contexts.append(view)
        published_ids = sorted(h for h in changed if h in self._members)
        gone_ids = sorted(h for h in gone if h not in self._members)
        published = [self._snapshot(hid) for hid in published_ids]
        for hid in (*published_ids, *gone_ids):
            self._versions[hid] = self._versions.get(hid, 0) + 1
        versions = {hid: self._versions[hid] for hid in (*published_ids, *gone_ids)}
        return HouseholdBatch(published, gone_ids, versions, contexts)

    def _settle(
        self,
        affected: dict[str, None],
        dirty: set[str],
        changed: dict[str, None],
        gone: dict[str, None],
    ) -> None:
        """Regroup after an item's changes; recompute the totals of the households moved."""
        if not affected and not dirty:
            return
        moved, lost = self._regroup(affected) if affected else ({}, [])
        for hid in lost:
            self._totals.pop(hid, None)
            gone[hid] = None
        for hid in (*moved, *sorted(dirty)):
            if hid in self._members:
                members = sorted(self._members[hid])
                self._totals[hid] = totals_of(self._figures.get(c, {}) for c in members)
                changed[hid] = None

    def _component(self, start: str) -> tuple[list[str], set[str]]:
        seen, stack, evidence = {start: None}, [start], set()
        while stack:
            cid = stack.pop()
            for e in self._evidence.get(cid, ()):
                if e in evidence or not self._linking(e):
                    continue
                evidence.add(e)
                for other in self._holders[e]:
                    if other not in seen:
                        seen[other] = None
                        stack.append(other)
        return sorted(seen), evidence

    def _regroup(self, affected: dict[str, None]) -> tuple[dict[str, None], list[str]]:
        """Recompute the households of ``affected`` (and of their former households)."""
        seeds = dict(affected)
        for cid in affected:
            hid = self._of.get(cid)
            if hid is not None:
                seeds.update(dict.fromkeys(sorted(self._members[hid])))
        changed: dict[str, None] = {}
        old_ids = {self._of[c] for c in seeds if c in self._of}
        done: set[str] = set()
        for start in seeds:
            if start in done:
                continue
            members, evidence = self._component(start)
            done.update(members)
            big = len(members) >= self.policy.min_members
            hid = household_id(evidence) if big else None
            for cid in members:
                before = self._of.get(cid)
                if before == hid:
                    continue
                if before is not None:
                    self._members[before].discard(cid)
                    changed[before] = None
                if hid is None:
                    del self._of[cid]
                else:
                    self._of[cid] = hid
                    self._members.setdefault(hid, set()).add(cid)
                    changed[hid] = None
            if hid is not None:
                self._types[hid] = sorted({member_type(e) for e in evidence})
        gone = sorted(h for h in (*old_ids, *changed) if not self._members.get(h))
        for hid in gone:
            self._members.pop(hid, None)
            self._types.pop(hid, None)
            changed.pop(hid, None)
        return changed, list(dict.fromkeys(gone))

    def _snapshot(self, hid: str) -> HouseholdSnapshot:
        members = {c: figures_of(self._figures.get(c, {})) for c in self._members[hid]}
        return build_snapshot(hid, self._types[hid], members)

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        hid = self._of.get(self._canonical(customer_id))
        return None if hid is None else self._snapshot(hid)

    def households(self) -> list[HouseholdSnapshot]:
        return [self._snapshot(hid) for hid in sorted(self._members)]

    def spend(self, asks: Sequence[Spend]) -> list[bool]:
        out = []
        for ask in asks:
            sent = self._sent.setdefault((ask.household_id, ask.day), set())
            fits = ask.token in sent or len(sent) < ask.limit
            if fits:
                sent.add(ask.token)
            out.append(fits)
        if len(self._sent) > BUDGET_KEYS_KEPT:  # as Redis's expiry: old days go
            latest = max(day for _, day in self._sent)
            for key in [k for k in self._sent if k[1] < latest - BUDGET_DAYS_KEPT]:
                del self._sent[key]
        return out

    def close(self) -> None:
        """Nothing to release."""
