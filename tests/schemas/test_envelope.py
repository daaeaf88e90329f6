from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas.envelope import InteractionEvent
from tests.conftest import make_event


def parse(event: dict[str, Any]) -> InteractionEvent:
    return InteractionEvent.model_validate_json(orjson.dumps(event))


def test_a_full_event_parses_and_normalises() -> None:
    event = parse(
        make_event(
            channel="Call_Center",
            touchpoint="call_center.billing",
            identifiers={"Email": " Ann@Example.com", "phone": "(415) 555-0100", "crm_id": 42},
            text="thanks",
            sentiment=0.5,
            nps=9,
            csat=5,
            amount=12.5,
            currency="gbp",
            case_id="case-1",
            consent={"marketing_email": False},
            attributes={"agent": "a7"},
        )
    )
    assert event.data.channel == "call_center"
    assert event.data.identifiers == {
        "email": "ann@example.com",
        "phone": "+14155550100",
        "crm_id": "42",
    }
    assert event.data.currency == "GBP"
    assert event.time == datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    assert event.channel_label == "call_center"


def test_time_is_converted_to_utc() -> None:
    event = parse({**make_event(), "time": "2026-03-02T12:00:00+02:00"})
    assert event.time == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_unknown_fields_are_kept_at_both_levels() -> None:
    event = parse(
        {
            **make_event(),
            "traceparent": "00-abc",
            "data": {**make_event()["data"], "basket_size": 3},
        }
    )
    dumped = event.model_dump(mode="json")
    assert dumped["traceparent"] == "00-abc"
    assert dumped["data"]["basket_size"] == 3


def test_new_channels_and_types_are_accepted() -> None:
    event = parse({**make_event(channel="kiosk"), "type": "cx.kiosk.tap"})
    assert event.data.channel == "kiosk"
    assert event.channel_label == "other"


def test_anonymous_events_are_valid() -> None:
    assert parse(make_event(identifiers={})).data.identifiers == {}


@pytest.mark.parametrize(
    ("change", "location", "message"),
    [
        ({"data": {"nps": 11}}, "data.nps", "less than or equal to 10"),
        ({"data": {"nps": "nine"}}, "data.nps", "valid integer"),
        ({"data": {"nps": 9.5}}, "data.nps", "valid integer"),
        ({"data": {"csat": 0}}, "data.csat", "greater than or equal to 1"),
        ({"data": {"sentiment": 3}}, "data.sentiment", "less than or equal to 1"),
        ({"data": {"currency": "pounds"}}, "data.currency", "pattern"),
        ({"data": {"identifiers": {"email": "nope"}}}, "data.identifiers", "not an email"),
        ({"data": {"identifiers": {"email": ["a@b.co"]}}}, "data.identifiers", "must be a string"),
        ({"data": {"consent": {"marketing": "yes"}}}, "data.consent.marketing", "valid boolean"),
        ({"time": "2026-03-02T10:00:00"}, "time", "timezone"),
        ({"time": "yesterday"}, "time", "datetime"),
        ({"id": "   "}, "id", "must not be blank"),
    ],
)
def test_invalid_fields_name_the_field_and_the_rule(
    change: dict[str, Any], location: str, message: str
) -> None:
    event = make_event()
    for key, value in change.items():
        event[key] = {**event[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ValidationError) as info:
        parse(event)
    errors = {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}
    assert location in errors, errors
    assert message in errors[location]


@pytest.mark.parametrize("missing", ["id", "source", "type", "time", "data"])
def test_required_attributes(missing: str) -> None:
    event = make_event()
    del event[missing]
    with pytest.raises(ValidationError, match=missing):
        parse(event)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_rejected(number: bytes) -> None:
    body = orjson.dumps(make_event()).replace(
        b'"channel":"web"', b'"channel":"web","amount":' + number
    )
    assert number in body
    with pytest.raises(ValidationError, match="finite"):
        InteractionEvent.model_validate_json(body)
