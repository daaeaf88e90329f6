"""Profile tombstones leave after the customer's snapshots (flows.steps.profile)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from flows.app.stores import make_store
from flows.nba.policy import ContactHistory
from flows.records import Journeyed, Resolved, Tombstone
from flows.settings import ProfileSettings, Settings
from flows.steps.decide import DecideLogic
from flows.steps.profile import ProfileStep, profile_tombstones
from schemas.envelope import InteractionEvent
from schemas.outputs import IdentityErasure, IdentityMerge
from state.store import ResolveRequest
from tests.conftest import make_event, raw, run_flow

_AT3 = datetime(2026, 3, 2, 10, 3, tzinfo=UTC)
_AT9 = datetime(2026, 3, 2, 10, 9, tzinfo=UTC)


def _event(n: int, **data: Any) -> InteractionEvent:
    return InteractionEvent.model_validate(make_event(n, **data))


def _merge(survivor: str, merged: str) -> IdentityMerge:
    return IdentityMerge.model_validate(
        {
            "id": f"merge-{merged}",
            "survivor_id": survivor,
            "merged_id": merged,
            "event_id": "evt-3",
            "time": "2026-03-02T10:03:00Z",
            "reason": "shared identifiers",
            "linking_identifiers": ["email"],
        }
    )


def test_a_tombstone_for_each_customer_merged_away_or_erased() -> None:
    erasure = IdentityErasure.model_validate(
        {
            "id": "erase-1",
            "customer_id": "c-gone",
            "event_id": "evt-9",
            "time": "2026-03-02T10:09:00Z",
            "existed": True,
            "identifiers_removed": 1,
            "aliases_removed": 0,
        }
    )
    merges = (_merge("c-a", "c-b"), _merge("c-a", "c-b"), _merge("c-a", "c-a"))
    resolved = Resolved("c-a", _event(3), (*merges, erasure))
    # the survivor is not tombstoned; one tombstone per customer, with the first cause
    # a merge's tombstone names the survivor (the household step moves the membership)
    assert profile_tombstones(resolved) == [
        Tombstone("c-b", "merge-c-b", _AT3, "c-a"),
        Tombstone("c-gone", "erase-1", _AT9),
    ]


def test_the_profile_step_sends_tombstones_after_the_batch_snapshots() -> None:
    store = make_store(Settings(), default="memory")
    step = ProfileStep(store)
    event = _event(1)
    (result,) = store.resolve_batch([ResolveRequest(event.id, event.epoch_ms, {"crm_id": "C1"})])
    assert result.customer_id is not None
    journeyed = Journeyed(Resolved(result.customer_id, event), "awareness", 0.0, {})
    out = step.apply_profiles([Tombstone(result.customer_id, "merge-1", _AT3), journeyed])
    assert [type(o).__name__ for o in out] == ["ProfileSnapshot", "Tombstone"]


def test_the_decide_step_passes_tombstones_on_in_order() -> None:
    logic = DecideLogic(None, ContactHistory())
    out, _ = logic.on_batch([Tombstone("c-b", "merge-c-b", _AT3)])
    assert list(out) == [Tombstone("c-b", "merge-c-b", _AT3)]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_no_snapshot_of_a_merged_away_customer_follows_its_tombstone(
    workers: int, batch_size: int
) -> None:
    # Pairs of customers seen apart (each with many events, each published), then merged
    # by an event carrying both identifiers, then more events of the survivor.
    events: list[dict[str, Any]] = []
    n = 0
    for pair in range(12):
        email, phone = f"p{pair}@example.com", f"+1415555{pair:04d}"
        for _ in range(4):
            events += [
                make_event(n := n + 1, identifiers={"email": email}),
                make_event(n := n + 1, identifiers={"phone": phone}),
            ]
        events.append(make_event(n := n + 1, identifiers={"email": email, "phone": phone}))
        events.append(make_event(n := n + 1, identifiers={"phone": phone}))
    messages = [raw(orjson.dumps(e), offset=i) for i, e in enumerate(events)]
    settings = Settings(profiles=ProfileSettings(emit_interval_seconds=0))
    out = run_flow(messages, settings, batch_size=batch_size, workers=workers)
    merged = {m["merged_id"] for m in out["identity"]}
    assert len(merged) == 12
    gone: set[str] = set()
    for record in out["profiles"]:
        if "tombstone" in record:
            gone.add(record["tombstone"])
        else:
            assert record["customer_id"] not in gone, "a snapshot after its tombstone"
    assert gone == merged
