"""resolve: identifiers -> customer_id, against the profile store (one call per batch).

Each batch of events becomes one ``resolve_batch`` call. Merges go out as
:class:`IdentityMerge` events, refused merges and full identifier types as
``identity_conflict`` alerts. An erase request (type ``cx.privacy.erase`` by
default, on the events or the privacy topic) erases the customer its
identifiers resolve to, in order with the events around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from flows import metrics
from flows.lanes import NO_LANE, Tracked
from flows.records import IdentityOutput, Resolved
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, IdentityErasure, IdentityMerge
from state.household_rules import identity_identifiers
from state.store import Conflict, Merge, ProfileStore, ResolveRequest

ERASE_TYPE = "cx.privacy.erase"
CONFLICT_DUE = timedelta(hours=24)


def _merge_event(merge: Merge, event: InteractionEvent) -> IdentityMerge:
    return IdentityMerge(
        id=output_id("identity", merge.event_id, merge.merged_id, merge.survivor_id),
        survivor_id=merge.survivor_id,
        merged_id=merge.merged_id,
        event_id=merge.event_id,
        reason=merge.reason,
        time=event.time,
        linking_identifiers=list(merge.linking_identifiers),
    )


def _conflict_alert(conflict: Conflict, event: InteractionEvent) -> Alert:
    return Alert(
        id=output_id("alert", "identity_conflict", conflict.event_id, *conflict.identifiers),
        kind="identity_conflict",
        severity="medium",
        customer_id=conflict.customer_ids[0],
        time=event.time,
        due_at=event.time + CONFLICT_DUE,
        message=f"identity not linked: {conflict.reason}",
        evidence={
            "event_ids": [conflict.event_id],
            "customer_ids": list(conflict.customer_ids),
            "identifiers": list(conflict.identifiers),
            # the event's identifiers kept from its customer (customer_ids[0]): held by
            # the refused customer customer_ids[1], or left out by a full type
            "unlinked": list(conflict.unlinked),
            "reason": conflict.reason,
        },
    )


class StoreResolver:
    """The flow's resolve step over one :class:`ProfileStore`."""

    def __init__(self, store: ProfileStore, erase_type: str = ERASE_TYPE) -> None:
        self.store = store
        self.erase_type = erase_type

    def resolve_batch(self, items: Sequence[Tracked | InteractionEvent]) -> list[Resolved]:
        """Resolve a batch in its order (events, or the dedupe step's tracked events)."""
        out: list[Resolved] = []
        segment: list[Tracked] = []
        for item in items:
            tracked = item if isinstance(item, Tracked) else Tracked(NO_LANE, -1, 0, item)
            if tracked.event.type == self.erase_type:
                out += self._resolve(segment)
                segment = []
                out.append(self._erase(tracked))
            else:
                segment.append(tracked)
        out += self._resolve(segment)
        return out

    def _resolve(self, items: Sequence[Tracked]) -> list[Resolved]:
        if not items:
            return []
        # household-only identifiers (a postal address) are no identity evidence
        requests = [
            ResolveRequest(
                t.event.id,
                t.event.epoch_ms,
                identity_identifiers(t.event.data.identifiers),
                t.event.data.consent,
            )
            for t in items
        ]
        resolved = []
        # counted per batch: a metric update per event cost more than its resolution
        anonymous = created = known = merges = conflicts = 0
        for tracked, result in zip(items, self.store.resolve_batch(requests), strict=True):
            event = tracked.event
            outputs: tuple[IdentityOutput, ...] = ()
            if result.merges or result.conflicts:
                outputs = (
                    *(_merge_event(m, event) for m in result.merges),
                    *(_conflict_alert(c, event) for c in result.conflicts),
                )
                merges += len(result.merges)
                conflicts += len(result.conflicts)
            if result.customer_id is None:
                anonymous += 1
            elif result.created:
                created += 1
            else:
                known += 1
            resolved.append(
                Resolved(
                    result.customer_id,
                    event,
                    outputs,
                    result.opted_out,
                    result.opted_out_ms,
                    tracked.lane,
                    tracked.seq,
                    tracked.wm_ms,
                    result.created,
                )
            )
        for counter, n in (
            (metrics.ANONYMOUS, anonymous),
            (metrics.RESOLUTIONS.labels("created"), created),
            (metrics.RESOLUTIONS.labels("known"), known),
            (metrics.MERGES, merges),
            (metrics.IDENTITY_CONFLICTS, conflicts),
        ):
            if n:
                counter.inc(n)
        return resolved

    def _erase(self, tracked: Tracked) -> Resolved:
        event = tracked.event
        erasures: list[IdentityOutput] = []
        seen: set[str] = set()
        for id_type, value in event.data.identifiers.items():
            customer_id = self.store.lookup(id_type, value)
            if customer_id is None or customer_id in seen:
                continue
            seen.add(customer_id)
            report = self.store.erase(customer_id)
            metrics.ERASURES.inc()
            erasures.append(
                IdentityErasure(
                    id=output_id("erasure", event.id, report.customer_id),
                    customer_id=report.customer_id,
                    event_id=event.id,
                    time=event.time,
                    existed=report.existed,
                    identifiers_removed=len(report.identifiers),
                    aliases_removed=len(report.aliases),
                )
            )
        return Resolved(
            None, event, tuple(erasures), lane=tracked.lane, seq=tracked.seq, wm_ms=tracked.wm_ms
        )


def identity_outputs(resolved: Resolved) -> tuple[IdentityOutput, ...]:
    """Return the identity outputs (merges, erasures, identity alerts) of a resolved event."""
    return resolved.outputs


def erased_customers(resolved: Resolved) -> list[Resolved]:
    """Return the erase request once for each customer it erased, addressed to them.

    So the per-customer step forgets their journey and model features too.
    """
    return [
        Resolved(out.customer_id, resolved.event, lane=resolved.lane, wm_ms=resolved.wm_ms)
        for out in resolved.outputs
        if isinstance(out, IdentityErasure)
    ]
