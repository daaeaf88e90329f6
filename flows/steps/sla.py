"""sla: service cases that stay open past their SLA, judged in event time.

One engine (one Bytewax key, see :mod:`flows.steps.ticks`) sees every case
lifecycle event as ``(customer_id, event)`` plus :class:`~flows.steps.ticks.Tick` items
of each lane's watermark, one at a time in the canonical order of that module, so
its clock moves with the whole stream and with event time only.

Rules
    A case opened at ``T`` with priority ``p`` (``data.attributes["priority"]``,
    case-insensitive; missing or unknown: ``default_priority``) is due at
    ``T + sla_hours[p]``. It is *in breach* when it was not resolved or closed
    by its due time. The watermark is the latest event time seen (items and
    ticks) minus ``allowed_lateness_seconds`` (0 by default); once it is past
    the due time (``watermark > due``) with no resolution known, ONE
    ``sla_breach`` alert goes out. A resolution whose own event time is after
    the due time also raises the breach, if the watermark had not yet done so,
    so the outcome does not depend on how events fall into batches. The alert
    depends on the open event alone (id ``output_id("alert", "sla_breach",
    case_id)``, ``time`` and ``due_at`` = the due time), so whichever path finds
    the breach emits identical bytes.

Out of order and duplicates
    - A resolution seen before its open event is remembered; when the open
      event arrives the case is judged at once: resolved at
      ``max(resolved, opened)`` (a resolution stamped before the open counts as
      immediate), so it breaches only if that is after the due time.
    - A second ``case.opened`` for an open case keeps the earliest open time;
      one for a case already finished (resolved or breached) is ignored, as is
      a second resolution. A case id gets at most one breach alert.
    - A resolution that arrives after the breach went out changes nothing.
    - Remembered resolutions and finished case ids are forgotten after
      ``remember_seconds`` of event time or beyond ``max_remembered_cases``.
    - Beyond ``max_open_cases`` the oldest open case is dropped without an
      alert and counted in :attr:`SlaEngine.evicted`.

End of input
    ``on_eof`` judges every open case against the latest event time seen,
    without the lateness (no more input will come): a case whose due time is
    at or before it breaches; one whose due time is still ahead stays open and
    silent, as nothing says it will not be resolved in time.
"""

from __future__ import annotations

import heapq
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from flows.step_settings import SlaSettings
from flows.steps.ticks import CaseItem, EngineLogic, LaneSet, Tick, case_action, engine_builder
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, Severity
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED

SLA_KEY = "sla"

SlaItem = CaseItem | Tick
SlaSnapshot = bytes

_SEVERITY: dict[str, Severity] = {"P1": "critical", "P2": "high"}


@dataclass(frozen=True, slots=True)
class OpenCase:
    """A case waiting for its resolution."""

    case_id: str
    customer_id: str | None
    event_id: str
    touchpoint: str
    opened_ms: int
    priority: str
    sla_hours: float

    @property
    def due_ms(self) -> int:
        return self.opened_ms + round(self.sla_hours * 3_600_000)


@dataclass(slots=True)
class _SlaState:
    """Everything the engine remembers; pickled whole as the snapshot."""

    max_ms: float = float("-inf")
    breaches: int = 0
    evicted: int = 0
    # Insertion order is open order: the front is the oldest, evicted first.
    open_cases: dict[str, OpenCase] = field(default_factory=dict)
    # (due ms, case id), lazily cleaned: an entry whose case is gone is skipped.
    due: list[tuple[int, str]] = field(default_factory=list)
    # case id -> resolution ms, for resolutions seen before their open event.
    resolved_early: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # case id -> event ms it finished at, so duplicates do not reopen it.
    finished: OrderedDict[str, int] = field(default_factory=OrderedDict)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def breach_alert(case: OpenCase) -> Alert:
    """Return the ``sla_breach`` alert of a case; a function of the open event alone."""
    due = _utc(case.due_ms)
    return Alert(
        id=output_id("alert", "sla_breach", case.case_id),
        kind="sla_breach",
        severity=_SEVERITY.get(case.priority, "medium"),
        customer_id=case.customer_id,
        touchpoint=case.touchpoint,
        time=due,
        due_at=due,
        message=(
            f"case {case.case_id} ({case.priority}) not resolved within its"
            f" {case.sla_hours:g} h SLA"
        ),
        evidence={
            "case_id": case.case_id,
            "opened_event_id": case.event_id,
            "priority": case.priority,
            "opened_at": _utc(case.opened_ms).isoformat(),
            "sla_hours": case.sla_hours,
        },
    )


class SlaEngine:
    """Open service cases and their SLA breaches, independent of Bytewax.

    Examples
    --------
    >>> def case(n, action, hour, priority="P1"):
    ...     return ("cust-1", InteractionEvent.model_validate({"id": f"{action}-{n}",
    ...         "source": "/doc", "type": f"cx.case.{action}",
    ...         "time": f"2026-03-02T{hour:02d}:00:00Z",
    ...         "data": {"channel": "service_desk", "touchpoint": "desk", "case_id": f"C-{n}",
    ...                  "attributes": {"priority": priority}}}))
    >>> engine = SlaEngine(SlaSettings())
    >>> engine.process([case(1, "opened", 8), case(2, "opened", 9)])  # P1: due in 4 h
    []
    >>> engine.process([case(2, "resolved", 10)])  # C-2 in time
    []
    >>> engine.process([Tick(ms=1772452800000)])  # 12:00, C-1's due time: not past it yet
    []
    >>> (alert,) = engine.process([Tick(ms=1772452800001)])
    >>> alert.kind, alert.evidence["case_id"], alert.severity, alert.due_at.isoformat()
    ('sla_breach', 'C-1', 'critical', '2026-03-02T12:00:00+00:00')
    """

    def __init__(self, settings: SlaSettings, state: _SlaState | None = None) -> None:
        self.settings = settings
        self._lateness = round(settings.allowed_lateness_seconds * 1000)
        self._remember = round(settings.remember_seconds * 1000)
        self._state = state if state is not None else _SlaState()

    @property
    def watermark_ms(self) -> float:
        """Latest event time seen minus the allowed lateness (-inf before any input)."""
        return self._state.max_ms - self._lateness

    @property
    def open_cases(self) -> Mapping[str, OpenCase]:
        """The cases waiting for a resolution, by case id (a read-only view)."""
        return MappingProxyType(self._state.open_cases)

    @property
    def breaches(self) -> int:
        return self._state.breaches

    @property
    def evicted(self) -> int:
        """Open cases dropped, without an alert, to stay within ``max_open_cases``."""
        return self._state.evicted

    def process(self, items: Iterable[SlaItem]) -> list[Alert]:
        """Apply a batch of case events and ticks; return the breaches it reveals."""
        state = self._state
        out: list[Alert] = []
        for item in items:
            if isinstance(item, Tick):
                state.max_ms = max(state.max_ms, item.ms)
                continue
            customer_id, event = item
            state.max_ms = max(state.max_ms, event.epoch_ms)
            action = case_action(event)
            if action == CASE_OPENED:
                out += self._open(customer_id, event)
            elif action in CASE_FINISHED:
                out += self._resolve(event)
        out += self._breaches(self.watermark_ms, inclusive=False)
        self._forget()
        return out

    def close_all(self) -> list[Alert]:
        """End of input: breach every open case due at or before the latest event time."""
        out = self._breaches(self._state.max_ms, inclusive=True)
        self._forget()
        return out

    def snapshot(self) -> SlaSnapshot:
        return pickle.dumps(self._state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, settings: SlaSettings, snap: SlaSnapshot | None) -> SlaEngine:
        # Bytewax's own recovery store is the only source of these bytes.
        return cls(settings, pickle.loads(snap) if snap is not None else None)  # noqa: S301 (our own recovery snapshot)

    def _open(self, customer_id: str | None, event: InteractionEvent) -> list[Alert]:
        state = self._state
        case_id = event.data.case_id
        if case_id is None or case_id in state.finished:
            return []
        priority = self.settings.priority_of(event)
        case = OpenCase(
            case_id,
            customer_id,
            event.id,
            event.data.touchpoint,
            event.epoch_ms,
            priority,
            self.settings.sla_hours[priority],
        )
        resolved_ms = state.resolved_early.pop(case_id, None)
        if resolved_ms is not None:
            return self._finish(case, max(resolved_ms, case.opened_ms))
        known = state.open_cases.get(case_id)
        if known is not None and known.opened_ms <= case.opened_ms:
            return []
        state.open_cases[case_id] = case
        heapq.heappush(state.due, (case.due_ms, case_id))
        if len(state.open_cases) > self.settings.max_open_cases:
            del state.open_cases[next(iter(state.open_cases))]
            state.evicted += 1
        return []

    def _resolve(self, event: InteractionEvent) -> list[Alert]:
        state = self._state
        case_id = event.data.case_id
        if case_id is None or case_id in state.finished:
            return []
        case = state.open_cases.pop(case_id, None)
        if case is None:
            state.resolved_early[case_id] = event.epoch_ms
            return []
        return self._finish(case, max(event.epoch_ms, case.opened_ms))

    def _finish(self, case: OpenCase, resolved_ms: int) -> list[Alert]:
        self._state.finished[case.case_id] = resolved_ms
        if resolved_ms <= case.due_ms:
            return []
        self._state.breaches += 1
        return [breach_alert(case)]

    def _breaches(self, watermark: float, inclusive: bool) -> list[Alert]:
        state = self._state
        out: list[Alert] = []
        while state.due and (
            state.due[0][0] <= watermark if inclusive else state.due[0][0] < watermark
        ):
            due_ms, case_id = heapq.heappop(state.due)
            case = state.open_cases.get(case_id)
            if case is None or case.due_ms != due_ms:
                continue  # resolved, evicted or superseded by an earlier open
            del state.open_cases[case_id]
            state.finished[case_id] = due_ms
            state.breaches += 1
            out.append(breach_alert(case))
        return out

    def _forget(self) -> None:
        state = self._state
        horizon = state.max_ms - self._remember
        limit = self.settings.max_remembered_cases
        for memory in (state.resolved_early, state.finished):
            # Roughly in event-time order, so the oldest sit at the front.
            while memory and (len(memory) > limit or next(iter(memory.values())) < horizon):
                memory.popitem(last=False)
        if len(state.due) > 2 * len(state.open_cases) + 1024:
            # Resolved cases leave stale heap entries behind; rebuild now and then.
            state.due = [(c.due_ms, c.case_id) for c in state.open_cases.values()]
            heapq.heapify(state.due)


def sla_key(_: object) -> str:
    """Key function: every case event and tick goes to the one SLA engine."""
    return SLA_KEY


def sla_builder(
    settings: SlaSettings,
    lanes: LaneSet | None = None,
) -> Callable[[bytes | None], EngineLogic[SlaItem, Alert]]:
    """Return the ``op.stateful_batch`` builder of the SLA step (see :func:`engine_builder`)."""
    return engine_builder(lambda snap: SlaEngine.restore(settings, snap), lanes)
