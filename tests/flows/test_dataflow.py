"""The whole flow, in process, over hand-made messages."""

from __future__ import annotations

import orjson

from flows.settings import ProfileSettings, Settings
from tests.conftest import make_event, raw, run_flow


def test_each_valid_event_is_counted_once_and_bad_ones_are_dead_letters() -> None:
    events = [make_event(n, identifiers={"email": f"u{n % 3}@example.com"}) for n in range(12)]
    messages = [raw(e, offset=i) for i, e in enumerate(events)]
    messages.append(raw(events[0], offset=12))  # re-delivery
    messages.append(raw(b"garbage", offset=13))
    out = run_flow(messages)
    profiles = {p["customer_id"]: p for p in out["profiles"]}  # latest per customer
    assert len(profiles) == 3
    assert sum(p["event_count"] for p in profiles.values()) == 12
    assert [d["reason"] for d in out["dlq"]] == ["not_json"]
    assert out["dlq"][0]["offset"] == 13


def test_profiles_are_rate_limited_in_event_time() -> None:
    settings = Settings(profiles=ProfileSettings(emit_interval_seconds=3600))
    # One customer, one event a minute for 30 minutes, one message per batch.
    events = [make_event(n, identifiers={"crm_id": "C-1"}) for n in range(30)]
    out = run_flow([raw(e, offset=i) for i, e in enumerate(events)], settings)
    versions = [p["version"] for p in out["profiles"]]
    assert versions[0] == 1  # first sight is published at once
    assert versions[-1] == 30  # and the final state at end of input
    assert len(versions) <= 3


def test_profile_fields_follow_the_events() -> None:
    events = [
        make_event(1, identifiers={"email": "Ann@Example.com", "cookie_id": "ck1"}),
        make_event(
            2,
            identifiers={"email": "ann@example.com"},
            channel="store",
            touchpoint="store.paris",
            amount=30.0,
            currency="EUR",
        ),
        {
            **make_event(3, identifiers={"email": "ann@example.com"}, case_id="c9"),
            "type": "cx.service_desk.case.opened",
        },
        {
            **make_event(
                4, identifiers={"email": "ann@example.com"}, nps=3, consent={"sms": False}
            ),
            "type": "cx.survey.nps",
        },
    ]
    out = run_flow([raw(e, offset=i) for i, e in enumerate(events)])
    (profile,) = {p["customer_id"]: p for p in out["profiles"]}.values()
    assert profile["identifiers"] == {"email": ["ann@example.com"], "cookie_id": ["ck1"]}
    assert profile["channel_counts"] == {"web": 3, "store": 1}
    assert profile["lifetime_value"] == 30.0
    assert profile["open_cases"] == ["c9"]
    assert profile["last_nps"] == 3
    assert profile["consent"] == {"sms": False}
    assert profile["last_event_id"] == "evt-4"


def test_outputs_are_deterministic() -> None:
    events = [make_event(n, identifiers={"phone": f"+4420794609{n % 4:02d}"}) for n in range(40)]
    messages = [raw(e, offset=i) for i, e in enumerate(events)] + [raw(b"{", offset=99)]
    first = orjson.dumps(run_flow(messages))
    assert orjson.dumps(run_flow(messages)) == first
