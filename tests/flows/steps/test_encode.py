"""encode writes the bytes pydantic's ``model_dump_json`` would, whatever the values hold."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flows.records import Tombstone
from flows.steps.encode import _plan, encode, to_json
from schemas.outputs import (
    OUTPUT_MODELS,
    Alert,
    DeadLetter,
    IdentityErasure,
    IdentityMerge,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)

FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
MODELS = sorted({*OUTPUT_MODELS.values()}, key=lambda cls: cls.__name__)

zones: list[timezone | None] = [UTC, timezone(timedelta(hours=-3, minutes=-30)), None]
times = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 (naive bounds; a zone is added)
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    ),
    st.sampled_from(zones),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers(min_value=2**64, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | times
)
free = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=4), children, max_size=3)
        | st.dictionaries(st.integers(0, 3), children, max_size=2)
        | st.sets(st.integers(0, 3), max_size=2)
    ),
    max_leaves=12,
)


def same(model: BaseModel) -> None:
    assert to_json(model) == model.model_dump_json().encode()


def test_every_output_model_takes_the_orjson_path() -> None:
    for cls in MODELS:
        assert _plan(cls) is not None, cls


# model_construct with values of other types: pydantic warns as it writes them
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@FUZZ
@given(st.sampled_from(MODELS), st.data())
def test_any_values_in_any_fields_are_written_as_pydantic_writes_them(
    cls: type[BaseModel], data: st.DataObject
) -> None:
    # model_construct: trusted values of any type, as a step building outputs could pass
    values: dict[str, Any] = {name: data.draw(free, label=name) for name in cls.model_fields}
    model = cls.model_construct(**values)
    try:
        expected = model.model_dump_json().encode()
    except Exception:
        return
    assert to_json(model) == expected


def profile(**changes: Any) -> ProfileSnapshot:
    values: dict[str, Any] = {
        "customer_id": "c1",
        "version": 3,
        "identifiers": {"email": ["a@b.co"]},
        "first_seen": datetime(2026, 3, 2, tzinfo=UTC),
        "last_seen": datetime(2026, 3, 2, 10, 0, 0, 158_000, tzinfo=UTC),
        "event_count": 2,
        "channel_counts": {"web": 2},
        "lifetime_value": 12.5,
        "sentiment_windows": {"24h": 0.25},
        "recent": [{"id": "e1", "t": 1.0, "x": math.inf}],
        "last_event_id": "e2",
        **changes,
    }
    return ProfileSnapshot.model_validate(values)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_numbers_pydantic_converts_are_converted() -> None:
    valid = profile()
    same(valid)
    for name, value in [
        ("lifetime_value", 3),
        ("lifetime_value", True),
        ("version", True),
        ("sentiment_windows", {"24h": 1}),
        ("channel_counts", {"web": False}),
        ("recent", [{"n": 2**70}]),
        ("recent", [{1: "int key"}]),
    ]:
        changed = valid.model_copy(update={name: value})
        assert to_json(changed) == changed.model_dump_json().encode(), name


def test_encode_routes_each_kind_with_its_key_id_and_json() -> None:
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    outputs: list[Any] = [
        NextBestAction(
            id="n1", customer_id="c1", decision_id="d1", rank=1, action="a",
            action_class="service", channel="email",
            priority=1, score=0.5, message="m", trigger_event_ids=["e1"], time=at,
        ),
        Alert(id="a1", kind="detractor", severity="high", touchpoint="t", time=at, message="m"),
        NpsWindow(
            id="w1", touchpoint="t", window_start=at, window_end=at, responses=1, promoters=1,
            passives=0, detractors=0, nps=100,
        ),
        IdentityMerge(id="m1", survivor_id="c1", merged_id="c2", event_id="e", reason="r", time=at),
        IdentityErasure(
            id="x1", customer_id="c3", event_id="e", time=at, existed=True,
            identifiers_removed=1, aliases_removed=0,
        ),
        profile(),
        DeadLetter(id="d1", reason="empty", error="e", original_b64="", original_size=0),
        Tombstone("c2", "m1", at),
    ]  # fmt: skip
    encoded = [item for output in outputs for item in encode(output)]
    assert [(kind, out.kind, out.key, out.value is None) for kind, out in encoded] == [
        ("nba", "nba", "c1", False),
        ("alerts", "alerts", "t", False),
        ("nps", "nps", "t", False),
        ("identity", "identity", "c1", False),
        ("identity", "identity", "c3", False),
        ("profiles", "profiles", "c1", False),
        ("dlq", "dlq", "d1", False),
        ("profiles", "profiles", "c2", True),  # a tombstone, with its merge's id
    ]
    tombstone = encoded.pop()[1]
    headers = dict(tombstone.headers)
    assert tombstone.id == "m1" and headers["cx-id"] == b"m1"
    assert headers["ce_type"] == b"cx.profile.deleted" and headers["ce_subject"] == b"c2"
    assert "content-type" not in headers
    outputs.pop()
    for output, (_, out) in zip(
        outputs, [e for e in encoded if e[1].value is not None], strict=True
    ):
        assert out.value == output.model_dump_json().encode()
        assert out.headers[0] == ("cx-id", out.id.encode())
    assert encoded[-1][1].headers[:2] == (("cx-id", b"d1"), ("cx-reason", b"empty"))
