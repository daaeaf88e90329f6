"""The decider: eligibility, contact policy, consent, arbitration, reason codes, ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from flows.nba.catalogue import load_catalogue
from flows.nba.decider import Decider
from flows.nba.policy import ContactHistory
from flows.step_settings import NbaSettings
from schemas.ids import output_id
from schemas.outputs import NextBestAction
from tests.flows.nba.conftest import SERVICE, action, context

Write = Callable[[str], Path]
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
HOUR = 3_600_000


class Run:
    """A decider and one customer's history, driven in event time (hours after T0)."""

    def __init__(self, path: Path, **settings: Any) -> None:
        self.decider = Decider(load_catalogue(path), NbaSettings(**settings))
        self.history = ContactHistory()
        self.n = 0

    def at(self, hours: float, **fields: Any) -> list[NextBestAction]:
        self.n += 1
        time = T0 + timedelta(hours=hours)
        ms = int(time.timestamp() * 1000)
        return self.decider.decide(context(**fields), self.history, f"e{self.n}", time, ms)

    def ids(self, hours: float, **fields: Any) -> list[str]:
        return [nba.action for nba in self.at(hours, **fields)]


def test_eligibility_needs_every_condition(write_catalogue: Write) -> None:
    when = '["nps >= 9", "stage in [purchase, loyalty]", "touchpoint like \\"store.*\\""]'
    run = Run(write_catalogue(action("thanks", when=when, cooldown_hours=0)))
    assert run.ids(0, nps=10, stage="loyalty") == ["thanks"]  # touchpoint store.till
    assert run.ids(1, nps=8, stage="loyalty") == []
    assert run.ids(2, nps=10, stage="usage") == []
    assert run.ids(3, nps=10, stage="loyalty", touchpoint="web.home") == []
    assert run.ids(4, nps=None, stage="loyalty") == []  # unknown satisfies nothing
    assert run.decider.suppressed == {}  # ineligible is not suppressed


def test_arbitration_order_top_n_and_reason_codes(write_catalogue: Write) -> None:
    text = (
        "[levers]\nsales = 0.5\nmarketing = 2.0\n"
        + action("small", "marketing", value=10, propensity=1.0)
        + action("big", "sales", value=100, propensity="category_propensity")
        + action("also_small", "marketing", value=10, propensity=1.0)
    )
    run = Run(write_catalogue(text), top_n=2, max_per_day=10)
    nbas = run.at(0, nps=7, category_propensity=0.8)
    # big: 0.8 x 100 x 0.5 = 40; the others 1 x 10 x 2 = 20, tied: the id decides
    assert [(n.action, n.priority, n.score) for n in nbas] == [
        ("big", 40.0, 0.8),
        ("also_small", 20.0, 1.0),
    ]
    assert run.decider.suppressed == {"arbitration": 1}
    assert nbas[0].reason_codes == [
        "rule:big",
        "nps=7 >= 0",
        "priority=40 (category_propensity 0.8 x value 100 x lever 0.5)",
    ]
    assert nbas[1].reason_codes[-1] == "priority=20 (propensity 1 x value 10 x lever 2)"


def test_the_nba_event(write_catalogue: Write) -> None:
    run = Run(write_catalogue(SERVICE.replace("cooldown_hours = 0", "expiry_hours = 48")))
    (nba,) = run.at(5, nps=3, segment="seg-1", lifetime_value=99.5, last_nps=3, open_cases=1)
    assert nba.id == output_id("nba", "call_back", "e1")
    assert (nba.customer_id, nba.action, nba.action_class, nba.channel) == (
        "c-1",
        "call_back",
        "service",
        "call_center",
    )
    assert nba.message == "call c-1: NPS 3"
    assert nba.trigger_event_ids == ["e1"]
    assert nba.time == T0 + timedelta(hours=5)
    assert nba.expires_at == nba.time + timedelta(hours=48)
    assert nba.profile_excerpt == {
        "segment": "seg-1",
        "lifetime_value": 99.5,
        "churn_risk": None,
        "last_nps": 3,
        "sentiment_trend": None,
        "open_cases": 1,
        "stage": None,
        "top_category": None,
    }


def test_an_unknown_propensity_holds_the_action_back(write_catalogue: Write) -> None:
    when = '["nps <= 6"]'
    text = action("save", "retention", when=when, cooldown_hours=0, propensity="churn")
    run = Run(write_catalogue(text))
    assert run.ids(0, nps=2) == []  # churn is unknown before the warm-up
    assert run.decider.suppressed == {"no_score": 1}
    assert run.ids(1, nps=2, churn=0.9) == ["save"]


def test_daily_cap_counts_the_last_24_hours(write_catalogue: Write) -> None:
    text = "".join(action(f"m{i}", cooldown_hours=0) for i in range(3))
    run = Run(write_catalogue(text), top_n=1, max_per_day=2, max_per_week=10)
    assert [len(run.at(h, nps=5)) for h in (0, 1, 2, 23.9, 24.1, 25.1)] == [1, 1, 0, 0, 1, 1]
    # Policy comes before the top-N cut: once the cap is reached, the rest are daily_cap
    assert run.decider.suppressed == {"arbitration": 2, "daily_cap": 12}


def test_weekly_cap_counts_the_last_7_days(write_catalogue: Write) -> None:
    run = Run(write_catalogue(action("m", cooldown_hours=0)), max_per_day=5, max_per_week=3)
    sent = [len(run.at(day * 24, nps=5)) for day in range(9)]
    assert sent == [1, 1, 1, 0, 0, 0, 0, 1, 1]
    assert run.decider.suppressed == {"weekly_cap": 4}


def test_cooldown_per_action_both_ways_in_event_time(write_catalogue: Write) -> None:
    text = action("m", cooldown_hours=48) + action("other", cooldown_hours=0)
    run = Run(write_catalogue(text), max_per_day=10, max_per_week=10)
    assert run.ids(100, nps=5) == ["m", "other"]
    assert run.ids(124, nps=5) == ["other"]  # m within its cool-down
    assert run.ids(80, nps=5) == ["other"]  # an earlier event arriving late: still too close
    assert run.ids(149, nps=5) == ["m", "other"]
    assert run.decider.suppressed == {"cooldown": 2}


def test_no_marketing_while_a_case_is_open(write_catalogue: Write) -> None:
    text = SERVICE + action("promo", when='["nps >= 0"]')
    run = Run(write_catalogue(text))
    assert run.ids(0, nps=3, open_cases=1) == ["call_back"]
    assert run.decider.suppressed == {"open_case": 1}
    assert run.ids(48, nps=3, open_cases=0) == ["call_back", "promo"]


def test_service_passes_the_caps_but_counts_towards_them(write_catalogue: Write) -> None:
    text = SERVICE + action("promo", when='["nps >= 0"]', cooldown_hours=0)
    run = Run(write_catalogue(text), max_per_day=1)
    assert run.ids(0, nps=9) == ["promo"]
    assert run.ids(1, nps=3) == ["call_back"]  # the cap is full, service goes anyway
    assert run.ids(30, nps=3) == ["call_back"]  # ... and its send fills the day for promo
    assert run.decider.suppressed == {"daily_cap": 2}


def test_consent_stops_marketing_only(write_catalogue: Write) -> None:
    text = (
        SERVICE
        + action("news", when='["nps >= 0"]', cooldown_hours=0)
        + action("sms_deal", when='["nps >= 0"]', cooldown_hours=0).replace("email", "sms")
        + action("upsell", "sales", when='["nps >= 0"]', cooldown_hours=0, propensity=1.0)
    )
    run = Run(write_catalogue(text), top_n=5, max_per_day=50, max_per_week=50)
    conf = run.decider.settings
    run.history.fold_consent(0, {"marketing_email": False}, conf)
    assert run.ids(1, nps=3) == ["call_back", "sms_deal", "upsell"]  # email marketing: no
    run.history.fold_consent(2 * HOUR, {"marketing": False}, conf)
    assert run.ids(3, nps=3) == ["call_back", "upsell"]  # sales needs no consent by default
    run.history.fold_consent(1 * HOUR, {"marketing": True}, conf)  # older: changes nothing
    assert run.ids(4, nps=3) == ["call_back", "upsell"]
    run.history.fold_consent(5 * HOUR, {"marketing": True, "marketing_email": True}, conf)
    assert run.ids(6, nps=3) == ["call_back", "news", "sms_deal", "upsell"]
    assert run.decider.suppressed == {"consent": 5}


def test_opt_outs_from_the_store_hold_marketing_back(write_catalogue: Write) -> None:
    text = (
        SERVICE
        + action("news", when='["nps >= 0"]', cooldown_hours=0)
        + action("sms_deal", when='["nps >= 0"]', cooldown_hours=0).replace("email", "sms")
    )
    run = Run(write_catalogue(text), top_n=5, max_per_day=50, max_per_week=50)
    conf = run.decider.settings
    ms = int(T0.timestamp() * 1000)

    def ids(hours: float, withdrawn: dict[str, int]) -> list[str]:
        time = T0 + timedelta(hours=hours)
        stamp = int(time.timestamp() * 1000)
        out = run.decider.decide(
            context(nps=3), run.history, f"w{hours}", time, stamp, withdrawn=withdrawn
        )
        return [nba.action for nba in out]

    assert ids(1, {"marketing_email": ms}) == ["call_back", "sms_deal"]
    assert ids(2, {"marketing": ms}) == ["call_back"]  # service needs no consent
    run.history.fold_consent(ms + HOUR, {"marketing": True}, conf)  # newer than the store's
    assert ids(3, {"marketing": ms}) == ["call_back", "news", "sms_deal"]
    assert ids(4, {"marketing": ms + HOUR}) == ["call_back"]  # a tie: withdrawn
    # the history's own opt-out blocks whatever the store says
    run.history.fold_consent(ms + 2 * HOUR, {"marketing_sms": False}, conf)
    assert ids(5, {}) == ["call_back", "news"]
    assert run.decider.suppressed == {"consent": 6}


def test_suppressions_are_counted_by_reason_in_prometheus(write_catalogue: Write) -> None:
    def sample() -> float:
        value = REGISTRY.get_sample_value("cx_nba_suppressed_total", {"reason": "open_case"})
        return value or 0.0

    before = sample()
    run = Run(write_catalogue(action("promo")))
    run.at(0, nps=5, open_cases=2)
    assert sample() == before + 1


def test_history_stays_bounded(write_catalogue: Write) -> None:
    run = Run(write_catalogue(SERVICE), max_per_day=1000, max_per_week=1000)
    for hour in range(0, 24 * 60, 2):
        run.at(hour, nps=1)
    sent = run.history.sent
    assert len(sent) <= 7 * 12 + 1  # a week of sends, every two hours
    assert sent[-1][0] - sent[0][0] <= 7 * 24 * HOUR
