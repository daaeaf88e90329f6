"""Service-case SLA breaches: per priority, once, out of order, at EOF, in a real dataflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource
from pydantic import ValidationError

from flows.records import Resolved
from flows.step_settings import SlaSettings
from flows.steps.sla import SlaEngine, SlaItem, sla_builder, sla_key
from flows.steps.ticks import CaseItem, Tick, case_items
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert
from tests.conftest import run_dataflow

T0 = datetime(2026, 3, 2, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
HOUR = 3_600_000


def case_event(
    case_id: str,
    action: str,
    hours: float,
    priority: str | None = None,
    customer_id: str | None = "cust-1",
) -> CaseItem:
    """``(customer_id, event)`` for a case action ``hours`` after T0."""
    attributes = {} if priority is None else {"priority": priority}
    event = InteractionEvent.model_validate(
        {
            "id": f"{case_id}-{action}-{hours}",
            "source": "/tests",
            "type": f"cx.case.{action}",
            "time": (T0 + timedelta(hours=hours)).isoformat(),
            "data": {
                "channel": "service_desk",
                "touchpoint": "desk.email",
                "case_id": case_id,
                "attributes": attributes,
            },
        }
    )
    return customer_id, event


def tick(hours: float) -> Tick:
    return Tick(T0_MS + round(hours * HOUR))


def breached(alerts: list[Alert]) -> list[str]:
    return [a.evidence["case_id"] for a in alerts]


def test_a_breach_fires_once_when_the_watermark_passes_the_due_time() -> None:
    engine = SlaEngine(SlaSettings())
    assert engine.process([case_event("C-1", "opened", 0, "P2")]) == []
    assert engine.process([tick(24)]) == []  # due at 24:00 exactly: still in time
    (alert,) = engine.process([tick(24.5)])
    assert alert.id == output_id("alert", "sla_breach", "C-1")
    assert (alert.kind, alert.severity, alert.customer_id) == ("sla_breach", "high", "cust-1")
    assert alert.time == alert.due_at == T0 + timedelta(hours=24)
    assert alert.evidence == {
        "case_id": "C-1",
        "opened_event_id": "C-1-opened-0",
        "priority": "P2",
        "opened_at": T0.isoformat(),
        "sla_hours": 24.0,
    }
    assert engine.process([tick(48)]) == []
    assert engine.process([case_event("C-1", "resolved", 30)]) == []  # after the breach: fine
    assert engine.process([case_event("C-1", "opened", 0, "P2")]) == []  # a re-delivery
    assert engine.close_all() == []
    assert engine.breaches == 1 and engine.open_cases == {}


@pytest.mark.parametrize("action", ["resolved", "closed"])
def test_no_breach_when_resolved_in_time(action: str) -> None:
    engine = SlaEngine(SlaSettings())
    engine.process([case_event("C-1", "opened", 0, "P1")])
    assert engine.process([case_event("C-1", action, 4)]) == []  # at the due time: in time
    assert engine.process([tick(100)]) == []
    assert engine.close_all() == []


@pytest.mark.parametrize(
    ("priority", "hours", "severity"),
    [
        ("P1", 4, "critical"),
        ("p2", 24, "high"),
        (" P3 ", 72, "medium"),
        (None, 72, "medium"),  # no priority: the default
        ("urgent", 72, "medium"),  # unknown: the default
    ],
)
def test_each_priority_has_its_own_sla(priority: str | None, hours: int, severity: str) -> None:
    engine = SlaEngine(SlaSettings())
    engine.process([case_event("C-1", "opened", 0, priority)])
    assert engine.process([tick(hours)]) == []
    (alert,) = engine.process([tick(hours + 0.001)])
    assert alert.due_at == T0 + timedelta(hours=hours)
    assert (alert.severity, alert.evidence["sla_hours"]) == (severity, hours)


def test_sla_table_and_priority_attribute_are_configurable() -> None:
    settings = SlaSettings(
        sla_hours={"gold": 1, "std": 8}, default_priority="STD", priority_attribute="tier"
    )
    assert settings.sla_hours == {"GOLD": 1, "STD": 8}
    engine = SlaEngine(settings)
    _, event = case_event("C-1", "opened", 0)
    tiered = event.model_copy(
        update={"data": event.data.model_copy(update={"attributes": {"tier": "Gold"}})}
    )
    engine.process([("cust-1", tiered)])
    assert breached(engine.process([tick(1.5)])) == ["C-1"]
    with pytest.raises(ValidationError, match="default_priority"):
        SlaSettings(default_priority="P9")
    with pytest.raises(ValidationError, match="positive"):
        SlaSettings(sla_hours={"P3": 0})


def test_a_resolution_after_the_due_time_breaches_even_before_any_tick() -> None:
    engine = SlaEngine(SlaSettings())
    engine.process([case_event("C-1", "opened", 0, "P1")])
    # One batch: no tick moved the watermark past 04:00 before the resolution came.
    (by_resolution,) = engine.process([case_event("C-1", "resolved", 6)])
    other = SlaEngine(SlaSettings())
    other.process([case_event("C-1", "opened", 0, "P1")])
    (by_watermark,) = other.process([tick(5)])
    assert by_resolution == by_watermark  # same bytes, whichever path finds the breach


def test_a_resolution_seen_before_its_open_event() -> None:
    engine = SlaEngine(SlaSettings())
    # in time: resolved 2 h after opening
    assert engine.process([case_event("C-1", "resolved", 2)]) == []
    assert engine.process([case_event("C-1", "opened", 0, "P1")]) == []
    # stamped before its open event (clock skew): counts as resolved at once
    assert engine.process([case_event("C-2", "closed", 0)]) == []
    assert engine.process([case_event("C-2", "opened", 1, "P1")]) == []
    # resolved 10 h after opening: a P1 breach, found when the open event arrives
    engine.process([case_event("C-3", "resolved", 10)])
    assert breached(engine.process([case_event("C-3", "opened", 0, "P1")])) == ["C-3"]
    assert engine.open_cases == {}
    assert engine.process([tick(500)]) == [] and engine.close_all() == []


def test_a_duplicate_open_keeps_the_earliest_open_time() -> None:
    engine = SlaEngine(SlaSettings())
    engine.process([case_event("C-1", "opened", 2, "P1")])
    engine.process([case_event("C-1", "opened", 1, "P1")])  # arrived late, opened earlier
    engine.process([case_event("C-1", "opened", 3, "P1")])
    assert engine.process([tick(5)]) == []
    (alert,) = engine.process([tick(5.5)])
    assert alert.due_at == T0 + timedelta(hours=5)
    assert engine.process([tick(10)]) == []  # the superseded due time raises nothing


def test_allowed_lateness_delays_the_breach() -> None:
    engine = SlaEngine(SlaSettings(allowed_lateness_seconds=3600))
    engine.process([case_event("C-1", "opened", 0, "P1")])
    assert engine.process([tick(4.5)]) == []  # watermark 03:30
    assert engine.process([case_event("C-1", "resolved", 3.9)]) == []  # late, but in time
    engine.process([case_event("C-2", "opened", 0, "P1")])
    assert breached(engine.process([tick(5.01)])) == ["C-2"]


def test_at_eof_only_cases_already_due_breach() -> None:
    engine = SlaEngine(SlaSettings(allowed_lateness_seconds=7200))
    engine.process(
        [
            case_event("C-1", "opened", 0, "P1"),  # due 04:00
            case_event("C-2", "opened", 1, "P1"),  # due 05:00: exactly the last event time
            case_event("C-3", "opened", 2, "P1"),  # due 06:00: still ahead
        ]
    )
    assert engine.process([tick(5)]) == []  # watermark 03:00 with the lateness
    assert breached(engine.close_all()) == ["C-1", "C-2"]  # lateness waived: no more input
    assert list(engine.open_cases) == ["C-3"]
    assert engine.close_all() == []


def test_open_cases_are_bounded() -> None:
    engine = SlaEngine(SlaSettings(max_open_cases=2))
    engine.process([case_event(f"C-{n}", "opened", n / 10, "P3") for n in range(5)])
    assert list(engine.open_cases) == ["C-3", "C-4"]
    assert engine.evicted == 3
    assert breached(engine.process([tick(100)])) == ["C-3", "C-4"]


def test_remembered_cases_are_forgotten_in_event_time() -> None:
    engine = SlaEngine(SlaSettings(remember_seconds=86400))
    engine.process([case_event("C-1", "opened", 0, "P1"), case_event("C-1", "resolved", 1)])
    engine.process([case_event("C-9", "resolved", 1)])  # its open event never comes
    engine.process([tick(24.5)])
    state = engine._state
    assert (len(state.finished), len(state.resolved_early)) == (1, 1)
    engine.process([tick(25.5)])
    assert (len(state.finished), len(state.resolved_early)) == (0, 0)


def test_snapshot_round_trip() -> None:
    settings = SlaSettings()
    engine = SlaEngine(settings)
    engine.process([case_event("C-1", "opened", 0, "P1"), case_event("C-2", "resolved", 0)])
    snap = engine.snapshot()
    engine.process([case_event("C-1", "resolved", 1)])  # after the snapshot
    resumed = SlaEngine.restore(settings, snap)
    assert list(resumed.open_cases) == ["C-1"]
    assert breached(resumed.process([tick(5)])) == ["C-1"]
    assert resumed.process([case_event("C-2", "opened", 0, "P1")]) == []  # remembered


def test_the_logic_runs_in_a_real_dataflow() -> None:
    def page_view(hours: float) -> InteractionEvent:
        return InteractionEvent.model_validate(
            {
                "id": f"pv-{hours}",
                "source": "/tests",
                "type": "cx.web.page.viewed",
                "time": (T0 + timedelta(hours=hours)).isoformat(),
                "data": {"channel": "web", "touchpoint": "web.home"},
            }
        )

    def resolved(item: CaseItem, customer: str) -> Resolved:
        return Resolved(customer, item[1])

    stream = [
        resolved(case_event("C-1", "opened", 0, "P1"), "cust-1"),
        resolved(case_event("C-2", "opened", 0.5, "P1"), "cust-2"),
        Resolved("cust-3", page_view(1)),
        resolved(case_event("C-2", "resolved", 2), "cust-2"),
        Resolved("cust-3", page_view(5)),  # only a tick: C-1 breaches here
        resolved(case_event("C-3", "opened", 5, "P1"), "cust-3"),
        resolved(case_event("C-4", "opened", 6, "P1"), "cust-4"),
        Resolved(None, page_view(9.5)),  # the last event: C-3 due 09:00, C-4 10:00
    ]
    out: list[Alert] = []
    flow = Dataflow("sla_test")
    events = op.input("input", flow, TestingSource(stream, 2))
    items = op.flat_map_batch("case_items", events, case_items)
    keyed = op.key_on("sla_key", items, sla_key)
    sla = op.stateful_batch("sla", keyed, sla_builder(SlaSettings(allowed_lateness_seconds=1800)))
    op.output("emit", op.key_rm("unkey", sla), TestingSink(out))
    run_dataflow(flow)
    # C-1 through a tick; C-3 at EOF (lateness waived); C-4 not yet due: silent
    assert [(a.evidence["case_id"], a.customer_id) for a in out] == [
        ("C-1", "cust-1"),
        ("C-3", "cust-3"),
    ]


def test_case_items_keep_only_case_lifecycle_events() -> None:
    _, opened = case_event("C-1", "opened", 0)
    escalated = opened.model_copy(update={"type": "cx.case.escalated"})
    no_case = opened.model_copy(update={"data": opened.data.model_copy(update={"case_id": None})})
    items: list[SlaItem] = [
        s.item for s in case_items([escalated, no_case, Resolved("cust-7", opened)])
    ]
    expected: list[Any] = [Tick(opened.epoch_ms), ("cust-7", opened)]
    assert items == expected
    assert case_items([]) == []
