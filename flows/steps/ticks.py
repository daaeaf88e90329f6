"""ticks: event-time progress for the single-key engines (nps, sla), in a canonical order.

Bytewax's event-clock watermark is per key, so a quiet touchpoint's windows
would never close. The NPS and SLA engines therefore each run as ONE keyed
state that sees every relevant item plus cheap :class:`Tick` items carrying the
latest event time read on a lane (:mod:`flows.lanes`). Survey responses and
service-case events are a small share of traffic, so the single key stays
light while the ticks keep its clock moving with the whole stream.

What the engines decide depends on event time only, never on batching or on
how workers interleave:

* per lane, :func:`survey_items` and :func:`case_items` put a tick with the
  lane's watermark *before* each item (when it moved since the last one) and
  one at the end of the batch, so the engine's clock stands where it would
  stand were every event a batch of its own;
* :class:`LaneMerge` merges the lanes into one canonical order, by (stamp,
  lane, order on the lane), releasing an item only once every other lane has
  moved past its stamp (or ended), and the engine takes the items one at a
  time. The merge waits for every lane it was told of (``lanes``) and every
  lane it has seen; in a live, tailing run a lane silent for ``idle_seconds``
  of wall time stops holding the others back (the only wall-clock rule: a
  replay or a ``--no-tail`` run waits for every lane to end).

The selectors accept plain events or :class:`~flows.records.Resolved` items
(the flow's stream after identity resolution), whichever the flow has at hand.

Examples
--------
>>> def event(n, type_="cx.web.page.viewed", **data):
...     payload = {"channel": "web", "touchpoint": "web.checkout", **data}
...     return InteractionEvent.model_validate({"id": f"e{n}", "source": "/doc", "type": type_,
...         "time": f"2026-03-02T10:0{n}:00Z", "data": payload})
>>> batch = [event(1, nps=9), event(3), event(2, "cx.case.opened", case_id="C-1")]
>>> [getattr(i.item, "id", i.item) for i in survey_items(batch)]
['e1', Tick(ms=1772445780000)]
>>> tick, opened = case_items(batch)  # e3 moved the clock on before e2 came
>>> tick.item, opened.item[0], opened.item[1].id, opened.stamp == tick.stamp
(Tick(ms=1772445780000), None, 'e2', True)
>>> [(c, e.id) for c, e in (s.item for s in case_items([Resolved("cust-1", batch[2])])[:1])]
[('cust-1', 'e2')]
>>> case_action(event(4, "cx.service_desk.Case.Resolved", case_id="C-1"))
'case.resolved'
>>> case_action(event(5, "cx.case.escalated", case_id="C-1")) is None
True
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from bytewax.operators import StatefulBatchLogic

from flows.lanes import NO_LANE
from flows.records import Resolved
from schemas.envelope import InteractionEvent
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, action_of

CaseItem = tuple[str | None, InteractionEvent]
"""A service-case event with the customer id it resolved to (None: anonymous)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The latest event time read on a lane, in ms since the Unix epoch."""

    ms: int


ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


class TickedEngine(Protocol[ItemT, OutT]):
    """An engine fed items and ticks under one key (NPS windows, case SLAs)."""

    def process(self, items: list[ItemT]) -> list[OutT]: ...
    def close_all(self) -> list[OutT]: ...
    def snapshot(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Stamped(Generic[ItemT]):
    """An engine item with its lane and its stamp: the lane's watermark after it."""

    lane: str
    stamp: int
    item: ItemT


@dataclass(frozen=True)
class LaneSet:
    """The lanes an engine waits for, and how long a silent lane may hold the others back.

    The wait is for a live run (None: until it ends).
    """

    names: frozenset[str] = frozenset()
    idle_seconds: float | None = None


@dataclass
class LaneMerge(Generic[ItemT]):
    """Merge per-lane item streams into one order that only the input decides.

    >>> merge = LaneMerge(LaneSet(frozenset({"a", "b"})))
    >>> merge.push([Stamped("a", 5, "a5"), Stamped("a", 9, "a9")])
    []
    >>> merge.push([Stamped("b", 7, "b7")])  # b has passed 5; its 7 comes before a's 9
    ['a5', 'b7']
    >>> merge.push([Stamped("b", 9, "b9")]), merge.drain()  # a ties at 9 and sorts first
    (['a9'], ['b9'])
    """

    lanes: LaneSet = field(default_factory=LaneSet)
    clock: Callable[[], float] = time.monotonic
    queues: dict[str, deque[Stamped[ItemT]]] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)  # latest stamp per lane
    heard: dict[str, float] = field(default_factory=dict)  # wall clock of its latest item

    def push(self, items: Iterable[Stamped[ItemT]]) -> list[ItemT]:
        """Take in items (each lane's in its order); return those whose turn has come."""
        now = self.clock()
        for item in items:
            self.queues.setdefault(item.lane, deque()).append(item)
            self.reached[item.lane] = max(self.reached.get(item.lane, item.stamp), item.stamp)
            self.heard[item.lane] = now
        return self._release(final=False)

    def drain(self) -> list[ItemT]:
        """End of input: every lane has ended, so everything held goes, in order."""
        return self._release(final=True)

    def _release(self, final: bool) -> list[ItemT]:
        out: list[ItemT] = []
        waiting = [] if final else self._waiting_for()
        while True:
            heads = [(q[0].stamp, lane) for lane, q in self.queues.items() if q]
            if not heads:
                return out
            stamp, lane = min(heads)
            if any(self._may_precede(other, stamp, lane) for other in waiting if other != lane):
                return out
            out.append(self.queues[lane].popleft().item)

    def _may_precede(self, other: str, stamp: int, lane: str) -> bool:
        """Whether a lane with nothing held may still send an item due before (stamp, lane)."""
        if self.queues.get(other):
            return False  # its head is later: the minimum was taken
        reached = self.reached.get(other)
        return reached is None or (reached, other) < (stamp, lane)

    def _waiting_for(self) -> list[str]:
        lanes = self.lanes.names | self.queues.keys()
        idle = self.lanes.idle_seconds
        if idle is None:
            return sorted(lanes)
        now = self.clock()
        # a lane never heard from counts from the merge's start
        start = min(self.heard.values(), default=now)
        return sorted(lane for lane in lanes if now - self.heard.get(lane, start) < idle)

    def __getstate__(self) -> dict[str, object]:
        """Return the attributes to pickle, without the clock and when each lane was heard."""
        state = self.__dict__.copy()
        del state["clock"]  # wall-clock bookkeeping belongs to the process
        state["heard"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore the attributes, with this process's monotonic clock."""
        self.__dict__.update(state)
        self.clock = time.monotonic


class EngineLogic(StatefulBatchLogic[Stamped[ItemT], OutT, bytes], Generic[ItemT, OutT]):
    """The single-key Bytewax step around a :class:`TickedEngine`.

    Stamped items come in, are merged into the canonical order (:class:`LaneMerge`)
    and are fed to the engine one at a time; everything still open is closed at end
    of input.
    """

    def __init__(self, engine: TickedEngine[ItemT, OutT], merge: LaneMerge[ItemT]) -> None:
        self.engine = engine
        self.merge = merge

    def on_batch(self, values: list[Stamped[ItemT]]) -> tuple[Iterable[OutT], bool]:
        return self._feed(self.merge.push(values)), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[OutT], bool]:
        out = self._feed(self.merge.drain())
        return out + self.engine.close_all(), StatefulBatchLogic.RETAIN

    def _feed(self, items: list[ItemT]) -> list[OutT]:
        out: list[OutT] = []
        for item in items:
            out += self.engine.process([item])
        return out

    def snapshot(self) -> bytes:
        return pickle.dumps((self.engine.snapshot(), self.merge), pickle.HIGHEST_PROTOCOL)


def engine_builder(
    restore_engine: Callable[[bytes | None], TickedEngine[ItemT, OutT]],
    lanes: LaneSet | None = None,
) -> Callable[[bytes | None], EngineLogic[ItemT, OutT]]:
    """Return the ``op.stateful_batch`` builder of a single-key engine step.

    ``restore_engine`` makes the engine anew (None) or from its own snapshot;
    ``lanes`` are the input lanes to wait for (see :class:`LaneMerge`). The builder's
    ``resume`` is the step's snapshot from recovery.
    """
    waited = lanes or LaneSet()

    def build(resume: bytes | None) -> EngineLogic[ItemT, OutT]:
        if resume is None:
            return EngineLogic(restore_engine(None), LaneMerge(waited))
        engine_snap, merge = pickle.loads(resume)  # noqa: S301 (our own recovery snapshot)
        merge.lanes = waited
        return EngineLogic(restore_engine(engine_snap), merge)

    return build


def _parts(item: InteractionEvent | Resolved) -> tuple[str | None, InteractionEvent]:
    if isinstance(item, InteractionEvent):
        return None, item
    return item.customer_id, item.event


def is_survey_response(event: InteractionEvent) -> bool:
    """Tell whether an event carries an NPS or a CSAT score."""
    return event.data.nps is not None or event.data.csat is not None


def case_action(event: InteractionEvent) -> str | None:
    """Return the case lifecycle action of an event, or None when it is not one.

    The action is the last two dot-separated parts of ``type``, so any channel
    prefix works (``cx.case.opened``, ``cx.service_desk.case.resolved``). An
    event without a ``case_id`` has no case action.
    """
    if event.data.case_id is None:
        return None
    action = action_of(event.type.lower())
    return action if action == CASE_OPENED or action in CASE_FINISHED else None


T = TypeVar("T")


def _ticked(
    batch: Sequence[InteractionEvent | Resolved],
    pick: Callable[[InteractionEvent | Resolved], T | None],
) -> list[Stamped[T | Tick]]:
    """Return the picked items of each lane, with the ticks between them.

    Each item comes after a tick of its lane's watermark before it (if the watermark
    moved since the last stamp sent), and one tick comes at the end of the batch.
    """
    out: list[Stamped[T | Tick]] = []
    sent: dict[str, int] = {}  # the latest stamp sent per lane
    before: dict[str, int] = {}  # the lane's watermark before the current item
    for item in batch:  # _stamps inlined: every event of the flow passes here, twice
        if isinstance(item, Resolved):
            lane, ms, wm = item.lane, item.event.epoch_ms, item.wm_ms
            stamp = wm if wm > ms else ms
        else:
            lane, stamp = NO_LANE, item.epoch_ms
        mark = before.get(lane)
        if mark is not None and mark > stamp:
            stamp = mark
        picked = pick(item)
        if picked is not None:
            if mark is not None and mark > sent.get(lane, mark - 1):
                out.append(Stamped(lane, mark, Tick(mark)))
            out.append(Stamped(lane, stamp, picked))
            sent[lane] = stamp
        before[lane] = stamp
    for lane, mark in before.items():
        if mark > sent.get(lane, mark - 1):
            out.append(Stamped(lane, mark, Tick(mark)))
    return out


def _survey(item: InteractionEvent | Resolved) -> InteractionEvent | None:
    event = _parts(item)[1]
    return event if is_survey_response(event) else None


def _case(item: InteractionEvent | Resolved) -> CaseItem | None:
    customer_id, event = _parts(item)
    return (customer_id, event) if case_action(event) is not None else None


def survey_items(
    batch: Sequence[InteractionEvent | Resolved],
) -> list[Stamped[InteractionEvent | Tick]]:
    """``flat_map_batch`` step: the batch's survey responses with their ticks."""
    return _ticked(batch, _survey)


def case_items(batch: Sequence[Resolved | InteractionEvent]) -> list[Stamped[CaseItem | Tick]]:
    """``flat_map_batch`` step: ``(customer_id, event)`` of case lifecycle events, with ticks."""
    return _ticked(batch, _case)
