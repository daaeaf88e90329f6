"""The profile half of the store contract: memory and Redis keep profiles alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.envelope import InteractionEvent
from state.profile_hash import ProfileRules, delta_for
from state.store import ProfileStore, ResolveRequest
from tests.conftest import make_event
from tests.state.conftest import StoreFactory

MINUTE = 60_000


def ev(n: int, minute: int, **data: Any) -> InteractionEvent:
    raw = make_event(n, **data)
    raw["time"] = datetime.fromtimestamp(1_772_445_600 + minute * 60, tz=UTC).isoformat()
    if "type" in data:
        raw["type"] = data.pop("type")
        raw["data"].pop("type")
    return InteractionEvent.model_validate(raw)


def feed(store: ProfileStore, events: list[InteractionEvent]) -> list[Any]:
    """Resolve then apply, as the flow does; return the published profiles."""
    results = store.resolve_batch(
        [ResolveRequest(e.id, e.epoch_ms, dict(e.data.identifiers)) for e in events]
    )
    deltas = [
        delta_for(r.customer_id, e) for r, e in zip(results, events, strict=True) if r.customer_id
    ]
    return store.apply_profiles(deltas)


class TestProfileContract:
    def test_fields_follow_the_events(self, store: ProfileStore) -> None:
        ids = {"email": "ann@example.com"}
        feed(
            store,
            [
                ev(1, 0, identifiers={**ids, "cookie_id": "ck1"}),
                ev(2, 1, identifiers=ids, channel="store", touchpoint="store.paris", amount=30.25),
                ev(3, 2, identifiers=ids, case_id="k1", type="cx.service_desk.case.opened"),
                ev(4, 3, identifiers=ids, nps=3, csat=2, sentiment=-0.5, consent={"sms": False}),
                ev(
                    5,
                    4,
                    identifiers=ids,
                    amount=10.0,
                    type="cx.order.placed",
                    journey_stage="purchase",
                ),
            ],
        )
        cid = store.lookup("email", "ann@example.com")
        assert cid is not None
        profile = store.profile(cid)
        assert profile is not None
        assert profile.identifiers == {"email": ["ann@example.com"], "cookie_id": ["ck1"]}
        assert (profile.event_count, profile.version) == (5, 5)
        assert profile.channel_counts == {"store": 1, "web": 4}
        assert (profile.lifetime_value, profile.orders) == (40.25, 1)
        assert (profile.last_nps, profile.last_csat, profile.sentiment) == (3, 2, -0.5)
        assert profile.consent == {"sms": False}
        assert profile.open_cases == ["k1"]
        assert profile.journey_stage == "purchase"
        assert profile.last_event_id == "evt-5"
        assert [r["id"] for r in profile.recent] == ["evt-1", "evt-2", "evt-3", "evt-4", "evt-5"]

    def test_arrival_order_does_not_matter(self, store_factory: StoreFactory) -> None:
        events = [
            ev(
                n,
                n,
                identifiers={"email": "a@b.co"},
                nps=n % 11,
                csat=1 + n % 5,
                consent={"email": n % 2 == 0},
                case_id=f"k{n % 3}",
                type="cx.chat.case.opened" if n % 2 else "cx.chat.case.resolved",
            )
            for n in range(12)
        ]
        views = []
        for seed in range(3):
            store = store_factory(rules=ProfileRules(recent_limit=4))
            shuffled = events[:]
            random.Random(seed).shuffle(shuffled)
            feed(store, shuffled)
            profile = store.profile(store.lookup("email", "a@b.co") or "")
            assert profile is not None
            views.append(profile.model_dump(exclude={"customer_id"}))  # named by first arrival
        assert views[0] == views[1] == views[2]
        assert [r["id"] for r in views[0]["recent"]] == ["evt-8", "evt-9", "evt-10", "evt-11"]

    def test_publication_is_rate_limited_in_event_time(self, store_factory: StoreFactory) -> None:
        store = store_factory(rules=ProfileRules(emit_interval_ms=10 * MINUTE))
        ids = {"crm_id": "C-1"}
        assert [p.version for p in feed(store, [ev(1, 0, identifiers=ids)])] == [1]
        assert feed(store, [ev(2, 5, identifiers=ids)]) == []  # 5 min later: pending
        # Another customer's event moves event time on: the pending change goes out.
        published = feed(store, [ev(3, 16, identifiers={"crm_id": "C-2"})])
        assert sorted(p.version for p in published) == [1, 2]
        assert feed(store, [ev(4, 17, identifiers=ids)]) == []
        assert [p.version for p in store.flush_pending()] == [3]
        assert store.flush_pending() == []

    def test_merges_fold_profiles(self, store: ProfileStore) -> None:
        feed(
            store,
            [
                ev(1, 0, identifiers={"cookie_id": "ck"}, amount=5.0, nps=2),
                ev(2, 1, identifiers={"email": "a@b.co"}, channel="email", amount=7.5),
            ],
        )
        feed(store, [ev(3, 2, identifiers={"email": "a@b.co", "cookie_id": "ck"})])
        cid = store.lookup("cookie_id", "ck")
        assert cid is not None and cid == store.lookup("email", "a@b.co")
        profile = store.profile(cid)
        assert profile is not None
        assert (profile.event_count, profile.version, profile.lifetime_value) == (3, 3, 12.5)
        assert profile.channel_counts == {"email": 1, "web": 2}
        assert profile.last_nps == 2
        assert profile.first_seen.minute == 0 and profile.last_event_id == "evt-3"
        assert len(profile.recent) == 3

    def test_erase_removes_the_profile_and_it_stays_gone(self, store: ProfileStore) -> None:
        feed(store, [ev(1, 0, identifiers={"email": "a@b.co"})])
        cid = store.lookup("email", "a@b.co") or ""
        late = delta_for(cid, ev(2, 1, identifiers={"email": "a@b.co"}))
        store.erase(cid)
        assert store.profile(cid) is None
        assert store.apply_profiles([late]) == []  # a delta in flight does not resurrect it
        assert store.profile(cid) is None
        assert store.flush_pending() == []


@pytest.mark.parametrize("hashing", [False, True])
def test_profiles_show_stored_identifiers(store_factory: StoreFactory, hashing: bool) -> None:
    from state.hashing import IdentifierHasher

    store = store_factory(hasher=IdentifierHasher(b"k") if hashing else None)
    feed(store, [ev(1, 0, identifiers={"email": "a@b.co"})])
    profile = store.profile(store.lookup("email", "a@b.co") or "")
    assert profile is not None
    shown = profile.identifiers["email"][0]
    assert (shown == "a@b.co") is not hashing


def test_a_store_that_does_not_publish_still_keeps_profiles(store_factory: StoreFactory) -> None:
    store = store_factory(rules=ProfileRules(publish=False))
    assert feed(store, [ev(1, 0, identifiers={"crm_id": "C-1"})]) == []
    assert feed(store, [ev(2, 90, identifiers={"crm_id": "C-1"})]) == []
    assert store.flush_pending() == []
    profile = store.profile(store.lookup("crm_id", "C-1") or "")
    assert profile is not None and profile.version == 2
