"""The identity graph of the single customer view: API, policy and shared rules.

Each identifier ("type:value") links to at most one customer. Two
implementations follow exactly the same rules:
:class:`state.memory.MemoryProfileStore` (plain dicts) and
:class:`state.redis_store.RedisProfileStore` (one Lua script call per batch,
atomic per batch). Everything both need outside the graph walk itself lives
here: preparing a request (blocking, hashing, ordering, the new customer id)
and turning a walk's :class:`Outcome` into a :class:`ResolveResult`; the policy
is :class:`state.policy.IdentityPolicy` (re-exported here).

Attribution (issue #15)
    An event belongs to the customer named by its *highest-priority* identifier
    (the first by ``IdentityPolicy.priority``; blocked and shared values never
    count). Resolving walks the customers the event's identifiers link to in
    that priority order: the first one (or, when the strongest identifier is
    new, a customer made of it) starts the event's group, and each further
    customer joins the group when the merge is allowed (no identifier type over
    its limit with the group's counts, and no link made only of weak types
    between two customers holding stronger ones), else it is *refused*. So
    customer B's order carrying crm_id B and the device of customer A goes to
    B; A keeps the device and the event reports a :class:`Conflict`
    ``(B, A)`` whose ``unlinked`` names the device. When the strongest
    identifier is new and every customer found is refused, the event creates
    the customer its strongest identifier names. The customers that joined
    are merged into one survivor, where the event lands. Identifiers nobody
    holds link to it as far as the limits allow (else a "limit reached"
    conflict). So each identifier of an event is linked to the event's customer,
    or held by a refused customer and listed in that conflict's ``unlinked``,
    or listed in ``ResolveResult.ignored`` (blocked placeholders, full types,
    shared values): none is dropped without a trace.

Survivor (issue #13 part 4)
    Of customers that merge, the survivor is the one whose earliest event is
    smallest by (event time ms, event id), then the smaller customer id; a
    customer's earliest event is the minimum over every event resolved to it
    (merges keep the minimum). It no longer depends on which event arrived
    first, nor on identifier types. Customer ids still do: a customer's id is
    ``new_customer_id`` of the event that created it, the first of its
    component to *arrive*; making it the earliest event's would mean renaming
    a customer (its id is already downstream) whenever an earlier event
    arrives late, which these stores never do.

Shared identifiers
    A value of a type listed in ``IdentityPolicy.shared_after`` (devices and
    cookies, 3 by default) that more than that many distinct customers
    presented in refused conflicts (its holder included) is *shared*: it is
    detached from its holder (unless it is the holder's last identifier) and
    never resolves an event again. An event carrying it with other
    identifiers resolves on those, and lists it in ``ignored`` and ``shared``
    (no conflict: a kiosk would raise one per visit). An event carrying only
    shared values is left anonymous (``customer_id`` None, ``shared`` naming
    them), which the flow counts like any anonymous event. So 12 people
    logging in on one kiosk are 12 customers with one visit each, and the
    kiosk's device ends attached to none of them. Until a value is shared, an
    event carrying only it resolves to its one holder.

Consent
    A request carries its event's consent changes (``ResolveRequest.consent``).
    Once the request is resolved (its reply computed), the store folds them into
    its customer's record of consent (``rconsent:<purpose>`` in the profile hash,
    :func:`state.profile_hash.record_consent`): latest by event time (then event
    id) per purpose wins, so an older change arriving later changes nothing and
    folding an event twice changes nothing. Every later request, of this batch or
    a later one, reports the customer's withdrawn purposes from it
    (``ResolveResult.opted_out``): which events' withdrawals an event sees depends
    only on the input order, not on how far the profile step (later in the flow,
    on other workers) has got. Merges pool it (latest wins), erase drops it. The
    profile step still folds the same changes into ``consent:<purpose>`` (what a
    published profile shows) and rewrites the withdrawn purposes from both: it
    only rewrites what resolve recorded, and it keeps profiles stored before
    resolve recorded consent right. A request answered from a recorded outcome
    (below) is not folded again: the call that recorded it folded it.

Re-processing (issue #13 part 3)
    With ``ProfileRules.outcome_retention_ms`` > 0 (``CX_IDENTITY__OUTCOME_RETENTION_SECONDS``,
    an hour by default) each store records, by event id, the result it gave
    (customer, created flag, merges, conflicts, withdrawn consent, shared values:
    :mod:`state.outcomes`). An event id resolved again within the retention gets
    exactly that result back without a walk, even when its customer has been
    merged away since; merges and conflicts naming an erased customer are dropped
    from it, and an event whose customer was erased is resolved afresh. The
    retention is *wall-clock* time since the record was made (the memory store's
    injectable clock, Redis's ``TIME``), not event time: a flow killed before its
    first snapshot restarts from offset 0 and may replay a 60-day backlog in
    minutes, and every event of it must get its first decision again (an event
    window, 7 days before the latest event, had forgotten the backlog's early
    events by then, so their merges went unreported and customers differed). Past
    the retention, or with 0, a re-processed event is walked again: it lands where
    its identifiers lead now (its creating event finds its customer by the
    deterministic id). The profile step keeps the same wall-clock marks of applied
    events next to its event-time window (:mod:`state.profile_hash`), for the same
    reason: the window alone counted such a backlog's early events twice.

    The memory store deletes expired records oldest first, at most
    :func:`state.outcomes.prune_budget` per call (a constant plus twice what the
    call recorded). Redis keeps them in wall-clock buckets of half the retention
    (``outcomes:<n>`` and ``marks:<n>`` hashes, each value ``"<wall ms>|..."``,
    ``state/lua/profile.lua``) and deletes a bucket whole once it can hold no
    current record, so a record outlives its retention by at most half of it; an
    expired record not yet deleted is never returned by either. A call costs one
    HMGET per bucket (three) and one HSET, where a sorted set of every record cost a
    ZADD and, once past the retention, a pruning ZRANGEBYSCORE/HDEL/ZREM per record.
    Redis memory: about 100 bytes per recorded outcome and per applied-event mark
    (hashtable entries, without the ~108-byte sorted-set entry each had), so about
    200 bytes per event processed, held for 1 to 1.5 times the retention: e.g.
    1 000 events/s with an hour's retention holds 3.6-5.4 M events, 0.7-1.1 GB.
    Lower the retention (it must still cover the longest outage to survive plus
    the snapshot interval) for high rates.

>>> policy = IdentityPolicy()
>>> policy.is_blocked("email", "Test@Test.com"), policy.is_blocked("phone", "+0000")
(True, True)
>>> policy.type_key("email") < policy.type_key("cookie_id") < policy.type_key("zz_custom")
True
>>> new_customer_id("evt-1")
'cust-7bb2bee4f6ad31608f20fbf9'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Protocol

from schemas.outputs import ProfileSnapshot
from state.hashing import Hasher
from state.outcomes import Outcome
from state.policy import (
    DEFAULT_BLOCKED_PATTERNS,
    DEFAULT_BLOCKED_VALUES,
    DEFAULT_LIMITS,
    DEFAULT_SHARED_AFTER,
    DEFAULT_WEAK_TYPES,
    IdentityPolicy,
)
from state.profile_hash import ProfileDelta

__all__ = [
    "DEFAULT_BLOCKED_PATTERNS",
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_LIMITS",
    "DEFAULT_SHARED_AFTER",
    "DEFAULT_WEAK_TYPES",
    "MAX_IDENTIFIERS",
    "Conflict",
    "ErasedReport",
    "IdentityPolicy",
    "Merge",
    "Outcome",
    "PreparedRequest",
    "ProfileStore",
    "ResolveRequest",
    "ResolveResult",
    "assemble",
    "group_members",
    "member_type",
    "new_customer_id",
    "prepare",
]

# The Lua script unpacks one request's identifiers onto its C stack (8000 slots).
MAX_IDENTIFIERS = 1000


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """One event's identifiers and consent changes, to resolve.

    The identifiers are normalised (``schemas.identifiers``), not yet hashed; the
    consent changes map purpose -> granted (None: none).

    The store folds ``consent`` into the customer's withdrawn purposes as it resolves
    the event, after its reply (see "Consent" in the module docstring).
    """

    event_id: str
    event_time_ms: int
    identifiers: dict[str, str]
    consent: Mapping[str, bool] | None = None


@dataclass(frozen=True, slots=True)
class Merge:
    """Customer ``merged_id`` folded into ``survivor_id`` (now an alias of it)."""

    survivor_id: str
    merged_id: str
    event_id: str
    reason: str
    linking_identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A link or merge a limit refused; ``identifiers`` are the ones it concerned.

    ``customer_ids[0]`` is the event's customer. ``unlinked`` are the event's
    identifiers this conflict kept from it: held by the refused customer
    ``customer_ids[1]`` (they stay with it), or the one a full type left out.
    """

    customer_ids: tuple[str, ...]
    event_id: str
    reason: str
    identifiers: tuple[str, ...]
    unlinked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolveResult:
    """Where one request landed.

    ``customer_id`` is None only when nothing was linkable (no identifier, or only
    blocked and shared ones).
    """

    customer_id: str | None
    created: bool
    merges: tuple[Merge, ...]
    conflicts: tuple[Conflict, ...]
    #: Identifiers not linked and in no conflict's customers: blocked placeholders,
    #: then members of full types (also in a "limit reached" conflict), then shared ones.
    ignored: tuple[str, ...]
    #: Consent purposes withdrawn in the customer's profile as the store holds it when
    #: the request is resolved (recorded by the requests resolved before it, this
    #: batch's included, and pooled by merges; not this request's own changes), sorted;
    #: ``opted_out_ms`` holds each withdrawal's event time, in the same order.
    opted_out: tuple[str, ...] = ()
    opted_out_ms: tuple[int, ...] = ()
    #: The event's identifiers not used because they are shared (also in ``ignored``).
    shared: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErasedReport:
    """What :meth:`ProfileStore.erase` removed (``existed`` False: nothing)."""

    customer_id: str
    existed: bool
    identifiers: tuple[str, ...]
    aliases: tuple[str, ...]


class ProfileStore(Protocol):
    """The identity graph.

    Values passed in are normalised and unhashed; values coming out (``identifiers``,
    ``Merge``, ``Conflict``, ``ignored``) are in the stored form, i.e. hashed when the
    store has a hasher.
    """

    def resolve_batch(self, requests: Sequence[ResolveRequest]) -> list[ResolveResult]:
        """Resolve requests in order, each seeing the effects of the ones before.

        A request whose event id was resolved before (recorded within
        ``ProfileRules.outcome_retention_ms`` of wall-clock time) gets the same result
        again, its ``customer_id`` included even when that customer was merged
        away since, without walking the graph; entries naming an erased customer
        are dropped, and an event whose customer was erased is resolved afresh
        (see "Re-processing" above and :mod:`state.outcomes`).
        """
        ...

    def lookup(self, id_type: str, value: str) -> str | None:
        """Return the canonical customer an identifier links to, if any."""
        ...

    def canonical(self, customer_id: str) -> str:
        """Follow merge aliases to the surviving id (an unknown id maps to itself)."""
        ...

    def identifiers(self, customer_id: str) -> dict[str, list[str]]:
        """Return the canonical customer's identifiers by type (strongest first), values sorted."""
        ...

    def customers(self) -> list[str]:
        """Every canonical customer id, sorted."""
        ...

    def erase(self, customer_id: str) -> ErasedReport:
        """Remove the canonical customer, its identifier links and the aliases to it."""
        ...

    def apply_profiles(self, deltas: Sequence[ProfileDelta]) -> list[ProfileSnapshot]:
        """Fold each event's delta into its (canonical) customer's profile, in order.

        Returns the profiles due for publication: changed, and not published for
        ``emit_interval_ms`` of event time (the batch's latest event time also
        releases earlier pending changes). A delta for an erased or unknown
        customer is dropped.

        Idempotent per event id: an event already applied to the customer (or to a
        customer merged into it) within ``idempotence_window_ms`` of event time
        before the customer's latest event, or within ``outcome_retention_ms`` of
        wall-clock time since it was applied, changes no field. It still meets the
        publication rule, so a publication lost with a crashed or retried call's
        reply goes out again (at once, or when the rate limit allows). An event
        past both is applied again, as the dedupe step lets through a duplicate
        older than its TTL. A window of 0 turns both off.
        """
        ...

    def profile(self, customer_id: str) -> ProfileSnapshot | None:
        """Return the canonical customer's profile (None: no such customer or no events yet)."""
        ...

    def flush_pending(self) -> list[ProfileSnapshot]:
        """Every profile with a change not yet published (end of input)."""
        ...

    def close(self) -> None: ...


def new_customer_id(event_id: str) -> str:
    """Return the id of a customer created by ``event_id``: the same on every replay."""
    return "cust-" + blake2b(event_id.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request ready for the graph walk.

    ``members`` are linkable ``"type:value"`` strings (stored form), strongest type
    first; ``blocked`` were filtered out.
    """

    event_id: str
    event_time_ms: int
    new_id: str
    members: tuple[str, ...]
    blocked: tuple[str, ...]
    #: the event's consent changes, ``(purpose, "1" granted / "0" withdrawn)``, sorted
    consent: tuple[tuple[str, str], ...] = ()


def prepare(request: ResolveRequest, policy: IdentityPolicy, hasher: Hasher) -> PreparedRequest:
    """Block, then hash, then order a request's identifiers.

    Blocking has to see the raw value, which is why the store (not its caller)
    hashes.

    >>> from state.hashing import PlainIdentifiers
    >>> ids = {"cookie_id": "ck-1", "email": "test@test.com", "crm_id": "C-1"}
    >>> p = prepare(ResolveRequest("evt-1", 0, ids), IdentityPolicy(), PlainIdentifiers())
    >>> p.members, p.blocked
    (('crm_id:C-1', 'cookie_id:ck-1'), ('email:test@test.com',))
    """
    if len(request.identifiers) > MAX_IDENTIFIERS:
        msg = f"event {request.event_id} has more than {MAX_IDENTIFIERS} identifiers"
        raise ValueError(msg)
    members: list[str] = []
    blocked: list[str] = []
    for id_type in sorted(request.identifiers, key=policy.type_key):
        if not id_type or ":" in id_type:
            msg = f"identifier type {id_type!r} is empty or contains ':' (normalise it first)"
            raise ValueError(msg)
        value = request.identifiers[id_type]
        target = blocked if policy.is_blocked(id_type, value) else members
        target.append(f"{id_type}:{hasher.hash(id_type, value)}")
    consent = request.consent or {}
    return PreparedRequest(
        request.event_id,
        request.event_time_ms,
        new_customer_id(request.event_id),
        tuple(members),
        tuple(blocked),
        tuple((purpose, "1" if consent[purpose] else "0") for purpose in sorted(consent)),
    )


def member_type(member: str) -> str:
    """Return the type part of ``"type:value"`` (types never contain ``:``)."""
    return member.partition(":")[0]


def _types(members: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(member_type(m) for m in members))


def _refusal(over: str, policy: IdentityPolicy) -> str:
    # A walk reports a weak-only link as "weak:<type>", a limit as the type itself.
    if over.startswith("weak:"):
        return f"only {over[5:]} links two known customers"
    return f"{over} limit {policy.limit(over)} would be exceeded"


def assemble(prepared: PreparedRequest, outcome: Outcome, policy: IdentityPolicy) -> ResolveResult:
    """Turn a walk's :class:`Outcome` into the public result (one wording for both stores)."""
    entries = outcome.entries
    event_id = prepared.event_id
    merges = tuple(
        Merge(survivor, merged_id, event_id, f"shared {_types(links)}", links)
        for survivor, merged_id, links in entries.merged
    )
    conflicts = [
        Conflict(
            (survivor, other_id),
            event_id,
            "; ".join(_refusal(t, policy) for t in over),
            links,
            unlinked,
        )
        for survivor, other_id, over, links, unlinked in entries.refused
    ]
    for survivor, member in entries.limited:
        id_type = member_type(member)
        reason = f"{id_type} limit {policy.limit(id_type)} reached"
        conflicts.append(Conflict((survivor,), event_id, reason, (member,), (member,)))
    limited = tuple(dict.fromkeys(member for _, member in entries.limited))
    return ResolveResult(
        outcome.customer_id,
        outcome.created,
        merges,
        tuple(conflicts),
        prepared.blocked + limited + outcome.shared,
        tuple(purpose for purpose, _ in outcome.withdrawn),
        tuple(ms for _, ms in outcome.withdrawn),
        outcome.shared,
    )


def group_members(members: Sequence[str], policy: IdentityPolicy) -> dict[str, list[str]]:
    """``"type:value"`` strings as ``{type: sorted values}``, strongest type first.

    >>> group_members(["email:b", "crm_id:1", "email:a"], IdentityPolicy())
    {'crm_id': ['1'], 'email': ['a', 'b']}
    """
    grouped: dict[str, list[str]] = {}
    for member in members:
        id_type, _, value = member.partition(":")
        grouped.setdefault(id_type, []).append(value)
    return {t: sorted(grouped[t]) for t in sorted(grouped, key=policy.type_key)}
