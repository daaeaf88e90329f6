"""households: the score step's output into the household store, in lane order (one call).

The score step is keyed by lane and emits each lane's items in lane order
(:mod:`flows.steps.score`); this step is a ``flat_map_batch`` on that output, before
the decide step, so each of its batches holds every lane's items in lane order. Per
batch, one store call (:meth:`state.households.HouseholdStore.step`) applies, item
after item, what each event changes in the households: the merges it caused (the
merged-away customer's evidence and figures go to the survivor), the evidence it
presents (links) and its customer's figures (order value, orders, NPS answer, churn
score, cases); an erase (:class:`~flows.records.Forget`) removes the member. Each
:class:`~flows.records.Scored` goes on to decide with its customer's household as
the store left it *just after that event* (``household``): with one input lane,
what a decision or a profile sees of the household is a function of the input
alone, not of the batching, of other workers' progress or of a restore (the store
records each event's answer and gives it back when the event is re-processed). With
several lanes, the order of members' events across lanes is what the workers make
it, as for identity resolution.

Every household the batch touched is published to the compacted ``cx.households``
topic, keyed by household id, and every one that lost its members leaves it with a
tombstone. Publications of one household can come from several workers (one per
lane), so they pass one keyed gate (:func:`household_stream`) that drops a
publication older than one already sent (the store numbers them): the topic's latest
record per household is the household as the store holds it last.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.records import Forget, HouseholdOut, Scored
from flows.steps.respond import Responded
from schemas.outputs import IdentityMerge
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, action_of
from state.household_figures import MemberFigures
from state.households import HouseholdChange, HouseholdItem, HouseholdStore
from state.profile_hash import figure_text, stamp

_EPOCH = datetime.fromtimestamp(0, tz=UTC)
_CASES = {CASE_OPENED: "1", **dict.fromkeys(CASE_FINISHED, "0")}  # as state.profile_hash
ORDER_PLACED = "order.placed"

ToDecide = Scored | Forget | Responded


def member_figures(scored: Scored) -> MemberFigures:
    """Return what the event adds to its customer's household figures (as its delta).

    The same reading as the profile's (:func:`state.profile_hash.delta_for`), of only
    the figures a household sums.
    """
    event = scored.journeyed.resolved.event
    data, ms = event.data, event.epoch_ms
    action = action_of(event.type)
    case = None
    if data.case_id is not None and action in _CASES:
        case = (data.case_id, _CASES[action])
    return MemberFigures(
        stamp(ms, event.id),
        ms,
        amount_cents=round(data.amount * 100) if data.amount is not None else 0,
        order=action == ORDER_PLACED,
        nps=data.nps,
        churn=figure_text(scored.churn),
        case=case,
    )


def household_item(item: Scored | Forget) -> HouseholdItem:
    """Return the household changes of one item of the score step's output, in order."""
    if isinstance(item, Forget):
        return HouseholdItem("", None, (HouseholdChange("erase", item.customer_id),))
    resolved = item.journeyed.resolved
    customer = item.customer_id
    event = resolved.event
    link = HouseholdChange("link", customer, event.data.identifiers, "", member_figures(item))
    if not resolved.outputs:  # most events: no merge
        return HouseholdItem(event.id, customer, (link,))
    changes = [
        HouseholdChange("merge", o.merged_id, survivor_id=o.survivor_id)
        for o in resolved.outputs
        if isinstance(o, IdentityMerge) and o.merged_id != customer
    ]
    return HouseholdItem(event.id, customer, (*changes, link))


class HouseholdStep:
    """The lane-ordered household step over one :class:`HouseholdStore`."""

    def __init__(self, store: HouseholdStore) -> None:
        self.store = store

    def apply(self, batch: list[ToDecide]) -> list[ToDecide | HouseholdOut]:
        """Apply the batch; return it (scored events with their household), then publications."""
        at = [(i, item) for i, item in enumerate(batch) if isinstance(item, Scored | Forget)]
        if not at:
            return list(batch)
        result = self.store.step([household_item(item) for _, item in at])
        out: list[ToDecide | HouseholdOut] = list(batch)
        for (i, item), view in zip(at, result.contexts, strict=True):
            if isinstance(item, Scored):  # (dataclasses.replace is slower)
                out[i] = Scored(
                    item.journeyed,
                    item.churn,
                    item.churn_ready,
                    item.segment,
                    item.top_category,
                    item.lifts,
                    view,
                )
        out += [
            HouseholdOut(h.household_id, result.versions[h.household_id], h, h.last_seen or _EPOCH)
            for h in result.published
        ]
        if result.gone:  # a tombstone's time: the batch's latest event
            latest = max(_time(item) for item in batch)
            out += [HouseholdOut(hid, result.versions[hid], None, latest) for hid in result.gone]
        return out


def _time(item: ToDecide) -> datetime:
    if isinstance(item, Scored):
        return item.journeyed.resolved.event.time
    if isinstance(item, Responded):
        return item.resolved.event.time
    return _EPOCH


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


def _not_published(item: ToDecide | HouseholdOut) -> TypeGuard[ToDecide]:
    return not isinstance(item, HouseholdOut)


def household_step(
    scored: Stream[ToDecide], store: HouseholdStore | None
) -> tuple[Stream[ToDecide], Stream[HouseholdOut] | None]:
    """Wire the step: (decide's input with the households, the publications gated).

    Without a store (households off), decide's input as is and no publications.
    """
    if store is None:
        return scored, None
    stepped = op.flat_map_batch("households", scored, HouseholdStep(store).apply)
    split = op.branch("households_out", stepped, _not_published)  # one test per item
    return split.trues, household_stream(cast(Stream[HouseholdOut], split.falses))
