from __future__ import annotations

import random

from schemas.envelope import InteractionEvent
from state.profile import CustomerProfile
from tests.conftest import make_event


def _events() -> list[InteractionEvent]:
    raw = [
        make_event(1, identifiers={"cookie_id": "ck"}),
        make_event(2, channel="store", touchpoint="store.x", amount=10.0, nps=4),
        {**make_event(3, case_id="k1"), "type": "cx.chat.case.opened"},
        {**make_event(4, case_id="k1"), "type": "cx.chat.case.resolved"},
        make_event(5, consent={"email": True}, sentiment=-0.4),
        make_event(6, consent={"email": False}, nps=9, csat=4),
        {**make_event(7, amount=25.5), "type": "cx.order.placed"},
    ]
    return [InteractionEvent.model_validate(e) for e in raw]


def _profile(events: list[InteractionEvent]) -> CustomerProfile:
    profile = CustomerProfile("c1", recent_limit=3)
    for event in events:
        profile.apply(event)
    return profile


def test_fields() -> None:
    snap = _profile(_events()).snapshot()
    assert snap.event_count == 7
    assert snap.lifetime_value == 35.5
    assert snap.orders == 1
    assert snap.open_cases == []
    assert (snap.last_nps, snap.last_csat, snap.sentiment) == (9, 4, -0.4)
    assert snap.consent == {"email": False}
    assert [r["id"] for r in snap.recent] == ["evt-5", "evt-6", "evt-7"]


def test_order_of_arrival_does_not_matter() -> None:
    events = _events()
    expected = _profile(events).snapshot().model_dump(exclude={"identifiers"})
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        got = _profile(shuffled).snapshot().model_dump(exclude={"identifiers"})
        assert got == expected
