"""Applying an event to a profile twice changes it once (issue #9), in both stores.

After a crash Bytewax re-reads Kafka from its last snapshot, and a retried store
call may re-send a batch whose script already ran: the profile step sees events
again that Redis already folded in. Such an event changes nothing within the
idempotence window (event time before the customer's latest event) or within the
retention (wall-clock time since it was applied), whichever is longer: a backlog
replayed from its start counts every event once however much event time it spans.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.envelope import InteractionEvent
from schemas.outputs import ProfileSnapshot
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileDelta, ProfileRules, delta_for
from state.redis_store import RedisProfileStore
from state.store import ProfileStore, ResolveRequest
from tests.state.conftest import FakeClock, StoreFactory, delete_prefix
from tests.state.test_profile_contract import MINUTE, ev, feed

ANN = {"email": "ann@example.com"}


def deltas_of(store: ProfileStore, events: list[InteractionEvent]) -> list[ProfileDelta]:
    """Resolve ``events`` (idempotent itself) and return their profile deltas."""
    results = store.resolve_batch(
        [ResolveRequest(e.id, e.epoch_ms, dict(e.data.identifiers)) for e in events]
    )
    return [
        delta_for(r.customer_id, e) for r, e in zip(results, events, strict=True) if r.customer_id
    ]


def view(store: ProfileStore, id_type: str = "email", value: str = "ann@example.com") -> Any:
    customer = store.lookup(id_type, value)
    assert customer is not None
    profile = store.profile(customer)
    assert profile is not None
    return profile.model_dump()


def shopping(n: int, minute: int, **data: Any) -> InteractionEvent:
    """An order on the store channel: moves every counter a profile has."""
    return ev(
        n, minute, identifiers=ANN, channel="store", amount=10.0 + n, type="cx.order.placed", **data
    )


class TestReapplying:
    def test_a_whole_batch_again_changes_nothing(self, store: ProfileStore) -> None:
        events = [shopping(n, n, nps=n % 11) for n in range(1, 6)]
        feed(store, events)
        once = view(store)
        assert (once["version"], once["orders"], once["lifetime_value"]) == (5, 5, 65.0)
        store.apply_profiles(deltas_of(store, events))
        store.apply_profiles(deltas_of(store, events[::-1]))  # any order
        assert view(store) == once

    def test_a_subset_mixed_with_new_events(self, store_factory: StoreFactory) -> None:
        events = [shopping(n, n, csat=1 + n % 5) for n in range(1, 8)]
        replayed = store_factory()
        feed(replayed, events[:5])
        feed(replayed, [events[1], events[5], events[3], events[6], events[5]])
        straight = store_factory()
        feed(straight, events)
        assert view(replayed)["version"] == 7
        assert view(replayed) == view(straight)

    def test_a_duplicate_within_one_batch_counts_once(self, store: ProfileStore) -> None:
        event = shopping(1, 0)
        feed(store, [event, event, shopping(2, 1), event])
        assert (view(store)["version"], view(store)["orders"]) == (2, 2)

    def test_after_a_merge_both_sides_events_stay_applied(self, store: ProfileStore) -> None:
        cookie = ev(1, 0, identifiers={"cookie_id": "ck"}, amount=5.0)
        email = ev(2, 1, identifiers=ANN, channel="email", amount=7.5)
        early = deltas_of(store, [cookie, email])  # customer ids from before the merge
        store.apply_profiles(early)
        feed(store, [ev(3, 2, identifiers={**ANN, "cookie_id": "ck"})])
        merged = view(store)
        assert (merged["version"], merged["lifetime_value"]) == (3, 12.5)
        store.apply_profiles(early)  # through the aliases to the survivor: no-ops
        feed(store, [cookie, email])  # resolved again: no-ops too
        assert view(store) == merged

    def test_erase_forgets_the_applied_events(self, store: ProfileStore) -> None:
        events = [shopping(1, 0), shopping(2, 1)]
        feed(store, events)
        store.erase(store.lookup("email", "ann@example.com") or "")
        feed(store, events)  # a replay of old events re-creates the customer, from scratch
        assert view(store)["version"] == 2


class TestWindow:
    def test_ids_are_kept_for_the_window_before_the_latest_event(
        self, store_factory: StoreFactory
    ) -> None:
        # the window alone (no wall-clock marks)
        rules = ProfileRules(idempotence_window_ms=10 * MINUTE, outcome_retention_ms=0)
        store = store_factory(rules=rules)
        at_0, at_5, at_10, at_20 = (shopping(n, m) for n, m in ((1, 0), (2, 5), (3, 10), (4, 20)))
        feed(store, [at_0, at_5, at_10])
        feed(store, [at_0, at_5])  # 10 min window before minute 10: both still known
        assert view(store)["version"] == 3
        feed(store, [at_20])  # the window now starts at minute 10 (inclusive)
        feed(store, [at_10, at_20])
        assert view(store)["version"] == 4
        # Forgotten: applied again, as the dedupe step lets through a duplicate older
        # than its TTL (both default to 7 days).
        feed(store, [at_5])
        assert (view(store)["version"], view(store)["orders"]) == (5, 5)

    def test_within_the_retention_a_backlog_counts_once(self, store_factory: StoreFactory) -> None:
        clock = FakeClock()
        rules = ProfileRules(idempotence_window_ms=10 * MINUTE, outcome_retention_ms=60_000)
        store = store_factory(rules=rules, clock=clock)
        # 30 days of event time, applied within one minute of wall time
        backlog = [shopping(n, n * 24 * 60) for n in range(30)]
        feed(store, backlog)
        clock.advance(60.0)  # exactly the retention later: replayed from its start
        feed(store, backlog)
        assert (view(store)["version"], view(store)["orders"]) == (30, 30)
        clock.advance(0.001)  # past it: only the window remembers (the last event)
        feed(store, backlog[-2:])
        assert view(store)["version"] == 31
        # marked again just now: within the retention it counts once more, not twice
        feed(store, backlog[-2:])
        assert view(store)["version"] == 31

    def test_marks_follow_merges_and_not_erasures(self, store_factory: StoreFactory) -> None:
        clock = FakeClock()
        rules = ProfileRules(idempotence_window_ms=10 * MINUTE)
        store = store_factory(rules=rules, clock=clock)
        cookie = ev(1, 0, identifiers={"cookie_id": "ck-1"}, channel="web")
        email = ev(2, 1, identifiers=ANN, channel="store")
        later = ev(3, 40 * 24 * 60, identifiers={**ANN, "cookie_id": "ck-1"}, channel="web")
        feed(store, [cookie, email, later])  # later merges the two customers
        merged = view(store)
        assert merged["version"] == 3
        clock.advance(30.0)
        feed(store, [cookie, email, later])  # the first two are weeks behind the window
        assert view(store) == merged
        store.erase(store.lookup("email", "ann@example.com") or "")
        feed(store, [cookie, email])  # a re-created customer counts its events afresh
        assert view(store, "cookie_id", "ck-1")["version"] == 1
        assert view(store)["version"] == 1

    def test_a_window_of_zero_keeps_nothing(self, store_factory: StoreFactory) -> None:
        store = store_factory(rules=ProfileRules(idempotence_window_ms=0))
        feed(store, [shopping(1, 0)])
        feed(store, [shopping(1, 0)])
        assert view(store)["version"] == 2


def test_a_lost_publication_goes_out_again(store_factory: StoreFactory) -> None:
    """A retried call whose first reply was lost: the profile it made due is published
    again, once the rate limit allows or at the end of input."""
    store = store_factory(rules=ProfileRules(emit_interval_ms=10 * MINUTE))
    event = shopping(1, 0)
    deltas = deltas_of(store, [event])
    assert [p.version for p in store.apply_profiles(deltas)] == [1]  # the reply that got lost
    assert store.apply_profiles(deltas) == []  # the retry: unchanged, not due yet ...
    assert [p.version for p in store.flush_pending()] == [1]  # ... but pending
    store.apply_profiles(deltas)
    later = feed(store, [ev(9, 30, identifiers={"crm_id": "C-9"})])  # event time moves on
    assert sorted(p.version for p in later) == [1, 1]


def test_redis_keeps_the_applied_ids_bounded(redis_client: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    store = RedisProfileStore(
        redis_client, prefix, rules=ProfileRules(idempotence_window_ms=60 * MINUTE)
    )
    try:
        for hour in range(10):
            feed(store, [shopping(hour * 100 + m, hour * 60 + m) for m in range(0, 60, 5)])
        customer = store.lookup("email", "ann@example.com")
        applied = redis_client.zrange(f"{prefix}prof:{customer}:applied", 0, -1, withscores=True)
        # the last hour's 12 events plus the one exactly at the window's start
        assert len(applied) == 13
        assert view(store)["version"] == 120
    finally:
        delete_prefix(redis_client, prefix)


# --------------------------------------------------------------------------------------
# Randomized: the twin and Redis publish the same profiles, duplicates and merges included.

IDENTIFIERS = [
    {"email": "a@x.io"},
    {"cookie_id": "ck1"},
    {"email": "a@x.io", "cookie_id": "ck1"},
    {"phone": "+14155550101"},
    {"crm_id": "C1", "phone": "+14155550101"},
]
events_st = st.lists(
    st.tuples(st.integers(0, 25), st.integers(0, 120), st.integers(0, len(IDENTIFIERS) - 1)),
    min_size=1,
    max_size=15,
)


def _event(n: int, minute: int, ids: int) -> InteractionEvent:
    # the id fixes time and identifiers, so a repeated id is a true re-delivery
    rng = random.Random(n)
    extra: dict[str, Any] = {"nps": rng.randrange(11)} if rng.random() < 0.3 else {}
    if rng.random() < 0.3:
        extra["consent"] = {"email": rng.random() < 0.5}
    return ev(n, minute, identifiers=IDENTIFIERS[ids], amount=float(n % 7), **extra)


def _published(snapshots: list[ProfileSnapshot]) -> list[dict[str, Any]]:
    return [p.model_dump() for p in snapshots]


@pytest.fixture(scope="module")
def example_prefix(redis_client: redis.Redis) -> Iterator[Callable[[], str]]:
    """Fresh prefixes under one base, deleted in one scan at the end (a scan per
    hypothesis example would dominate the test on a busy server)."""
    base = f"test:{uuid.uuid4().hex[:12]}:"
    count = itertools.count()
    yield lambda: f"{base}{next(count)}:"
    delete_prefix(redis_client, base)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(events_st, min_size=1, max_size=6),
    window=st.sampled_from([0, 30, 10_000]),
    retention=st.sampled_from([0, 50_000, 3_600_000]),
)
def test_memory_and_redis_publish_alike(
    redis_client: redis.Redis,
    example_prefix: Callable[[], str],
    batches: list[list[tuple[int, int, int]]],
    window: int,
    retention: int,
) -> None:
    # hypothesis draws ids, not times: an id always comes back with its first time
    times: dict[int, tuple[int, int]] = {}
    rules = ProfileRules(
        emit_interval_ms=15 * MINUTE,
        recent_limit=3,
        idempotence_window_ms=window * MINUTE,
        outcome_retention_ms=retention,
    )
    clock = FakeClock()  # 20 s a batch: a retention of 50 s expires marks
    memory = MemoryProfileStore(rules=rules, clock=clock)
    remote = RedisProfileStore(redis_client, example_prefix(), rules=rules, clock=clock)
    for step, batch in enumerate(batches):
        clock.advance(20.0)
        events = [_event(n, *times.setdefault(n, (minute, ids))) for n, minute, ids in batch]
        assert _published(feed(remote, events)) == _published(feed(memory, events)), step
    for customer in memory.customers():
        assert remote.profile(customer) == memory.profile(customer)
    assert _published(remote.flush_pending()) == _published(memory.flush_pending())
