"""The fast path (schemas.fast_envelope) accepts only what pydantic accepts, as pydantic would.

Whenever ``fast_event`` returns an event, ``InteractionEvent.model_validate_json`` must
return an equal one: the same fields, extras, fields set and JSON dump, at both levels.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.envelope import InteractionEvent, Limits
from schemas.fast_envelope import fast_event
from tests.conftest import make_event

FUZZ = settings(
    max_examples=400,
    deadline=timedelta(seconds=2),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
LIMITS = Limits(max_text_chars=50, max_identifiers=4, max_depth=6)
CONTEXT = {"limits": LIMITS, "phone_country_code": "44"}
SAMPLES = Path(__file__).parents[2] / "replay" / "samples"


def state(model: Any) -> tuple[Any, ...]:
    fields = {k: v for k, v in model.__dict__.items() if k in type(model).model_fields}
    return fields, model.__pydantic_extra__, model.__pydantic_fields_set__


def check(value: bytes, limits: Limits = LIMITS, country: str = "44") -> bool:
    """Compare both paths on ``value``; return whether the fast path took it."""
    try:
        fast = fast_event(value, limits, country)
    except ValueError:
        fast = None  # the decoder then asks pydantic too
    context = {"limits": limits, "phone_country_code": country}
    try:
        slow: InteractionEvent | None = InteractionEvent.model_validate_json(value, context=context)
    except ValidationError:
        slow = None
    if fast is None:
        return False
    assert slow is not None, value  # never accept what pydantic refuses
    assert fast == slow
    assert state(fast) == state(slow)
    assert state(fast.data) == state(slow.data)
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.epoch_ms == slow.epoch_ms
    assert type(fast.time.tzinfo) is type(slow.time.tzinfo)
    return True


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**21), max_value=10**21)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["web", " Chat ", "GBP", "gb1", "", "a@b.co", "+44 20 7946 0958"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = (
    ("id",), ("source",), ("type",), ("time",), ("specversion",), ("data",), ("extra",),
    ("data", "channel"), ("data", "touchpoint"), ("data", "journey_stage"),
    ("data", "identifiers"), ("data", "text"), ("data", "sentiment"), ("data", "nps"),
    ("data", "csat"), ("data", "amount"), ("data", "currency"), ("data", "case_id"),
    ("data", "consent"), ("data", "attributes"), ("data", "extra"),
)  # fmt: skip
TIMES = st.sampled_from(
    [
        "2026-03-02T10:00:00Z", "2026-03-02T10:00:00.5Z", "2026-03-02T10:00:00.123456+05:30",
        "2026-03-02T10:00:00-00:00", "2026-03-02T23:59:59+23:59", "2026-03-02T10:00:00+24:00",
        "2026-03-02T10:00:60Z", "2026-02-30T10:00:00Z", "2026-03-02 10:00:00Z",
        "2026-03-02T10:00:00z", "2026-03-02T10:00:00", "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00", "2026-03-02T10:00:00.1234567Z", "2026-03-02T10:00Z",
        "2026-03-02T10:00:00+0530", "1772445600", "2026-03-02T24:00:00Z",
    ]
)  # fmt: skip


def with_field(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = make_event(text="hi", nps=9, amount=3.5, attributes={"a": 1}, currency="gbp")
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


@FUZZ
@given(st.sampled_from(FIELDS), json_values | TIMES)
def test_any_value_in_any_field(path: tuple[str, ...], value: Any) -> None:
    check(json.dumps(with_field(path, value)).encode())


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["email", "Phone", "crm_id", " x ", "BAD TYPE", "device_id"]),
        st.none() | st.integers(-5, 10**20) | st.booleans() | st.floats() | st.text(max_size=12),
        max_size=6,
    )
)
def test_identifiers(identifiers: dict[str, Any]) -> None:
    check(json.dumps(with_field(("data", "identifiers"), identifiers)).encode())


@FUZZ
@given(st.integers(min_value=0, max_value=12), st.sampled_from(["attributes", "extra", "top"]))
def test_nesting_around_the_depth_limit(depth: int, where: str) -> None:
    deep: Any = "leaf"
    for level in range(depth):
        deep = {"k": deep} if level % 2 else [deep]
    event = make_event(attributes={"deep": deep}) if where == "attributes" else make_event()
    if where == "extra":
        event["data"]["deep"] = deep
    elif where == "top":
        event["deep"] = deep
    reached = depth + {"attributes": 3, "extra": 2, "top": 1}[where]
    assert check(orjson.dumps(event)) == (reached <= LIMITS.max_depth)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","amount":123456789012345678901}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","x":1e400,"data":'
        b'{"channel":"web","touchpoint":"t"}}',
        b'{"id":"e","id":" f ","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","attributes":{"a":1,"a":[2]}}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","text":"\\ud83d\\ude00 \\u00e9"}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","currency":"ab\\n"}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","identifiers":null}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","attributes":null}}',
        b'{"id":"e","source":"s","type":"t","time":"2026-03-02T10:00:00Z","data":'
        b'{"channel":"web","touchpoint":"t","identifiers":{"email":["a@b.co"]}}}',
    ],
)
def test_edge_cases(body: bytes) -> None:
    check(body)


def test_every_sample_and_the_reference_world_agree() -> None:
    taken = 0
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            value = orjson.loads(line).get("value")
            if isinstance(value, str):
                taken += check(value.encode(), Limits(), "1")
    assert taken > 0
