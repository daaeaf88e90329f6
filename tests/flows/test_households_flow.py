"""Households through the whole flow: published, merged, erased, the same at any batch size."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flows.records import HouseholdOut, Journeyed, Resolved, Scored
from flows.steps.households import _newer, member_figures
from replay.synthetic import generate_world
from schemas.envelope import InteractionEvent
from state.profile_hash import delta_for, stamp
from tests.conftest import make_event, raw, run_flow

ERASE = "cx.privacy.erase"


def _order(n: int, email: str, *, crm: bool = True, **ids: str) -> dict[str, Any]:
    # each person signs in with a crm_id of their own: identity never merges two of them
    crm_id = {"crm_id": f"C-{email}"} if crm else {}
    event = make_event(n, identifiers={"email": email, **crm_id, **ids}, amount=10.0 + n)
    event["type"] = "cx.order.placed"
    return event


def _world() -> list[dict[str, Any]]:
    events = [
        _order(1, "ann@x.co", address="12 High Street, Flat 3"),
        _order(2, "bob@x.co", address="flat 3, 12 HIGH ST."),
        _order(3, "cat@x.co", device_id="tablet-1"),
        _order(4, "dan@x.co", device_id="tablet-1"),
    ]
    # a kiosk: eight strangers sign in on one device
    events += [_order(10 + i, f"k{i}@x.co", device_id="kiosk-9") for i in range(8)]
    return events


def _latest(outputs: dict[str, list[Any]]) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for record in outputs["households"]:
        if "tombstone" in record:
            latest.pop(record["tombstone"], None)
        else:
            latest[record["household_id"]] = record
    return latest


@pytest.mark.parametrize("batch_size", [1, 50])
def test_families_are_published_and_kiosks_are_not(batch_size: int) -> None:
    events = _world()
    outputs = run_flow(
        [raw(e, offset=i) for i, e in enumerate(events)], batch_size=batch_size, households=True
    )
    households = sorted(_latest(outputs).values(), key=lambda h: h["lifetime_value"])
    assert [(h["member_count"], h["evidence_types"]) for h in households] == [
        (2, ["address"]),
        (2, ["device_id"]),
    ]
    assert households[0]["lifetime_value"] == 23.0 and households[0]["orders"] == 2
    customers = {p["customer_id"] for p in outputs["profiles"] if "customer_id" in p}
    assert len(customers) == len(events)  # linked, never merged


def test_a_merge_and_an_erase_leave_the_topic_with_tombstones() -> None:
    events = [
        _order(1, "ann@x.co", crm=False, address="12 High Street, Flat 3"),
        _order(2, "bob@x.co", crm=False, address="flat 3, 12 HIGH ST."),
    ]
    # bob's email on ann's loyalty card and the other way round: identity merges them
    # (one person with two emails), so the home has one member left
    merge = make_event(30, identifiers={"email": "bob@x.co", "loyalty_id": "L-1"})
    merge2 = make_event(31, identifiers={"email": "ann@x.co", "loyalty_id": "L-1"})
    outputs = run_flow(
        [raw(e, offset=i) for i, e in enumerate([*events, merge, merge2])], households=True
    )
    assert [r for r in outputs["households"] if "tombstone" in r]
    assert _latest(outputs) == {}
    # an erase of one of two members dissolves the household too
    erase = make_event(40, identifiers={"email": "bob@x.co"})
    erase["type"] = ERASE
    outputs = run_flow([raw(e, offset=i) for i, e in enumerate([*events, erase])], households=True)
    assert outputs["households"][-1] == {"tombstone": outputs["households"][0]["household_id"]}
    assert _latest(outputs) == {}


def test_the_gate_drops_a_publication_older_than_one_sent() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    v1, v2, v3 = (HouseholdOut("hh-1", v, None, at) for v in (1, 2, 3))
    state, out = _newer(None, v2)
    assert (state, out) == (2, v2)
    assert _newer(state, v1) == (2, None)  # from a slower worker: the topic keeps v2
    assert _newer(state, v3) == (3, v3)


def test_member_figures_read_the_event_as_the_profile_delta_does() -> None:
    seen = set()
    for message in generate_world(40, 10, seed=3).messages():
        try:
            event = InteractionEvent.model_validate_json(message.value or b"")
        except ValueError:
            continue  # the world's bad input
        scored = Scored(Journeyed(Resolved("c1", event), None, None), 0.25, True, "seg-0")
        f, d = member_figures(scored), delta_for("c1", event)
        assert (f.stamp, f.ms, f.amount_cents, f.order, f.case) == (
            stamp(d.ms, d.event_id),
            d.ms,
            d.amount_cents,
            d.order,
            d.case,
        )
        assert (str(f.nps) if f.nps is not None else None) == d.nps and f.churn == "0.2500"
        seen.add((f.order, f.case is not None, f.nps is not None))
    assert {(True, False, False), (False, True, False), (False, False, True)} <= seen
