"""The graph walk of the in-memory store, step for step as ``state/lua/identity.lua``.

The rules (attribution by the strongest identifier, refused merges, the earliest
event's survivor, shared identifiers) are written down in :mod:`state.store`;
:class:`state.memory.MemoryProfileStore` is this graph plus profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from state.outcomes import Entries, LimitedEntry, MergedEntry, Outcome, RefusedEntry
from state.policy import IdentityPolicy
from state.store import PreparedRequest, member_type

MAX_ALIAS_HOPS = 64


@dataclass(slots=True)
class _Customer:
    created_ms: int
    created_by: str
    first: tuple[int, str]  # its earliest event: (event time ms, event id)
    members: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    # every id ever merged into this one, so merges re-point their aliases in one
    # hop and erase finds them without a scan
    merged: set[str] = field(default_factory=set)


class MemoryGraph:
    """Links, customers, aliases and shared identifiers; the walk over them."""

    policy: IdentityPolicy

    def __init__(self) -> None:
        self._links: dict[str, str] = {}
        self._customers: dict[str, _Customer] = {}
        self._aliases: dict[str, str] = {}
        # shared identifiers: the ones found shared (with how many customers
        # presented them), and who presented the others in refused conflicts
        self._shared: dict[str, int] = {}
        self._claims: dict[str, set[str]] = {}

    def canonical(self, customer_id: str) -> str:
        for _ in range(MAX_ALIAS_HOPS):
            survivor = self._aliases.get(customer_id)
            if survivor is None:
                return customer_id
            customer_id = survivor
        msg = f"alias chain longer than {MAX_ALIAS_HOPS} hops at {customer_id}"
        raise RuntimeError(msg)

    def _known(self, customer_id: str) -> bool:
        return customer_id in self._customers or customer_id in self._aliases

    def _fold_profile(self, merged_id: str, survivor_id: str) -> None:
        """Move the merged customer's profile into the survivor's (a hook)."""

    def _walk(self, prepared: PreparedRequest) -> Outcome:  # noqa: PLR0912 (identity.lua's walk, branch for branch)
        shared = tuple(m for m in prepared.members if m in self._shared)
        members = tuple(m for m in prepared.members if m not in self._shared)
        if not members:
            return Outcome(None, shared=shared)
        ms, event_id = prepared.event_time_ms, prepared.event_id
        # no alias hop: a merge re-points every link of the merged customer
        owners = [self._links.get(member) for member in members]
        found = list(dict.fromkeys(o for o in owners if o is not None))
        head_fresh = owners[0] is None

        created = False
        merged: list[MergedEntry] = []
        refused: list[RefusedEntry] = []
        pending: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        accepted: list[str] = []
        counts: dict[str, int] = {member_type(members[0]): 1} if head_fresh else {}
        for cid in found:  # in the priority order of the identifiers naming them
            customer = self._customers[cid]
            over: tuple[str, ...] = ()
            if head_fresh or accepted:
                over = self._over_limits(counts, customer.counts)
                if not over and accepted:
                    over = self._weak_link(accepted, cid, members, owners)
            if over:
                group = {*accepted, cid}
                linking = tuple(
                    m
                    for i, (m, o) in enumerate(zip(members, owners, strict=True))
                    if o in group or (i == 0 and head_fresh)
                )
                pending.append((cid, over, linking))
                continue
            accepted.append(cid)
            for id_type, count in customer.counts.items():
                counts[id_type] = counts.get(id_type, 0) + count

        if accepted:
            ranked = sorted(accepted, key=lambda c: (self._customers[c].first, c))
            target = ranked[0]
            for other in ranked[1:]:
                linking = tuple(
                    m for m, o in zip(members, owners, strict=True) if o in (target, other)
                )
                self._fold(other, target)
                merged.append((target, other, linking))
        else:
            target, created = self._create(prepared)
        for cid, over, linking in pending:
            unlinked = tuple(m for m, o in zip(members, owners, strict=True) if o == cid)
            refused.append((target, cid, over, linking, unlinked))
            self._claim(target, cid, unlinked, ms)

        customer = self._customers[target]
        limited: list[LimitedEntry] = []
        for member, owner in zip(members, owners, strict=True):
            if owner is not None:
                continue
            id_type = member_type(member)
            if customer.counts.get(id_type, 0) < self.policy.limit(id_type):
                self._links[member] = target
                customer.members.add(member)
                customer.counts[id_type] = customer.counts.get(id_type, 0) + 1
            else:
                limited.append((target, member))
        customer.first = min(customer.first, (ms, event_id))
        entries = Entries(tuple(merged), tuple(refused), tuple(limited))
        return Outcome(target, created, entries, shared=shared)

    def _create(self, prepared: PreparedRequest) -> tuple[str, bool]:
        # A re-delivered creating event finds its own customer under the
        # deterministic id even when none of its identifiers point there.
        target = self.canonical(prepared.new_id)
        if target in self._customers:
            return target, False
        ms, event_id = prepared.event_time_ms, prepared.event_id
        self._customers[prepared.new_id] = _Customer(ms, event_id, (ms, event_id))
        return prepared.new_id, True

    def _claim(self, target: str, holder: str, unlinked: tuple[str, ...], ms: int) -> None:
        """Count who presented ``holder``'s identifiers; mark the ones over their limit shared."""
        for member in unlinked:
            id_type = member_type(member)
            most = self.policy.shared_limit(id_type)
            if most is None:
                continue
            claims = self._claims.setdefault(member, set())
            claims |= {holder, target}
            if len(claims) <= most:
                continue
            self._shared[member] = len(claims)
            del self._claims[member]
            customer = self._customers[holder]
            if len(customer.members) > 1:  # never leave a customer without identifiers
                del self._links[member]
                customer.members.discard(member)
                customer.counts[id_type] -= 1
                if customer.counts[id_type] == 0:
                    del customer.counts[id_type]
                self._identifiers_changed(holder, ms)

    def _identifiers_changed(self, customer_id: str, ms: int) -> None:
        """Note that a customer's identifiers changed outside its own events (at ``ms``)."""

    def _weak_link(
        self, group: list[str], other: str, members: tuple[str, ...], owners: list[str | None]
    ) -> tuple[str, ...]:
        """Return ``("weak:<type>",)`` when only weak identifiers tie the group to ``other``.

        That is when both of them hold a stronger type.
        """
        policy = self.policy

        def strong(cid: str) -> bool:
            counts = self._customers[cid].counts
            return any(n > 0 and not policy.is_weak(t) for t, n in counts.items())

        if not (any(strong(c) for c in group) and strong(other)):
            return ()
        for side in (set(group), {other}):
            held = [member_type(m) for m, o in zip(members, owners, strict=True) if o in side]
            if held and all(policy.is_weak(t) for t in held):
                return (f"weak:{min(held, key=policy.type_key)}",)
        return ()

    def _over_limits(self, counts: dict[str, int], other: dict[str, int]) -> tuple[str, ...]:
        over = [
            id_type
            for id_type, count in other.items()
            if counts.get(id_type, 0) + count > self.policy.limit(id_type)
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
        survivor.first = min(survivor.first, merged.first)
        for alias in (*merged.merged, merged_id):
            self._aliases[alias] = survivor_id
            survivor.merged.add(alias)
        self._fold_profile(merged_id, survivor_id)
