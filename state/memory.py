"""The in-memory twin of the Redis identity graph, for the demo and unit tests.

It follows ``state/lua/identity.lua`` step for step (the walk is
:mod:`state.memory_graph`); the contract tests run both
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
>>> third.customer_id == first.customer_id, third.merges[0].merged_id == second.customer_id
(True, True)
>>> third.merges[0].reason
'shared email, cookie_id'
>>> store.identifiers(first.customer_id or "")
{'email': ['ann@example.com'], 'cookie_id': ['ck-1']}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from schemas.outputs import ProfileSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.memory_graph import MemoryGraph
from state.outcomes import Outcome, RecentLog, known_only, prune_budget, wall_ms
from state.profile_hash import (
    OPTOUT,
    ProfileDelta,
    ProfileRules,
    applied_horizon,
    fold,
    fold_delta,
    parse_withdrawn,
    publish_due,
    record_consent,
    stamp,
)
from state.profile_snapshot import parse_recent, snapshot_from_hash
from state.store import (
    ErasedReport,
    IdentityPolicy,
    PreparedRequest,
    ResolveRequest,
    ResolveResult,
    assemble,
    group_members,
    prepare,
)


class MemoryProfileStore(MemoryGraph):
    """:class:`state.store.ProfileStore` in plain dicts (one process, not durable).

    Parameters
    ----------
    policy
        Priority, limits and blocked values; :class:`IdentityPolicy` by default.
    hasher
        Applied to each value after the blocked check (so placeholders are still
        recognised); :class:`PlainIdentifiers` (no hashing) by default.
    rules
        :class:`ProfileRules` (publication, idempotence window, outcome retention).
    clock
        Wall-clock seconds (``time.time`` by default): when outcomes and applied-event
        marks were recorded, for ``rules.outcome_retention_ms`` (tests inject one).
    """

    def __init__(
        self,
        policy: IdentityPolicy | None = None,
        hasher: Hasher | None = None,
        rules: ProfileRules | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.policy = policy or IdentityPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self.rules = rules or ProfileRules()
        # profiles (mirrors state/lua/profile.lua): hash, recent (ms, entry), pending
        self._profiles: dict[str, dict[str, str]] = {}
        self._recent: dict[str, list[tuple[int, str]]] = {}
        self._pending: dict[str, int] = {}
        # event ids applied to each profile, with their event time (idempotence)
        self._applied: dict[str, dict[str, int]] = {}
        # every resolution by event id, returned again on a re-run, and every applied
        # event's customer (profile step), both for outcome_retention_ms of wall time
        self._outcomes: RecentLog[Outcome] = RecentLog()
        self._marks: RecentLog[str] = RecentLog()
        # customers (and their aliases) erased within the retention, with the wall ms:
        # a mark made before names an earlier customer of that id
        self._erased: RecentLog[int] = RecentLog()
        # this resolve call's wall ms, retention horizon and outcomes recorded
        self._now, self._horizon, self._recorded = 0, 0, 0

    def resolve_batch(self, requests: Sequence[ResolveRequest]) -> list[ResolveResult]:
        # all prepared first: a bad request refuses the batch before any change
        batch = [prepare(request, self.policy, self.hasher) for request in requests]
        retention = self.rules.outcome_retention_ms
        self._now = wall_ms(self.clock) if retention > 0 else 0
        self._horizon, self._recorded = self._now - retention, 0
        results = [
            assemble(p, self._resolve(p) if p.members else Outcome(None), self.policy)
            for p in batch
        ]
        if retention > 0 and any(p.members for p in batch):  # as identity.lua: a call
            self._outcomes.prune(self._horizon, prune_budget(self._recorded))
        return results

    def lookup(self, id_type: str, value: str) -> str | None:
        owner = self._links.get(f"{id_type}:{self.hasher.hash(id_type, value)}")
        return None if owner is None else self.canonical(owner)

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
        retention = self.rules.outcome_retention_ms
        if retention > 0:
            now = wall_ms(self.clock)
            for gone in (cid, *customer.merged):
                self._erased.put(gone, now, now)
            self._erased.prune(now - retention, prune_budget(1 + len(customer.merged)))
        members, aliases = tuple(sorted(customer.members)), tuple(sorted(customer.merged))
        return ErasedReport(cid, True, members, aliases)

    # -- profiles ------------------------------------------------------------------

    def apply_profiles(self, deltas: Sequence[ProfileDelta]) -> list[ProfileSnapshot]:  # noqa: PLR0912 (mirrors profile.lua branch for branch)
        # Mirrors apply_profiles in state/lua/profile.lua, which groups the deltas per
        # customer; customers are independent, so applying in batch order is the same.
        due: dict[str, None] = {}
        max_ms: int | None = None
        rules = self.rules
        limit, window = rules.recent_limit, rules.idempotence_window_ms
        # applied-event marks (wall clock), only with the window on (as profile.lua)
        retention = rules.outcome_retention_ms if window > 0 else 0
        now = wall_ms(self.clock) if retention > 0 else 0
        marks, marks_horizon, marked = self._marks, now - retention, 0
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
            if applied is None or not (
                delta.event_id in applied
                or (retention > 0 and self._marked(delta.event_id, cid, marks_horizon))
            ):
                if applied is not None:
                    applied[delta.event_id] = delta.ms
                    touched.add(cid)
                    if retention > 0:
                        marks.put(delta.event_id, cid, now)
                        marked += 1
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
        if retention > 0 and deltas:  # as profile.lua: once per call
            marks.prune(marks_horizon, prune_budget(marked))
        if max_ms is not None and rules.publish:
            horizon = max_ms - rules.emit_interval_ms
            for cid in self._pending_until(horizon):
                self._profiles[cid]["emit"] = str(max_ms)
                due[cid] = None
        return [self._snapshot(cid) for cid in due]

    def _marked(self, event_id: str, cid: str, horizon_ms: int) -> bool:
        """Tell whether the event was applied (marked at or after ``horizon_ms``).

        Applied to ``cid`` or to a customer merged into it since, and not to an erased
        customer of that id.
        """
        owner = self._marks.get(event_id, horizon_ms)
        if owner is None or self.canonical(owner) != cid:
            return False
        erased = self._erased.get(owner, horizon_ms)
        return erased is None or erased < self._marks.recorded_at(event_id)

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
        # a hash of resolve's consent record alone is no profile yet (profile_get)
        return self._snapshot(cid) if "v" in self._profiles.get(cid, {}) else None

    def profile_fields(self, customer_id: str) -> Mapping[str, str] | None:
        """Return the canonical customer's profile hash as stored (None: no profile yet)."""
        h = self._profiles.get(customer_id)
        return h if h is not None and "v" in h else None

    def _identifiers_changed(self, customer_id: str, ms: int) -> None:
        # as profile.lua: a profile whose identifiers changed has a change to publish
        if "v" in self._profiles.get(customer_id, {}):
            self._pending[customer_id] = min(ms, self._pending.get(customer_id, ms))

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

    # -- resolving (mirrors resolve in state/lua/identity.lua) --------------------

    def _resolve(self, prepared: PreparedRequest) -> Outcome:
        retention = self.rules.outcome_retention_ms
        log = self._outcomes
        recorded = log.get(prepared.event_id, self._horizon) if retention > 0 else None
        if recorded is not None:
            cid = recorded.customer_id
            if cid is None or self._known(cid):
                kept = known_only(recorded.entries, self._known)
                if kept != recorded.entries:  # an erased customer's entries go for good
                    recorded = replace(recorded, entries=kept)
                    log.replace(prepared.event_id, recorded)
                return recorded
            # its customer was erased: resolved afresh below, the record keeps its time
        outcome = self._walk(prepared)
        cid = outcome.customer_id
        if cid is not None and not outcome.created:
            # what resolve tells the decide step about consent (identity.lua: optout_of)
            profile = self._profiles.get(cid, {})
            outcome = replace(outcome, withdrawn=parse_withdrawn(profile.get(OPTOUT)))
        if cid is not None and prepared.consent:
            # after the reply, before the next request (identity.lua: record)
            st = stamp(prepared.event_time_ms, prepared.event_id)
            record_consent(self._profiles.setdefault(cid, {}), st, prepared.consent)
        if retention > 0:
            if recorded is None:  # new, or expired: recorded now
                log.put(prepared.event_id, outcome, self._now)
                self._recorded += 1
            else:
                log.replace(prepared.event_id, outcome)
        return outcome
