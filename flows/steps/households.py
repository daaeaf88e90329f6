"""households: each batch of the profile step into the household store (one call).

After the batch's profiles are folded in, its events link their customers to the
household evidence they carry, and its profile tombstones merge or erase members
(:mod:`state.households`). Every household the batch touched is published to the
compacted ``cx.households`` topic, keyed by household id, and every one that lost
its members leaves it with a tombstone.

Publications of one household can come from several workers (its members' events
are keyed by customer). So they pass one keyed gate (:func:`household_stream`) that
drops a publication older than one already sent (the store numbers them), and the
topic's latest record per household is the household as the store holds it last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.records import Forget, HouseholdOut, Journeyed, Scored, Tombstone
from flows.steps.respond import Responded
from state.households import HouseholdChange, HouseholdStore

_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def household_changes(batch: Sequence[Journeyed | Tombstone]) -> list[HouseholdChange]:
    """Return the household changes of a profile batch, in its order."""
    changes = []
    for item in batch:
        if isinstance(item, Tombstone):
            if item.survivor_id is None:
                changes.append(HouseholdChange("erase", item.customer_id))
            else:
                changes.append(
                    HouseholdChange("merge", item.customer_id, survivor_id=item.survivor_id)
                )
        elif item.resolved.customer_id is not None:
            event = item.resolved.event
            changes.append(
                HouseholdChange("link", item.resolved.customer_id, event.data.identifiers)
            )
    return changes


def household_outputs(
    store: HouseholdStore, batch: Sequence[Journeyed | Tombstone]
) -> list[HouseholdOut]:
    """Apply a profile batch to the households; return what to publish."""
    changes = household_changes(batch)
    if not changes:
        return []
    result = store.apply(changes)
    if not result.published and not result.gone:
        return []
    out = [
        HouseholdOut(h.household_id, result.versions[h.household_id], h, h.last_seen or _EPOCH)
        for h in result.published
    ]
    if result.gone:  # a tombstone's time: the batch's latest event
        latest = max(_time(item) for item in batch)
        out += [HouseholdOut(hid, result.versions[hid], None, latest) for hid in result.gone]
    return out


def _time(item: Journeyed | Tombstone) -> datetime:
    return item.time if isinstance(item, Tombstone) else item.resolved.event.time


def _newer(last: int | None, out: HouseholdOut) -> tuple[int, HouseholdOut | None]:
    if last is not None and out.version <= last:
        return last, None
    return out.version, out


def _household_key(out: HouseholdOut) -> str:
    return out.household_id


def _some(item: tuple[str, HouseholdOut | None]) -> HouseholdOut | None:
    return item[1]


def household_stream(outs: Stream[HouseholdOut]) -> Stream[HouseholdOut]:
    """Pass each household's publications in the order the store made them (keyed gate)."""
    keyed = op.key_on("by_household", outs, _household_key)
    return op.filter_map(
        "households_in_order", op.stateful_map("household_gate", keyed, _newer), _some
    )


ToDecide = Scored | Forget | Responded


class HouseholdContext:
    """Each scored event with its customer's household: one store read per batch."""

    def __init__(self, store: HouseholdStore) -> None:
        self.store = store

    def attach(self, batch: list[ToDecide]) -> list[ToDecide]:
        """Return the batch, each scored event with the household its customer is in now."""
        customers = sorted({item.customer_id for item in batch if isinstance(item, Scored)})
        if not customers:
            return batch
        found = self.store.apply((), customers).excerpts
        return [
            replace(item, household=found.get(item.customer_id))
            if isinstance(item, Scored) and found.get(item.customer_id) is not None
            else item
            for item in batch
        ]


def household_context(scored: Stream[ToDecide], store: HouseholdStore | None) -> Stream[ToDecide]:
    """Return the decide step's input with the households read (as is without a store)."""
    if store is None:
        return scored
    return op.flat_map_batch("household_context", scored, HouseholdContext(store).attach)
