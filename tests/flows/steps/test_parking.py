"""Parking journeys: outputs as if never parked, through parks, commits and crashes.

The crash model is Bytewax's: a commit records the key's snapshot (or its absence)
and the lane position; a crash restores that and replays the input after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from flows.records import Resolved
from flows.settings import JourneySettings
from flows.steps.journey import JourneyLogic, JourneyOut, journey_builder
from flows.steps.parking import FORGET, Floor, Parking, decode_version, forgotten_customers
from flows.steps.sentiment import VaderScorer
from schemas.envelope import InteractionEvent
from schemas.outputs import IdentityErasure, IdentityMerge
from state.parking import MemoryParkingStore
from tests.conftest import make_event

LANE = "cx.events:0"


def _events(count: int, seed: int) -> list[Resolved]:
    rng = random.Random(seed)
    kinds = ["cx.web.page.viewed", "cx.commerce.order.placed", "cx.support.case.opened"]
    out = []
    for seq in range(count):
        data = {"sentiment": round(rng.uniform(-1, 1), 3)} if rng.random() < 0.6 else {}
        raw = {**make_event(seq, **data), "type": rng.choice(kinds)}
        raw["time"] = f"2026-03-{2 + seq // 600:02d}T{seq // 60 % 10:02d}:{seq % 60:02d}:00Z"
        event = InteractionEvent.model_validate(raw)
        if rng.random() < 0.03:  # erased or merged away: forgotten here
            out.append(Resolved("c1", event, (FORGET,), lane=LANE, seq=seq))
        else:
            # the first event created c1: its journey starts without reading the store
            created = seq == 0
            out.append(
                Resolved("c1", event, lane=LANE, seq=seq, wm_ms=event.epoch_ms, created=created)
            )
    return out


def _builder(parking: Parking | None) -> Callable[[bytes | None], JourneyLogic]:
    return journey_builder(JourneySettings(), VaderScorer(), parking=parking)


def _reference(events: list[Resolved]) -> list[list[JourneyOut]]:
    logic = _builder(None)(None)
    return [list(logic.on_batch([e])[0]) for e in events]


@pytest.mark.parametrize("seed", range(12))
def test_parked_and_crashed_journeys_give_the_outputs_of_one_that_never_left(seed: int) -> None:
    events = _events(300, seed)
    expected = _reference(events)
    rng = random.Random(seed)
    committed: tuple[bytes | None, int] = (None, 0)
    floor: dict[str, int] = {}

    def committed_floor() -> Floor:
        return floor

    store = MemoryParkingStore()
    build = _builder(Parking(store, 1.0, committed_floor))
    live: JourneyLogic | None = None
    at, crashes, parks, steps = 0, 0, 0, 0
    while at < len(events):
        steps += 1
        action = rng.random()
        if action < 0.25 and live is not None:  # idle: parked, dropped from Bytewax
            _, discard = live.on_notify()
            live = None if discard else live
            parks += 1
        elif action < 0.35:  # an epoch commits
            committed = (live.snapshot() if live is not None else None, at)
            floor = {LANE: at}
        elif action < 0.42 and steps < 2_000:  # kill -9: back to the commit, replay
            snap, at = committed
            live = build(snap) if snap is not None else None
            crashes += 1
        else:
            live = live or build(None)
            out, discard = live.on_batch([events[at]])
            assert list(out) == expected[at], f"event {at}, after {crashes} crashes"
            live = None if discard else live
            at += 1
    assert crashes > 5 and parks > 20
    floor = {LANE: len(events) + 1}  # all committed: what no resume can need goes
    live = live or build(None)
    live.on_batch([replace(events[-1], outputs=(), seq=len(events))])
    live.on_notify()
    assert len(store.versions("c1")) <= 2  # the newest committed one, and the new one


def test_a_replayed_event_already_folded_is_not_counted_twice() -> None:
    """Several lanes: a version may hold an event the replay brings again."""
    events = _events(3, seed=1)
    logic = _builder(Parking(MemoryParkingStore(), 1.0, dict))(None)
    logic.on_batch(events[:2])
    before = logic.snapshot()
    again, _ = logic.on_batch([events[1]])  # seq 1 again: folded on a copy
    assert logic.snapshot() == before
    assert len(list(again)) >= 1


def test_without_recovery_only_the_newest_version_is_kept_and_a_forget_deletes() -> None:
    store = MemoryParkingStore()
    build = _builder(Parking(store, 1.0))
    events = [e for e in _events(40, seed=3) if not e.outputs]
    for event in events[:5]:
        logic = build(None)
        logic.on_batch([event])
        logic.on_notify()
        [version] = store.versions("c1")
        assert decode_version(version)[0] == {LANE: event.seq}
    logic = build(None)
    _, discard = logic.on_batch([Resolved("c1", events[6].event, (FORGET,), lane=LANE, seq=99)])
    assert discard and store.versions("c1") == []


def test_a_merge_or_erasure_forgets_the_customers_it_names_and_no_other() -> None:
    event = InteractionEvent.model_validate(make_event(1))
    merge = IdentityMerge.model_validate(
        {
            "id": "m",
            "survivor_id": "s",
            "merged_id": "old",
            "event_id": event.id,
            "reason": "shared identifier",
            "time": event.time,
            "linking_identifiers": [],
        }
    )
    erasure = IdentityErasure.model_validate(
        {
            "id": "x",
            "customer_id": "gone",
            "event_id": event.id,
            "time": event.time,
            "existed": True,
            "identifiers_removed": 1,
            "aliases_removed": 0,
        }
    )
    resolved = Resolved("s", event, (merge, erasure), lane=LANE, seq=7)
    forgets = forgotten_customers(resolved)
    assert [(f.customer_id, f.seq, f.outputs) for f in forgets] == [
        ("old", 7, (FORGET,)),
        ("gone", 7, (FORGET,)),
    ]
    assert forgotten_customers(Resolved("s", event, lane=LANE, seq=8)) == []


def test_a_created_customer_reads_nothing_and_overwrites_a_crashed_runs_versions() -> None:
    events = _events(3, 7)
    store = MemoryParkingStore()
    parking = Parking(store, 1.0, lambda: {})
    # a crashed run parked c1 after its first two events; the restart replays them
    crashed = _builder(parking)(None)
    crashed.on_batch(events[:2])
    crashed.on_notify()
    assert len(store.versions("c1")) == 1
    reads = parking.calls[0]
    live = _builder(parking)(None)
    out = [list(live.on_batch([e])[0]) for e in events[:2]]
    assert parking.calls[0] == reads  # created by events[0]: nothing read
    assert out == _reference(events)[:2]
    live.on_notify()
    # the crashed run's version is gone: the one left holds each event once
    (version,) = store.versions("c1")
    assert decode_version(version)[0] == {LANE: 1}
    back = _builder(parking)(None)
    assert list(back.on_batch([events[2]])[0]) == _reference(events)[2]
