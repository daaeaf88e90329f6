"""Households in the store: the protocol, the shared reading, the in-memory twin.

The rules (evidence, limits, ids) are :mod:`state.household_rules`; the Redis store
is :mod:`state.redis_households` (``state/lua/households.lua``), and the contract
tests hold both to the same results.

A batch is a list of :class:`HouseholdChange` in the profile step's order: a
*link* (an event of a customer, with its identifiers: the evidence it presents is
recorded, and the customer's household is refreshed), a *merge* (the merged-away
customer's evidence goes to the survivor) or an *erase* (the customer's evidence
goes). Customer ids are followed to their canonical id and a customer without a
profile (erased, never resolved) is never linked, both read from the profile store,
so membership follows the identity graph. Then the households of every customer
whose evidence changed are recomputed as connected components (customers joined by
evidence within its limit; see the rules), and every household a change touched is
returned, recomputed from the members' profiles: members, lifetime value and orders
(sums), each member's latest NPS and their mean, detractors, the highest churn
score and the open cases. A household that lost its members (split, renamed: its
smallest evidence changed, or dissolved) is returned as gone.

The state is a function of the evidence each canonical customer presented (sets, so
order and repetition do not matter) and the profiles, so processes adding members
in any order end with the same households. A value past its limit by
:data:`~state.household_rules.OVER_LIMIT_KEPT` customers is over for good (its later
users are not remembered): then only merges among its first users can tell orders
apart, never which customers it links (none).

>>> from state.memory import MemoryProfileStore
>>> from state.profile_hash import ProfileDelta
>>> from state.store import ResolveRequest
>>> profiles = MemoryProfileStore()
>>> requests = [ResolveRequest(f"e{i}", i, {"email": f"{i}@x.co"}) for i in (1, 2)]
>>> a, b = (r.customer_id or "" for r in profiles.resolve_batch(requests))
>>> _ = profiles.apply_profiles([ProfileDelta(a, "e1", 1, "web", "w", amount_cents=500),
...                              ProfileDelta(b, "e2", 2, "web", "w", amount_cents=250)])
>>> store = MemoryHouseholdStore(profiles)
>>> batch = store.apply([HouseholdChange("link", a, {"address": "1 Main Street"}),
...                      HouseholdChange("link", b, {"address": "1 MAIN ST."})])
>>> [(h.member_count, h.lifetime_value) for h in batch.published]
[(2, 7.5)]
>>> store.household_of(a) == store.household_of(b) == batch.published[0]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from schemas.outputs import HouseholdSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.household_rules import OVER_LIMIT_KEPT, HouseholdPolicy, household_id
from state.store import member_type

ChangeKind = Literal["link", "merge", "erase"]
#: one member's figures: ltv cents, orders, latest NPS, churn score, open cases, last ms
Figures = tuple[int, int, int | None, float | None, int, int]
_DETRACTOR_MAX = 6
#: Days a household's daily budget is kept (event time may go back a little).
BUDGET_DAYS_KEPT = 3
BUDGET_KEYS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class HouseholdChange:
    """One change: ``link`` (customer, identifiers), ``merge`` (merged, survivor), ``erase``."""

    kind: ChangeKind
    customer_id: str
    identifiers: Mapping[str, str] = field(default_factory=dict)
    survivor_id: str = ""


@dataclass(frozen=True, slots=True)
class HouseholdBatch:
    """What a batch did: households to publish (by id), gone ids, versions, excerpts."""

    published: list[HouseholdSnapshot]
    gone: list[str]
    #: household id -> its publication count (published and gone), for ordering
    versions: dict[str, int]
    #: customer id asked for -> its household now (None: none)
    excerpts: dict[str, HouseholdSnapshot | None] = field(default_factory=dict)


class HouseholdStore(Protocol):
    """Households kept next to the profiles (one call per batch)."""

    def apply(
        self, changes: Sequence[HouseholdChange], excerpts_for: Sequence[str] = ()
    ) -> HouseholdBatch:
        """Apply the changes in order; return the households touched and ``excerpts_for``'s."""
        ...

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        """Return the (canonical) customer's household now, if any."""
        ...

    def households(self) -> list[HouseholdSnapshot]:
        """Every household, by id."""
        ...

    def spend(self, household_id: str, day: int, token: str, limit: int) -> bool:
        """Take one of the household's ``limit`` sends of ``day`` for ``token`` (idempotent)."""
        ...

    def close(self) -> None: ...


class ProfileReader(Protocol):
    """What the memory twin reads of the profile store."""

    def canonical(self, customer_id: str) -> str: ...

    def profile_fields(self, customer_id: str) -> Mapping[str, str] | None: ...


def member_figures(h: Mapping[str, str]) -> Figures:
    """Return a member's figures from their profile hash (:mod:`state.profile_hash`)."""
    open_cases = sum(1 for k, v in h.items() if v == "1" and k[:5] == "case:" and k[-1] != "@")
    return (
        int(h.get("ltv_c", "0")),
        int(h.get("orders", "0")),
        int(h["nps"]) if "nps" in h else None,
        float(h["churn"]) if "churn" in h else None,
        open_cases,
        int(h.get("last_ms", "0")),
    )


def build_snapshot(
    hid: str, types: Sequence[str], members: Mapping[str, Figures]
) -> HouseholdSnapshot:
    """Return the published view of one household (both stores build it here)."""
    ids = sorted(members)
    nps = {c: members[c][2] for c in ids if members[c][2] is not None}
    answers = [n for n in nps.values() if n is not None]
    churns = [f[3] for f in members.values() if f[3] is not None]
    last = max((f[5] for f in members.values()), default=0)
    return HouseholdSnapshot(
        household_id=hid,
        members=ids,
        member_count=len(ids),
        evidence_types=sorted(set(types)),
        lifetime_value=sum(f[0] for f in members.values()) / 100,
        orders=sum(f[1] for f in members.values()),
        last_nps={c: n for c, n in nps.items() if n is not None},
        mean_nps=round(sum(answers) / len(answers), 4) if answers else None,
        detractors=sum(1 for n in answers if n <= _DETRACTOR_MAX),
        max_churn=max(churns) if churns else None,
        open_cases=sum(f[4] for f in members.values()),
        last_seen=datetime.fromtimestamp(last / 1000, tz=UTC),
    )


class MemoryHouseholdStore:
    """:class:`HouseholdStore` in plain dicts, next to a memory profile store."""

    def __init__(
        self,
        profiles: ProfileReader,
        policy: HouseholdPolicy | None = None,
        hasher: Hasher | None = None,
    ) -> None:
        self.profiles = profiles
        self.policy = policy or HouseholdPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self._holders: dict[str, set[str]] = {}  # evidence -> customers presenting it
        self._over: set[str] = set()  # evidence over its limit for good
        self._evidence: dict[str, set[str]] = {}  # customer -> evidence
        self._of: dict[str, str] = {}  # customer -> household id
        self._members: dict[str, set[str]] = {}  # household id -> customers
        self._types: dict[str, list[str]] = {}  # household id -> linking evidence types
        self._versions: dict[str, int] = {}
        self._sent: dict[tuple[str, int], set[str]] = {}  # (household, day) -> tokens

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

    def apply(
        self, changes: Sequence[HouseholdChange], excerpts_for: Sequence[str] = ()
    ) -> HouseholdBatch:
        affected: dict[str, None] = {}
        touched: dict[str, None] = {}
        canonical = self.profiles.canonical
        for change in changes:
            cid = canonical(change.customer_id)
            if change.kind == "link":
                if self.profiles.profile_fields(cid) is None:
                    continue  # erased or never resolved: never linked again
                touched[cid] = None
                self._link(cid, self.policy.evidence_of(change.identifiers, self.hasher), affected)
            elif change.kind == "merge":
                survivor = canonical(change.survivor_id)
                if survivor == change.customer_id:
                    continue
                moved = self._unlink(change.customer_id, affected)
                if self.profiles.profile_fields(survivor) is not None:
                    touched[survivor] = None
                    self._link(survivor, sorted(moved), affected)
                    affected[survivor] = None
            else:
                self._unlink(cid, affected)
        changed, gone = self._regroup(affected)
        for cid in touched:
            hid = self._of.get(cid)
            if hid is not None:
                changed[hid] = None
        published = [self._snapshot(hid) for hid in sorted(changed)]
        for hid in (*sorted(changed), *gone):
            self._versions[hid] = self._versions.get(hid, 0) + 1
        excerpts = {c: self.household_of(c) for c in excerpts_for}
        versions = {hid: self._versions[hid] for hid in (*changed, *gone)}
        return HouseholdBatch(published, gone, versions, excerpts)

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
        figures = {}
        for cid in self._members[hid]:
            fields = self.profiles.profile_fields(cid)
            figures[cid] = member_figures(fields or {})
        return build_snapshot(hid, self._types[hid], figures)

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        hid = self._of.get(self.profiles.canonical(customer_id))
        return None if hid is None else self._snapshot(hid)

    def households(self) -> list[HouseholdSnapshot]:
        return [self._snapshot(hid) for hid in sorted(self._members)]

    def spend(self, household_id: str, day: int, token: str, limit: int) -> bool:
        sent = self._sent.setdefault((household_id, day), set())
        if token in sent:
            return True
        if len(sent) >= limit:
            return False
        sent.add(token)
        if len(self._sent) > BUDGET_KEYS_KEPT:  # as Redis's expiry: old days go
            for key in [k for k in self._sent if k[1] < day - BUDGET_DAYS_KEPT]:
                del self._sent[key]
        return True

    def close(self) -> None:
        """Nothing to release."""
