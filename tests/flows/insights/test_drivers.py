from __future__ import annotations

import math
from typing import Any

from flows.insights.drivers import JOURNEY_DRIVERS, MAX_CONTACTS, DriverMemory, observe
from flows.insights.settings import InsightsSettings
from online_models.features import CustomerFeatures
from schemas.envelope import InteractionEvent

CONF = InsightsSettings()


def event(n: int, when: str, etype: str, **data: Any) -> InteractionEvent:
    payload = {"channel": "web", "touchpoint": "web.account", **data}
    return InteractionEvent.model_validate(
        {"id": f"e{n}", "source": "/t", "type": etype, "time": when, "data": payload}
    )


def feed(events: list[InteractionEvent]) -> tuple[DriverMemory, CustomerFeatures]:
    memory, features = DriverMemory(), CustomerFeatures()
    for e in events:
        assert observe(memory, e, None, features, CONF) is None
        features.update(e, e.data.sentiment, None)
    return memory, features


def values(
    memory: DriverMemory,
    features: CustomerFeatures,
    answer: InteractionEvent,
    stage: str | None = None,
) -> dict[str, float]:
    drivers = observe(memory, answer, stage, features, CONF)
    assert drivers is not None
    return dict(zip(JOURNEY_DRIVERS, drivers.values, strict=True))


def test_an_open_case_past_its_sla_and_its_age() -> None:
    opened = event(
        1, "2026-03-02T00:00:00Z", "cx.case.opened", case_id="C1", attributes={"priority": "P1"}
    )
    memory, features = feed([opened])
    answer = event(2, "2026-03-02T10:00:00Z", "cx.survey.nps", nps=3, sentiment=0.5)
    v = values(memory, features, answer, "service")
    assert v["open_case"] == 1.0 and v["sla_breached"] == 1.0  # P1: 4 h, open 10 h
    assert round(v["case_age_hours"], 6) == round(math.log1p(10.0), 6)
    assert v["service_stage"] == 1.0
    assert v["last_sentiment"] == 0.0  # the answer's own sentiment is not a driver


def test_a_breach_counts_for_sla_days_after_the_case_closed() -> None:
    opened = event(
        1, "2026-03-02T00:00:00Z", "cx.case.opened", case_id="C1", attributes={"priority": "P1"}
    )
    closed = event(2, "2026-03-02T08:00:00Z", "cx.case.resolved", case_id="C1")
    memory, features = feed([opened, closed])
    soon = values(memory, features, event(3, "2026-03-05T00:00:00Z", "cx.survey.nps", nps=8))
    late = values(memory, features, event(4, "2026-03-12T00:00:00Z", "cx.survey.nps", nps=8))
    assert soon["open_case"] == 0.0 and soon["sla_breached"] == 1.0
    assert late["sla_breached"] == 0.0  # breached at 04:00 on the 2nd, more than 7 days before


def test_contacts_of_the_last_seven_days_and_a_bounded_memory() -> None:
    chats = [
        event(
            i, f"2026-03-{2 + i // 40:02d}T{i % 24:02d}:00:00Z", "cx.chat.message", channel="chat"
        )
        for i in range(100)
    ]
    memory, features = feed(chats)
    assert len(memory.contacts) <= 2 * MAX_CONTACTS
    v = values(
        memory,
        features,
        event(
            200,
            "2026-03-10T00:00:00Z",
            "cx.survey.nps",
            nps=9,
            attributes={"surveyed_channel": "chat"},
        ),
    )
    recent = [c for c in chats if c.epoch_ms >= event(0, "2026-03-03T00:00:00Z", "x.y").epoch_ms]
    assert len(recent) == 60 and v["contacts_7d"] == 60.0
    assert v["assisted"] == 1.0
    assert v["ltv_band"] == 0.0


def test_no_settings_no_vector() -> None:
    answer = event(1, "2026-03-02T00:00:00Z", "cx.survey.nps", nps=3)
    assert observe(DriverMemory(), answer, None, CustomerFeatures(), None) is None
