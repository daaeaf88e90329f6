"""Per-customer features: event time, decay, cases and SLAs, exit signals, bounds."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest

from online_models.features import CustomerFeatures
from online_models.settings import FeatureSettings
from tests.online_models.conftest import DAY_MS, ev, ms


def test_every_vector_has_the_same_keys_and_finite_values() -> None:
    empty = CustomerFeatures().vector(0)
    f = CustomerFeatures()
    f.update(ev(1, 0, "cx.order.placed", amount=20.0, nps=3, csat=2), -0.8, "purchase")
    x = f.vector(ms(0))
    assert list(x) == list(empty)
    assert all(isinstance(v, float) and math.isfinite(v) for v in x.values())


def test_recency_tenure_spend_and_stage() -> None:
    f = CustomerFeatures()
    f.update(ev(1, 0), None, "awareness")
    f.update(ev(2, 3, "cx.order.placed", amount=40.0), None, "purchase")
    f.update(ev(3, 4, "cx.order.placed", amount=10.0), None, None)
    x = f.vector(ms(4))
    assert x["gap_days"] == pytest.approx(math.log1p(1.0))
    assert x["tenure_days"] == pytest.approx(math.log1p(4.0))
    assert x["spend"] == pytest.approx(math.log1p(50.0))
    assert x["orders"] == pytest.approx(math.log1p(2))
    assert x["stage_purchase"] == 1.0 and x["stage_awareness"] == 0.0


def test_counters_fade_with_event_time() -> None:
    conf = FeatureSettings(half_life_days=10.0)
    f = CustomerFeatures()
    for day in range(0, 30, 3):
        f.update(ev(day, day, channel="chat", touchpoint="chat.live-agent"), -0.9, None, conf)
    now = f.vector(ms(27), conf)["ch_chat"]
    later = f.vector(ms(37), conf)["ch_chat"]

    def exposure(tenure: float) -> float:  # days seen, at most a decay window
        return 10.0 / math.log(2) * (1 - math.pow(0.5, tenure / 10.0))

    # half the count, per week of a slightly longer exposure
    expected = math.expm1(now) / 2 * exposure(27) / exposure(37)
    assert math.expm1(later) == pytest.approx(expected, rel=1e-9)


def test_a_new_customer_is_not_quiet() -> None:
    # rates per week over the time seen: one event a day reads the same at 3 and 60 days
    conf = FeatureSettings()
    young, old = CustomerFeatures(), CustomerFeatures()
    for day in range(3):
        young.update(ev(f"y{day}", day), None, None, conf)
    for day in range(60):
        old.update(ev(f"o{day}", day), None, None, conf)
    assert young.vector(ms(2), conf)["activity"] == pytest.approx(
        old.vector(ms(59), conf)["activity"], rel=0.4
    )


def test_an_out_of_order_event_counts_faded_and_keeps_the_clock() -> None:
    f = CustomerFeatures()
    f.update(ev(1, 10), None, None)
    f.update(ev(2, 3), None, None)
    assert f.last_ms == ms(10) and f.first_ms == ms(3)
    assert f.decayed["events"] < 2.0


def test_sentiment_level_trend_and_complaints() -> None:
    conf = FeatureSettings(sentiment_alpha=0.5)
    f = CustomerFeatures()
    f.update(ev(1, 0, channel="chat", touchpoint="chat.support-bot"), -0.8, None, conf)
    f.update(ev(2, 1, channel="web"), 0.4, None, conf)
    x = f.vector(ms(1), conf)
    assert (x["sent_last"], x["sent_mean"], x["sent_trend"]) == pytest.approx((0.4, -0.2, -0.2))
    assert x["complaints"] > 0  # the negative chat; the web one is no service contact
    assert f.decayed["complaints"] < 1.0


def test_nps_csat_and_their_missing_indicators() -> None:
    f = CustomerFeatures()
    x = f.vector(0)
    assert (x["nps_missing"], x["csat_missing"]) == (1.0, 1.0)
    f.update(ev(1, 0, "cx.survey.nps", channel="survey", nps=4, csat=5), None, None)
    x = f.vector(ms(0))
    assert (x["nps"], x["csat"], x["nps_missing"], x["csat_missing"]) == (0.4, 1.0, 0.0, 0.0)
    assert x["detractors"] > 0


def test_open_cases_breach_by_priority_sla() -> None:
    f = CustomerFeatures()
    opened = "cx.service_desk.case.opened"
    desk = {"channel": "service_desk", "touchpoint": "service_desk.billing"}
    f.update(ev(1, 0, opened, case_id="C1", attributes={"priority": "p1"}, **desk), None, None)
    f.update(ev(2, 0, opened, case_id="C2", **desk), None, None)  # no priority: 72 h
    assert f.vector(ms(0.1))["breached_cases"] == 0.0
    assert f.vector(ms(0.5))["breached_cases"] == 1.0  # P1: 4 h
    assert f.vector(ms(3.5))["breached_cases"] == 2.0
    f.update(ev(3, 4, "cx.service_desk.case.resolved", case_id="C1", **desk), None, None)
    x = f.vector(ms(4))
    assert (x["open_cases"], x["breached_cases"]) == (1.0, 1.0)


def test_open_cases_are_bounded() -> None:
    conf = FeatureSettings(max_open_cases=3)
    f = CustomerFeatures()
    for i in range(10):
        f.update(ev(i, i, "cx.service_desk.case.opened", case_id=f"C{i}"), None, None, conf)
    assert list(f.open_cases) == ["C7", "C8", "C9"]


@pytest.mark.parametrize(
    ("touchpoint", "data"),
    [
        ("call_center.cancellations", {}),
        ("web.account", {"attributes": {"page": "/account/close"}}),
        ("email.newsletter", {"consent": {"marketing_email": False}}),
    ],
)
def test_exit_signals(touchpoint: str, data: dict[str, Any]) -> None:
    f = CustomerFeatures()
    f.update(ev(1, 0, touchpoint=touchpoint, **data), None, None)
    x = f.vector(ms(0))
    assert x["exits"] > 0 and x["exit_fresh"] == 1.0 and x["exits_total"] > 0
    assert f.vector(ms(3))["exit_fresh"] == pytest.approx(math.exp(-1))


def test_no_exit_signal_from_an_ordinary_event() -> None:
    f = CustomerFeatures()
    f.update(ev(1, 0, consent={"marketing_email": True}), None, None)
    assert f.vector(ms(0))["exits"] == 0.0


def test_account_holders_are_told_apart_from_cookies() -> None:
    anonymous, known = CustomerFeatures(), CustomerFeatures()
    anonymous.update(ev(1, 0, identifiers={"cookie_id": "c-1"}), None, None)
    known.update(ev(2, 0, identifiers={"email": "ann@example.com"}), None, None)
    assert (anonymous.vector(ms(0))["account"], known.vector(ms(0))["account"]) == (0.0, 1.0)


def test_state_is_small_and_pickles() -> None:
    f = CustomerFeatures()
    for day in range(200):
        f.update(ev(day, day / 4, "cx.chat.message", channel="chat", text="x"), -0.5, "service")
    copy = pickle.loads(pickle.dumps(f))
    assert copy.vector(ms(50)) == f.vector(ms(50))
    assert len(pickle.dumps(f)) < 1500
    assert DAY_MS == 86_400_000
