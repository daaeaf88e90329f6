"""The journey step: stages, sentiment windows, trend and the sentiment alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows.journey import JourneyLogic, JourneyState
from flows.resolve import Journeyed, Resolved
from flows.sentiment import VaderScorer, bound_text
from flows.settings import JourneySettings, Settings
from flows.stages import DEFAULT_STAGE_MAP, mapped_stage, next_stage
from flows.stores import make_store
from schemas.envelope import InteractionEvent
from schemas.outputs import Alert
from tests.conftest import make_event, raw, run_flow

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
ANN = {"email": "ann@example.com"}


def ev(n: int, hours: float, etype: str = "cx.chat.message", **data: Any) -> Resolved:
    body = make_event(n, **data)
    body["type"] = etype
    body["time"] = (T0 + timedelta(hours=hours)).isoformat()
    return Resolved("cust-1", InteractionEvent.model_validate(body))


class FixedScorer:
    def score(self, text: str) -> float | None:
        return {"good": 0.8, "bad": -0.8, "meh": 0.0}.get(text)


def logic(**settings: Any) -> JourneyLogic:
    return JourneyLogic(JourneySettings(**settings), FixedScorer(), JourneyState())


def run(journey: JourneyLogic, *items: Resolved) -> list[Journeyed | Alert]:
    return list(journey.on_batch(list(items))[0])


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["cx.web.page.viewed", "cx.order.placed", "cx.web.page.viewed"], "purchase"),
        (["cx.order.placed", "cx.service_desk.case.opened"], "service"),
        (
            ["cx.order.placed", "cx.service_desk.case.opened", "cx.service_desk.case.resolved"],
            "purchase",
        ),
        (["cx.app.session.started", "cx.account.closed", "cx.web.page.viewed"], "churned"),
        (["cx.account.closed", "cx.order.placed"], "purchase"),
        (["cx.kiosk.tapped"], None),  # unknown types never fail, they just do not move
    ],
)
def test_the_stage_machine(types: list[str], expected: str | None) -> None:
    stage = before = None
    for etype in types:
        target = mapped_stage(etype, None, DEFAULT_STAGE_MAP)
        new = next_stage(stage, before, target)
        if new == "service" and stage != "service":
            before = stage
        stage = new
    assert stage == expected


def test_hints_win_and_promoters_reach_loyalty() -> None:
    journey = logic()
    out = run(journey, ev(1, 0, "cx.web.page.viewed", journey_stage="consideration"))
    assert isinstance(out[0], Journeyed) and out[0].stage == "consideration"
    out = run(
        journey,
        ev(2, 1, "cx.order.placed"),
        ev(3, 2, "cx.survey.nps", nps=8, journey_stage="loyalty"),
    )
    assert [o.stage for o in out if isinstance(o, Journeyed)] == ["purchase", "purchase"]
    out = run(journey, ev(4, 3, "cx.survey.nps", nps=10, journey_stage="loyalty"))
    assert isinstance(out[0], Journeyed) and out[0].stage == "loyalty"


def test_sentiment_windows_trend_and_per_stage() -> None:
    journey = logic(ewma_alpha=0.5)
    run(journey, ev(1, 0, text="good"))
    run(journey, ev(2, 30, text="bad"))  # 30 h later: outside the 24 h window of the next
    (out,) = [
        o for o in run(journey, ev(3, 31, text="meh", sentiment=0.2)) if isinstance(o, Journeyed)
    ]
    assert out.sentiment == 0.2  # a given sentiment wins over the scorer
    figures = out.figures
    assert figures["sent_24h"] == f"{(-0.8 + 0.2) / 2:.4f}" and figures["sent_24h_n"] == "2"
    assert figures["sent_168h"] == f"{(0.8 - 0.8 + 0.2) / 3:.4f}"
    assert figures["sent_trend"] == f"{0.5 * 0.2 + 0.5 * (0.5 * -0.8 + 0.5 * 0.8):.4f}"


def test_sentiment_drop_fires_once_and_rearms() -> None:
    # events 2 h apart: a 6 h window holds the last three
    journey = logic(window_hours=(6.0, 168.0), drop_threshold=-0.5, drop_min_samples=2)
    hours = iter(range(0, 1000, 1))
    alerts = []
    for text in ["good", "bad", "bad", "bad", "good", "good", "good", "bad", "bad", "bad"]:
        alerts += [
            o for o in run(journey, ev(next(hours), next(hours), text=text)) if isinstance(o, Alert)
        ]
    kinds = [a.kind for a in alerts]
    assert kinds.count("sentiment_drop") == 2  # once per drop, again after recovering
    first = alerts[0]
    assert first.customer_id == "cust-1" and first.evidence["samples"] >= 2


def test_detractor_alerts() -> None:
    journey = logic()
    out = run(
        journey,
        ev(1, 0, "cx.survey.nps", nps=6),
        ev(2, 1, "cx.survey.nps", nps=7),
        ev(3, 2, "cx.survey.nps", nps=2),
    )
    alerts = [o for o in out if isinstance(o, Alert)]
    assert [(a.kind, a.severity) for a in alerts] == [
        ("detractor", "medium"),
        ("detractor", "high"),
    ]
    assert alerts[0].due_at == T0 + timedelta(hours=48)
    assert alerts[0].touchpoint == "web.checkout"


def test_vader_is_bounded_and_never_raises() -> None:
    scorer = VaderScorer(max_chars=500, max_symbols=5)
    assert scorer.score("Thanks, that was great!") > 0.3  # type: ignore[operator]
    assert len(bound_text("x" * 10_000, 500, 5)) == 500
    flood = "😡" * 200_000
    assert scorer.score(flood) is not None
    assert scorer.score("   ") is None


def test_the_profile_carries_the_journey() -> None:
    events = [
        {**make_event(1, identifiers=ANN, text="I love it, thanks!"), "type": "cx.chat.message"},
        {**make_event(2, identifiers=ANN, text="Awful, nobody helps."), "type": "cx.chat.message"},
        {**make_event(3, identifiers=ANN, nps=3), "type": "cx.survey.nps"},
        {**make_event(4, identifiers=ANN), "type": "cx.order.placed"},
    ]
    store = make_store(Settings(), default="memory")
    out = run_flow([raw(e, offset=i) for i, e in enumerate(events)], store=store)
    (profile,) = [store.profile(c) for c in store.customers()]
    assert profile is not None
    assert profile.journey_stage == "purchase"
    assert profile.churn_score is not None and 0 <= profile.churn_score <= 1
    assert profile.segment is not None and profile.segment.startswith("seg-")
    assert set(profile.sentiment_windows) == {"24h", "168h"}
    assert profile.sentiment_trend is not None and profile.sentiment is not None
    assert [r.get("stage") for r in profile.recent][-1] == "purchase"
    assert {a["kind"] for a in out["alerts"]} >= {"detractor"}
