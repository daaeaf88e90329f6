"""ticks: event-time progress for the single-key engines (nps, sla).

Bytewax's event-clock watermark is per key, so a quiet touchpoint's windows
would never close. The NPS and SLA engines therefore each run as ONE keyed
state that sees every relevant item plus one cheap :class:`Tick` per input
batch carrying the batch's latest event time. Survey responses and
service-case events are a small share of traffic, so the single key stays
light while the ticks keep its clock moving with the whole stream.

``flat_map_batch`` runs on every worker, so with several workers each sends
its own ticks; the engines take the maximum, so that is harmless.

The selectors accept plain events or :class:`~flows.resolve.Resolved` items
(the flow's stream after identity resolution), whichever the flow has at hand.

Examples
--------
>>> def event(n, type_="cx.web.page.viewed", **data):
...     payload = {"channel": "web", "touchpoint": "web.checkout", **data}
...     return InteractionEvent.model_validate({"id": f"e{n}", "source": "/doc", "type": type_,
...         "time": f"2026-03-02T10:0{n}:00Z", "data": payload})
>>> batch = [event(1, nps=9), event(3), event(2, "cx.case.opened", case_id="C-1")]
>>> [getattr(i, "id", i) for i in survey_items(batch)]
['e1', Tick(ms=1772445780000)]
>>> (customer_id, opened), tick = case_items(batch)
>>> customer_id, opened.id, tick
(None, 'e2', Tick(ms=1772445780000))
>>> [(c, e.id) for c, e in case_items([Resolved("cust-1", batch[2])])[:1]]
[('cust-1', 'e2')]
>>> case_action(event(4, "cx.service_desk.Case.Resolved", case_id="C-1"))
'case.resolved'
>>> case_action(event(5, "cx.case.escalated", case_id="C-1")) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from bytewax.operators import StatefulBatchLogic

from flows.resolve import Resolved
from schemas.envelope import InteractionEvent
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, action_of

CaseItem = tuple[str | None, InteractionEvent]
"""A service-case event with the customer id it resolved to (None: anonymous)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The latest event time of one input batch, in ms since the Unix epoch."""

    ms: int


ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


class TickedEngine(Protocol[ItemT, OutT]):
    """An engine fed items and ticks under one key (NPS windows, case SLAs)."""

    def process(self, items: list[ItemT]) -> list[OutT]: ...
    def close_all(self) -> list[OutT]: ...
    def snapshot(self) -> bytes: ...


class EngineLogic(StatefulBatchLogic[ItemT, OutT, bytes], Generic[ItemT, OutT]):
    """The single-key Bytewax step around a :class:`TickedEngine`: items in, outputs
    out, everything still open closed at end of input, the engine's own snapshot."""

    def __init__(self, engine: TickedEngine[ItemT, OutT]) -> None:
        self.engine = engine

    def on_batch(self, values: list[ItemT]) -> tuple[Iterable[OutT], bool]:
        return self.engine.process(values), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[OutT], bool]:
        return self.engine.close_all(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return self.engine.snapshot()


def _parts(item: InteractionEvent | Resolved) -> tuple[str | None, InteractionEvent]:
    if isinstance(item, InteractionEvent):
        return None, item
    return item.customer_id, item.event


def batch_tick(batch: Sequence[InteractionEvent | Resolved]) -> Tick | None:
    """One tick for the batch's latest event time; None for an empty batch."""
    if not batch:
        return None
    return Tick(max(_parts(item)[1].epoch_ms for item in batch))


def is_survey_response(event: InteractionEvent) -> bool:
    """True for an event carrying an NPS or a CSAT score."""
    return event.data.nps is not None or event.data.csat is not None


def case_action(event: InteractionEvent) -> str | None:
    """The case lifecycle action of an event, or None when it is not one.

    The action is the last two dot-separated parts of ``type``, so any channel
    prefix works (``cx.case.opened``, ``cx.service_desk.case.resolved``). An
    event without a ``case_id`` has no case action.
    """
    if event.data.case_id is None:
        return None
    action = action_of(event.type.lower())
    return action if action == CASE_OPENED or action in CASE_FINISHED else None


def survey_items(
    batch: Sequence[InteractionEvent | Resolved],
) -> list[InteractionEvent | Tick]:
    """``flat_map_batch`` step: the batch's survey responses, then one tick."""
    out: list[InteractionEvent | Tick] = []
    for item in batch:
        event = _parts(item)[1]
        if is_survey_response(event):
            out.append(event)
    tick = batch_tick(batch)
    if tick is not None:
        out.append(tick)
    return out


def case_items(batch: Sequence[Resolved | InteractionEvent]) -> list[CaseItem | Tick]:
    """``flat_map_batch`` step: ``(customer_id, event)`` of case lifecycle events, then one tick."""
    out: list[CaseItem | Tick] = []
    for item in batch:
        customer_id, event = _parts(item)
        if case_action(event) is not None:
            out.append((customer_id, event))
    tick = batch_tick(batch)
    if tick is not None:
        out.append(tick)
    return out
