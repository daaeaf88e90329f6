"""The in-memory twin of the Redis identity graph, for the demo and unit tests.

It follows ``state/lua/identity.lua`` step for step; the contract tests run both
and a randomized test checks they agree on every result.

>>> from state.store import ResolveRequest
>>> store = MemoryProfileStore()
>>> first, second = store.resolve_batch([
...     ResolveRequest("evt-1", 1_000, {"cookie_id": "ck-1"}),
...     ResolveRequest("evt-2", 2_000, {"email": "ann@example.com"}),
... ])
>>> third = store.resolve_batch(
...     [ResolveRequest("evt-3", 3_000, {"email": "ann@example.com", "cookie_id": "ck-1"})]
... )[0]
>>> third.customer_id == second.customer_id, third.merges[0].merged_id == first.customer_id
(True, True)
>>> third.merges[0].reason
'shared email, cookie_id'
>>> store.identifiers(first.customer_id or "")
{'email': ['ann@example.com'], 'cookie_id': ['ck-1']}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.outputs import ProfileSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.outcomes import (
    Entries,
    LimitedEntry,
    MergedEntry,
    OutcomeLog,
    RefusedEntry,
    combine,
    known_only,
)
from state.profile_hash import (
    OPTOUT,
    ProfileDelta,
    ProfileRules,
    applied_horizon,
    fold,
    fold_delta,
    parse_recent,
    parse_withdrawn,
    publish_due,
    snapshot_from_hash,
)
from state.store import (
    ErasedReport,
    IdentityPolicy,
    Outcome,
    PreparedRequest,
    ResolveRequest,
    ResolveResult,
    assemble,
    group_members,
    member_type,
    prepare,
)

MAX_ALIAS_HOPS = 64


@dataclass(slots=True)
class _Customer:
    created_ms: int
    created_by: str
    members: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    # every id ever merged into this one, so merges re-point their aliases in one
    # hop and erase finds them without a scan
    merged: set[str] = field(default_factory=set)


class MemoryProfileStore:
    """:class:`state.store.ProfileStore` in plain dicts (one process, not durable).

    Parameters
    ----------
    policy
        Priority, limits and blocked values; :class:`IdentityPolicy` by default.
    hasher
        Applied to each value after the blocked check (so placeholders are still
        recognised); :class:`PlainIdentifiers` (no hashing) by default.
    """

    def __init__(
        self,
        policy: IdentityPolicy | None = None,
        hasher: Hasher | None = None,
        rules: ProfileRules | None = None,
    ) -> None:
        self.policy = policy or IdentityPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self.rules = rules or ProfileRules()
        self._links: dict[str, str] = {}
        self._customers: dict[str, _Customer] = {}
        self._aliases: dict[str, str] = {}
        # profiles (mirrors state/lua/profile.lua): hash, recent (ms, entry), pending
        self._profiles: dict[str, dict[str, str]] = {}
        self._recent: dict[str, list[tuple[int, str]]] = {}
        self._pending: dict[str, int] = {}
        # event ids applied to each profile, with their event time (idempotence)
        self._applied: dict[str, dict[str, int]] = {}
        # merges and conflicts by event id, reported again on a re-run
        self._outcomes = OutcomeLog()
        self._recorded_new = False  # this batch recorded an event: trim the log after it

    def resolve_batch(self, requests: Sequence[ResolveRequest]) -> list[ResolveResult]:
        # all prepared first: a bad request refuses the batch before any change
        batch = [prepare(request, self.policy, self.hasher) for request in requests]
        self._recorded_new = False
        results = [
            assemble(p, self._resolve(p) if p.members else Outcome(None), self.policy)
            for p in batch
        ]
        if self._recorded_new:
            self._outcomes.trim(self.rules.idempotence_window_ms)
        return results

    def lookup(self, id_type: str, value: str) -> str | None:
        owner = self._links.get(f"{id_type}:{self.hasher.hash(id_type, value)}")
        return None if owner is None else self.canonical(owner)

    def canonical(self, customer_id: str) -> str:
        for _ in range(MAX_ALIAS_HOPS):
            survivor = self._aliases.get(customer_id)
            if survivor is None:
                return customer_id
            customer_id = survivor
        msg = f"alias chain longer than {MAX_ALIAS_HOPS} hops at {customer_id}"
        raise RuntimeError(msg)

    def identifiers(self, customer_id: str) -> dict[str, list[str]]:
        customer = self._customers.get(self.canonical(customer_id))
        return {} if customer is None else group_members(list(customer.members), self.policy)

    def customers(self) -> list[str]:
        return sorted(self._customers)

    def erase(self, customer_id: str) -> ErasedReport:
        cid = self.canonical(customer_id)
        customer = self._customers.pop(cid, None)
        if customer is None:
            return ErasedReport(cid, False, (), ())
        for member in customer.members:
            if self._links.get(member) == cid:
                del self._links[member]
        for alias in customer.merged:
            self._aliases.pop(alias, None)
        self._drop_profile(cid)
        members, aliases = tuple(sorted(customer.members)), tuple(sorted(customer.merged))
        return ErasedReport(cid, True, members, aliases)

    # -- profiles ------------------------------------------------------------------

    def apply_profiles(self, deltas: Sequence[ProfileDelta]) -> list[ProfileSnapshot]:
        # Mirrors apply_profiles in state/lua/profile.lua, which groups the deltas per
        # customer; customers are independent, so applying in batch order is the same.
        due: dict[str, None] = {}
        max_ms: int | None = None
        rules = self.rules
        limit, window = rules.recent_limit, rules.idempotence_window_ms
        touched: set[str] = set()
        for delta in deltas:
            cid = self.canonical(delta.customer_id)
            if cid not in self._customers:
                continue  # erased (or never resolved): never resurrect a profile
            max_ms = delta.ms if max_ms is None else max(max_ms, delta.ms)
            profile = self._profiles.setdefault(cid, {})
            applied = self._applied.setdefault(cid, {}) if window > 0 else None
            # A re-applied event (a replay after a crash, a retried call) changes no
            # field, but still meets the publication rule below: a publication lost
            # with the first attempt's reply goes out again.
            if applied is None or delta.event_id not in applied:
                if applied is not None:
                    applied[delta.event_id] = delta.ms
                    touched.add(cid)
                fold_delta(profile, delta)
                if limit > 0 and delta.recent:
                    self._add_recent(cid, delta.ms, delta.recent)
            if not rules.publish:
                continue
            if publish_due(profile, delta.ms, rules.emit_interval_ms):
                self._pending.pop(cid, None)
                due[cid] = None
            else:
                self._pending.setdefault(cid, delta.ms)
        for cid in touched:
            horizon = applied_horizon(self._profiles[cid], window)
            applied = self._applied[cid]
            if min(applied.values()) < horizon:
                self._applied[cid] = {e: ms for e, ms in applied.items() if ms >= horizon}
        if max_ms is not None and rules.publish:
            horizon = max_ms - rules.emit_interval_ms
            for cid in self._pending_until(horizon):
                self._profiles[cid]["emit"] = str(max_ms)
                due[cid] = None
        return [self._snapshot(cid) for cid in due]

    def _add_recent(self, cid: str, ms: int, entry: str) -> None:
        recent = self._recent.setdefault(cid, [])
        if (ms, entry) not in recent:  # a sorted *set* in Redis
            recent.append((ms, entry))
            recent.sort()
            del recent[: -self.rules.recent_limit]

    def _pending_until(self, horizon: int | None) -> list[str]:
        ready = sorted(
            (ms, cid) for cid, ms in self._pending.items() if horizon is None or ms <= horizon
        )
        for _, cid in ready:
            del self._pending[cid]
        return [cid for _, cid in ready]

    def profile(self, customer_id: str) -> ProfileSnapshot | None:
        cid = self.canonical(customer_id)
        return self._snapshot(cid) if cid in self._profiles else None

    def flush_pending(self) -> list[ProfileSnapshot]:
        return [self._snapshot(cid) for cid in self._pending_until(None)]

    def _snapshot(self, cid: str) -> ProfileSnapshot:
        recent = parse_recent([entry for _, entry in self._recent.get(cid, [])])
        return snapshot_from_hash(cid, self._profiles[cid], self.identifiers(cid), recent)

    def _drop_profile(self, cid: str) -> None:
        self._profiles.pop(cid, None)
        self._recent.pop(cid, None)
        self._pending.pop(cid, None)
        self._applied.pop(cid, None)

    def _fold_profile(self, merged_id: str, survivor_id: str) -> None:
        source = self._profiles.get(merged_id)
        if source is not None:
            fold(self._profiles.setdefault(survivor_id, {}), source)
        recent = self._recent.get(merged_id)
        if recent:
            combined = sorted(set(self._recent.get(survivor_id, [])) | set(recent))
            self._recent[survivor_id] = combined[-self.rules.recent_limit :]
        pending = self._pending.get(merged_id)
        if pending is not None:
            self._pending[survivor_id] = min(pending, self._pending.get(survivor_id, pending))
        applied = self._applied.get(merged_id)
        if applied:
            self._applied.setdefault(survivor_id, {}).update(applied)
        self._drop_profile(merged_id)

    def close(self) -> None:
        """Nothing to release."""

    # -- the graph walk (mirrors state/lua/identity.lua) --------------------------

    def _known(self, customer_id: str) -> bool:
        return customer_id in self._customers or customer_id in self._aliases

    def _resolve(self, prepared: PreparedRequest) -> Outcome:
        window = self.rules.idempotence_window_ms
        recorded = self._outcomes.get(prepared.event_id) if window > 0 else None
        # an erased customer's entries go before the walk can re-create its id
        kept = Entries() if recorded is None else known_only(recorded, self._known)
        outcome = self._walk(prepared)
        entries = combine(kept, outcome.entries)
        if window > 0 and entries != (recorded or Entries()):
            if not entries:
                self._outcomes.drop(prepared.event_id)
            else:
                self._recorded_new |= recorded is None
                self._outcomes.put(prepared.event_id, prepared.event_time_ms, entries)
        # what resolve tells the decide step about consent (identity.lua: optout_of)
        profile = self._profiles.get(outcome.customer_id or "", {})
        withdrawn = parse_withdrawn(profile.get(OPTOUT))
        return Outcome(outcome.customer_id, outcome.created, entries, withdrawn)

    def _walk(self, prepared: PreparedRequest) -> Outcome:
        owners: list[str | None] = []
        found: list[str] = []
        for member in prepared.members:
            # no alias hop: a merge re-points every link of the merged customer
            owner = self._links.get(member)
            if owner is not None and owner not in found:
                found.append(owner)
            owners.append(owner)

        created = False
        merged: list[MergedEntry] = []
        refused: list[RefusedEntry] = []
        if not found:
            # A re-delivered creating event finds its own customer under the
            # deterministic id even when none of its identifiers point there.
            target = self.canonical(prepared.new_id)
            if target not in self._customers:
                target = prepared.new_id
                self._customers[target] = _Customer(prepared.event_time_ms, prepared.event_id)
                created = True
        elif len(found) == 1:
            target = found[0]
        else:
            ranked = sorted(found, key=self._survivor_key)
            target = ranked[0]
            survivor = self._customers[target]
            for other in ranked[1:]:
                linking = tuple(
                    m for m, o in zip(prepared.members, owners, strict=True) if o in (target, other)
                )
                over = self._over_limits(survivor, self._customers[other]) or self._weak_link(
                    survivor, self._customers[other], prepared.members, owners, target, other
                )
                if over:
                    refused.append((target, other, over, linking))
                else:
                    self._fold(other, target)
                    merged.append((target, other, linking))

        customer = self._customers[target]
        limited: list[LimitedEntry] = []
        for i, member in enumerate(prepared.members):
            if owners[i] is not None:
                continue
            id_type = member_type(member)
            if customer.counts.get(id_type, 0) < self.policy.limit(id_type):
                self._links[member] = target
                customer.members.add(member)
                customer.counts[id_type] = customer.counts.get(id_type, 0) + 1
            else:
                limited.append((target, member))
        return Outcome(target, created, Entries(tuple(merged), tuple(refused), tuple(limited)))

    def _survivor_key(self, customer_id: str) -> tuple[int, str, int, str]:
        customer = self._customers[customer_id]
        if customer.counts:
            rank, best = min(self.policy.type_key(t) for t in customer.counts)
        else:
            rank, best = len(self.policy.priority) + 1, ""
        return rank, best, customer.created_ms, customer_id

    def _weak_link(
        self,
        survivor: _Customer,
        other: _Customer,
        members: tuple[str, ...],
        owners: list[str | None],
        survivor_id: str,
        other_id: str,
    ) -> tuple[str, ...]:
        """``("weak:<type>",)`` when only weak identifiers tie two known customers."""
        policy = self.policy

        def strong(customer: _Customer) -> bool:
            return any(n > 0 and not policy.is_weak(t) for t, n in customer.counts.items())

        if not (strong(survivor) and strong(other)):
            return ()
        for owner_id in (survivor_id, other_id):
            held = [member_type(m) for m, o in zip(members, owners, strict=True) if o == owner_id]
            if all(policy.is_weak(t) for t in held):
                return (f"weak:{min(held, key=policy.type_key)}",)
        return ()

    def _over_limits(self, survivor: _Customer, other: _Customer) -> tuple[str, ...]:
        over = [
            id_type
            for id_type, count in other.counts.items()
            if survivor.counts.get(id_type, 0) + count > self.policy.limit(id_type)
        ]
        return tuple(sorted(over, key=self.policy.type_key))

    def _fold(self, merged_id: str, survivor_id: str) -> None:
        merged = self._customers.pop(merged_id)
        survivor = self._customers[survivor_id]
        for member in merged.members:
            self._links[member] = survivor_id
        survivor.members |= merged.members
        for id_type, count in merged.counts.items():
            survivor.counts[id_type] = survivor.counts.get(id_type, 0) + count
        for alias in (*merged.merged, merged_id):
            self._aliases[alias] = survivor_id
            survivor.merged.add(alias)
        self._fold_profile(merged_id, survivor_id)
