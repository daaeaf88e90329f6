"""A re-run event gets exactly the result it got the first time (both stores).

After a crash Bytewax re-processes events whose merges Redis already holds, and a
retried call may re-send a batch whose script already ran: a fresh walk of the
graph finds nothing left to merge, so without a record the merge's outputs (the
IdentityMerge event, the merged-away customer's tombstone) would never be sent,
and the event could land on another customer id than the first time.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from state.memory import MemoryProfileStore
from state.outcomes import prune_budget
from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from state.store import Conflict, IdentityPolicy, Merge, ProfileStore, new_customer_id
from tests.state.conftest import FakeClock, StoreFactory, delete_prefix
from tests.state.test_store_contract import NO_WEAK, cid, one, req

ANN = "email:ann@example.com"
DAY = 86_400_000
COOKIE = "cookie_id:ck-1"


def merge_e3(store: ProfileStore) -> Merge:
    """e1 and e2 create two customers, e3 merges e2's into e1's (the earlier)."""
    one(store, "e1", 1_000, cookie_id="ck-1")
    one(store, "e2", 2_000, email="ann@example.com")
    (merge,) = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges
    assert (merge.survivor_id, merge.merged_id) == (new_customer_id("e1"), new_customer_id("e2"))
    return merge


class TestRecordedOutcomes:
    def test_a_rerun_reports_the_same_merge(self, store: ProfileStore) -> None:
        merge = merge_e3(store)
        graph = {c: store.identifiers(c) for c in store.customers()}
        for _ in range(2):
            again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
            assert again.merges == (merge,) and not again.created and again.conflicts == ()
            assert again.customer_id == merge.survivor_id
        assert {c: store.identifiers(c) for c in store.customers()} == graph
        # only the event that merged reports it, not others naming the same identifiers
        assert one(store, "e9", 9_000, cookie_id="ck-1", email="ann@example.com").merges == ()

    def test_a_rerun_within_one_batch_and_after_a_lost_reply(self, store: ProfileStore) -> None:
        batch = [
            req("e1", 1, cookie_id="ck-1"),
            req("e2", 2, email="ann@example.com"),
            req("e3", 3, cookie_id="ck-1", email="ann@example.com"),
            req("e3", 3, cookie_id="ck-1", email="ann@example.com"),  # re-delivered at once
        ]
        first = store.resolve_batch(batch)
        assert first[2].merges == first[3].merges != ()
        retried = store.resolve_batch(batch)  # the reply was lost: the flow sends it again
        assert [r.merges for r in retried] == [(), (), first[2].merges, first[2].merges]

    def test_a_rerun_keeps_its_customer_merged_away_since(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory(NO_WEAK)
        one(store, "e1", 1_000, cookie_id="ck-1")
        one(store, "e2", 2_000, email="ann@example.com")
        first = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        (merge,) = first.merges
        crm = cid(one(store, "e4", 500, crm_id="C-1", phone="+14155550100"))  # earlier
        later = one(store, "e5", 5_000, crm_id="C-1", email="ann@example.com")
        assert [(m.survivor_id, m.merged_id) for m in later.merges] == [(crm, merge.survivor_id)]
        again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        # the customer it had then (the journey step keys it alike), not the canonical now
        assert again == first and again.customer_id == merge.survivor_id
        assert store.canonical(cid(again)) == crm
        assert one(store, "e5", 5_000, crm_id="C-1", email="ann@example.com") == later

    def test_the_whole_result_comes_back_withdrawn_consent_too(
        self, store_factory: StoreFactory
    ) -> None:
        from state.profile_hash import ProfileDelta

        store = store_factory()
        ann = cid(one(store, "e1", 1_000, email="ann@example.com"))
        optout = ProfileDelta(ann, "e1", 1_000, "web", "web.home", consent={"marketing": "0"})
        store.apply_profiles([optout])
        first = one(store, "e2", 2_000, email="ann@example.com", phone="+14155550100")
        assert first.opted_out == ("marketing",) and first.opted_out_ms == (1_000,)
        grant = ProfileDelta(ann, "e3", 3_000, "web", "web.home", consent={"marketing": "1"})
        store.apply_profiles([grant])
        assert one(store, "e4", 4_000, email="ann@example.com").opted_out == ()
        # e2 is re-processed: the decide step sees what it saw the first time
        assert one(store, "e2", 2_000, email="ann@example.com", phone="+14155550100") == first

    def test_refused_and_limited_conflicts_are_reported_again(self, store: ProfileStore) -> None:
        ann = cid(one(store, "e1", 1, crm_id="C-1", email="ann@example.com"))
        bob = cid(one(store, "e2", 2, crm_id="C-2", phone="+14155550100"))
        for n in range(3, 7):  # fill ann's emails up to the limit (5)
            one(store, f"e{n}", n, crm_id="C-1", email=f"a{n}@example.com")
        request = {"email": "ann@example.com", "phone": "+14155550100", "x_mail": "a"}
        first = one(store, "e7", 7, **request, social_handle="@a")
        assert first.conflicts == (
            Conflict(
                (ann, bob),
                "e7",
                "crm_id limit 1 would be exceeded",
                (ANN, "phone:+14155550100"),
                ("phone:+14155550100",),
            ),
        )
        full = one(store, "e8", 8, crm_id="C-1", email="a8@example.com")
        a8 = ("email:a8@example.com",)
        assert full.conflicts == (Conflict((ann,), "e8", "email limit 5 reached", a8, a8),)
        assert one(store, "e7", 7, **request, social_handle="@a") == first
        assert one(store, "e8", 8, crm_id="C-1", email="a8@example.com") == full

    def test_a_rerun_does_not_walk_again(self, store_factory: StoreFactory) -> None:
        store = store_factory(IdentityPolicy(limits={"phone": 1}, weak_types=()))
        ann = cid(one(store, "e1", 1, cookie_id="ck-1"))  # the survivor: earliest event
        one(store, "e2", 2, email="ann@example.com", phone="+14155550101")
        request = {"cookie_id": "ck-1", "email": "ann@example.com", "phone": "+14155550102"}
        first = one(store, "e3", 3, **request)
        limited = Conflict(
            (ann,), "e3", "phone limit 1 reached", ("phone:+14155550102",), ("phone:+14155550102",)
        )
        assert first.conflicts == (limited,)
        # the phone e3 could not link goes to a new customer; a fresh walk of e3 would
        # now meet it (a refusal), the recorded result does not
        one(store, "e4", 4, phone="+14155550102", social_handle="@c")
        graph = {c: store.identifiers(c) for c in store.customers()}
        assert one(store, "e3", 3, **request) == first
        assert {c: store.identifiers(c) for c in store.customers()} == graph

    def test_an_erased_customer_is_never_reported_again(self, store: ProfileStore) -> None:
        merge = merge_e3(store)
        store.erase(merge.survivor_id)
        again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        # the identifiers are free again: the event creates its own customer, and the
        # erased ids appear nowhere in the result
        assert again.created and again.customer_id == new_customer_id("e3")
        assert (again.merges, again.conflicts) == ((), ())
        # the ids come back only as new customers re-created by their own events
        one(store, "e2", 2_000, email="bob@example.com")
        assert one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges == ()

    def test_outcomes_are_kept_for_the_retention_whatever_the_event_time(
        self, store_factory: StoreFactory
    ) -> None:
        clock = FakeClock()
        store = store_factory(rules=ProfileRules(outcome_retention_ms=10_000), clock=clock)
        merge = merge_e3(store)
        # a backlog: the latest event is 60 days of event time after e3 ...
        one(store, "e4", 60 * DAY, email="bob@example.com")
        one(store, "e5", 60 * DAY, cookie_id="ck-1", email="bob@example.com")  # e3's merge
        clock.advance(10.0)  # ... and exactly the retention passed: e3 is still recorded
        again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        assert again.merges == (merge,) and again.customer_id == merge.survivor_id
        clock.advance(0.001)  # past it: walked afresh, where its identifiers lead now
        fresh = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        assert (fresh.merges, fresh.created) == ((), False)
        assert fresh.customer_id == store.lookup("cookie_id", "ck-1")
        clock.advance(9.0)  # and recorded again, from now on: reading never extended it
        assert one(store, "e3", 3_000, cookie_id="ck-9").merges == ()
        assert store.identifiers(cid(fresh)).get("cookie_id") == ["ck-1"]
        # e5 was recorded 19 s ago: gone; walked again it finds nothing left to merge
        assert one(store, "e5", 60 * DAY, cookie_id="ck-1", email="bob@example.com").merges == ()

    def test_a_backlog_replayed_from_its_start_takes_every_first_decision(
        self, store_factory: StoreFactory
    ) -> None:
        # 60 days of event time, one merge a day: a flow killed before its first
        # snapshot replays it all from offset 0 against the graph it left
        clock = FakeClock()
        store = store_factory(rules=ProfileRules(outcome_retention_ms=3_600_000), clock=clock)
        backlog = []
        for day in range(60):
            backlog += [
                req(f"a{day}", day * DAY, cookie_id=f"ck-{day}"),
                req(f"b{day}", day * DAY + 1, email=f"u{day}@x.io"),
                req(f"m{day}", day * DAY + 2, cookie_id=f"ck-{day}", email=f"u{day}@x.io"),
                # the next day's customer reaches back: a later merge of this one
                req(f"n{day}", day * DAY + 3, email=f"u{day}@x.io", phone=f"+1415555{day:04d}"),
            ]
        first = [store.resolve_batch(backlog[i : i + 7]) for i in range(0, len(backlog), 7)]
        assert sum(len(r.merges) for batch in first for r in batch) == 60
        clock.advance(3_000)  # 50 minutes later
        again = [store.resolve_batch(backlog[i : i + 7]) for i in range(0, len(backlog), 7)]
        assert again == first

    def test_a_retention_of_zero_records_nothing(self, store_factory: StoreFactory) -> None:
        store = store_factory(rules=ProfileRules(outcome_retention_ms=0))
        merge_e3(store)
        assert one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges == ()


def _recorded(store: ProfileStore, client: redis.Redis) -> int:
    if isinstance(store, MemoryProfileStore):
        return len(store._outcomes)
    assert isinstance(store, RedisProfileStore)
    # the wall-clock log buckets (state/lua/profile.lua): outcomes:<bucket> hashes
    buckets = [
        key
        for key in client.scan_iter(match=f"{store.prefix}outcomes:*")
        if not key.endswith(b":at")
    ]
    return sum(int(client.hlen(key)) for key in buckets)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_expired_outcomes_are_pruned_in_bounded_steps(
    redis_client: redis.Redis, redis_prefix: str, kind: str
) -> None:
    clock = FakeClock()
    rules = ProfileRules(outcome_retention_ms=50_000)
    store: ProfileStore = (
        MemoryProfileStore(rules=rules, clock=clock)
        if kind == "memory"
        else RedisProfileStore(redis_client, redis_prefix, rules=rules, clock=clock)
    )
    store.resolve_batch([req(f"old{n}", n, cookie_id=f"ck-{n}") for n in range(1000)])
    before = getattr(store, "round_trips", 0)
    for n in range(100):  # each pair of events ends in one merge, one batch a second
        clock.advance(1.0)
        store.resolve_batch(
            [
                req(f"a{n}", 10 * n, cookie_id=f"c-{n}"),
                req(f"b{n}", 10 * n, email=f"u{n}@x.io"),
                req(f"m{n}", 10 * n, cookie_id=f"c-{n}", email=f"u{n}@x.io"),
            ]
        )
    if isinstance(store, RedisProfileStore):
        assert store.round_trips - before == 100  # still one call per batch
    # Memory: the 1000 old ones expired at second 51; from then on each call pruned up
    # to prune_budget(3) = 134 of them (50 calls: all); kept: the batches of seconds
    # 50-100. Redis keeps buckets of 25 s (half the retention) and drops a bucket once
    # it can hold no current record: the clock starts a bucket, so at second 100 it
    # holds the buckets of seconds 50-74, 75-99 and 100 on, the same 153.
    assert prune_budget(3) == 134
    assert _recorded(store, redis_client) == 3 * 51
    clock.advance(60.0)  # all 153 expire, a call recording one event prunes some
    store.resolve_batch([req("late", 0, cookie_id="c-late")])
    if kind == "memory":
        assert _recorded(store, redis_client) == 153 - prune_budget(1) + 1
    else:  # second 160: the buckets before second 100 went, that of 100-124 stays
        assert _recorded(store, redis_client) == 3 + 1
    # the expired ones left are never returned: m99 is walked afresh (nothing to merge)
    assert one(store, "m99", 990, cookie_id="c-99", email="u99@x.io").merges == ()


def test_redis_records_with_the_server_clock(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisProfileStore(redis_client, redis_prefix)  # no clock: the server's TIME
    one(store, "e1", 1, cookie_id="ck-1")
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    bucket = now_ms // (3_600_000 // 2)  # the default retention's buckets (profile.lua)
    record = redis_client.hget(f"{redis_prefix}outcomes:{bucket}", "e1")
    assert record is not None
    text = record.decode() if isinstance(record, bytes) else str(record)
    recorded = int(text.partition("|")[0])
    assert 0 <= now_ms - recorded < 5_000
    brief = RedisProfileStore(
        redis_client, redis_prefix + "b:", rules=ProfileRules(outcome_retention_ms=1)
    )
    created = one(brief, "e1", 1, cookie_id="ck-1")
    time.sleep(0.01)  # past the 1 ms retention: walked again (finds its customer)
    assert one(brief, "e1", 1, cookie_id="ck-1") == replace(created, created=False)
    delete_prefix(redis_client, redis_prefix + "b:")
