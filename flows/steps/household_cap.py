"""household_cap: the catalogue's ``[household]`` budget, spent in lane order after decide.

A household's daily budget is shared by its members, whose events are decided on
different keys of the decide step (keyed by customer: in a batch, Bytewax hands it
its keys in sorted order). Spent there, who got the last send of the day would
depend on the batching. So with a ``[household]`` cap, decide does not send an NBA
itself: per trigger it hands a :class:`Capped` (the NBAs it chose, the actions it
held back, the household the lane-ordered household step gave the event) to this
step, keyed by lane, which puts the triggers back into lane order (the score step's
output says which triggers, in which order: every :class:`~flows.records.Scored`)
and spends the budgets in that order, one store call per batch
(:meth:`state.households.HouseholdStore.spend`: idempotent per NBA id, so a restored
run gets its first answers). An NBA of a capped class over the budget is held back
as ``household_cap``; the others go out, and the trigger's
:class:`~flows.steps.summary.Decided` (for ``cx.decisions``) counts what was sent and
held. With one input lane the cap is a function of the input alone.

What the cap does not do: the customer's own contact history (in the decide step,
before this one) counts the NBA as sent, so its cool-down and the customer's caps
hold as if it had gone; and no lower-ranked action takes its place.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.nba.catalogue import HouseholdCap
from flows.records import Journeyed, Scored
from flows.steps.summary import Decided
from flows.timing import timed_logic
from schemas.outputs import NextBestAction
from state.households import HouseholdStore, Spend


@dataclass(frozen=True, slots=True)
class Capped:
    """What decide made of one trigger, waiting for the household budget."""

    journeyed: Journeyed  # the trigger (its lane and seq), also "done" for the summaries
    household_id: str  # "" : in no household
    day: int  # event-time day (ms // DAY_MS)
    nbas: tuple[NextBestAction, ...]
    held: tuple[tuple[str, str], ...]  # (reason, action id) decide held back

    @property
    def lane(self) -> str:
        """The trigger's input lane."""
        return self.journeyed.resolved.lane


@dataclass(frozen=True, slots=True)
class Triggers:
    """The triggers of one lane decide answers with a :class:`Capped`, in lane order."""

    lane: str
    seqs: tuple[int, ...]


CapIn = Capped | Triggers
CapOut = NextBestAction | Decided | Journeyed


def triggers(batch: Sequence[object]) -> list[CapIn]:
    """``flat_map_batch`` over decide's input from the score step: the triggers per lane."""
    lanes: dict[str, list[int]] = {}
    for item in batch:
        if isinstance(item, Scored):
            resolved = item.journeyed.resolved
            lanes.setdefault(resolved.lane, []).append(resolved.seq)
    return [Triggers(lane, tuple(seqs)) for lane, seqs in lanes.items()]


def _cap_lane(item: CapIn) -> str:
    return item.lane


@dataclass(slots=True)
class _Lane:
    expected: deque[int] = field(default_factory=deque)
    waiting: dict[int, Capped] = field(default_factory=dict)


class CapLogic(StatefulBatchLogic[CapIn, CapOut, bytes]):
    """One lane: its triggers in lane order, each NBA of a capped class against the budget."""

    def __init__(self, cap: HouseholdCap, store: HouseholdStore, lane: _Lane | None = None) -> None:
        self.cap = cap
        self.store = store
        self.lane = lane if lane is not None else _Lane()

    def on_batch(self, values: list[CapIn]) -> tuple[Iterable[CapOut], bool]:
        lane = self.lane
        for item in values:
            if isinstance(item, Triggers):
                lane.expected.extend(item.seqs)
            else:
                lane.waiting[item.journeyed.resolved.seq] = item
        ready: list[Capped] = []
        while lane.expected and lane.expected[0] in lane.waiting:
            ready.append(lane.waiting.pop(lane.expected.popleft()))
        return self._release(ready), StatefulBatchLogic.RETAIN

    def _release(self, ready: list[Capped]) -> list[CapOut]:
        asks: list[Spend] = []
        for capped in ready:
            if capped.household_id:
                asks += [
                    Spend(capped.household_id, capped.day, n.id, self.cap.max_per_day)
                    for n in capped.nbas
                    if n.action_class in self.cap.classes
                ]
        answers = iter(self.store.spend(asks) if asks else ())
        out: list[CapOut] = []
        for capped in ready:
            sent: list[NextBestAction] = []
            held = list(capped.held)
            for nba in capped.nbas:
                asked = capped.household_id and nba.action_class in self.cap.classes
                if not asked or next(answers):
                    sent.append(nba)
                else:
                    held.append(("household_cap", nba.action))
                    metrics.NBA_SUPPRESSED.labels("household_cap").inc()
            out += sent
            if sent or held:
                out.append(Decided.of(capped.journeyed.resolved, sent, held))
            out.append(capped.journeyed)  # done: the summaries release the trigger
        return out

    def snapshot(self) -> bytes:
        return pickle.dumps(self.lane, protocol=pickle.HIGHEST_PROTOCOL)


def cap_builder(cap: HouseholdCap, store: HouseholdStore) -> Callable[[bytes | None], CapLogic]:
    """Builder of the lane-keyed step (``op.stateful_batch``)."""

    def build(resume: bytes | None) -> CapLogic:
        lane = pickle.loads(resume) if resume is not None else None  # noqa: S301 (our own recovery snapshot)
        return CapLogic(cap, store, lane)

    return build


def _capped(item: object) -> Capped | None:
    return item if isinstance(item, Capped) else None


def cap_stream(
    for_decide: Stream[Any], decisions: Stream[Any], cap: HouseholdCap, store: HouseholdStore
) -> Stream[CapOut]:
    """Wire the step: decide's input and output in; NBAs sent, tallies, triggers done out."""
    merged: Stream[CapIn] = op.merge(
        "cap_in",
        op.flat_map_batch("cap_triggers", for_decide, triggers),
        op.filter_map("cap_decided", decisions, _capped),
    )
    keyed = op.key_on("cap_lane", merged, _cap_lane)
    logic = timed_logic("household_cap", cap_builder(cap, store))
    return op.key_rm("cap_out", op.stateful_batch("household_cap", keyed, logic))
