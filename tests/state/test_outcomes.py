"""A re-run event reports the merges and conflicts it made the first time (both stores).

After a crash Bytewax re-processes events whose merges Redis already holds, and a
retried call may re-send a batch whose script already ran: a fresh walk of the
graph finds nothing left to merge, so without a record the merge's outputs (the
IdentityMerge event, the merged-away customer's tombstone) would never be sent.
"""

from __future__ import annotations

import redis

from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from state.store import Conflict, IdentityPolicy, Merge, ProfileStore, new_customer_id
from tests.state.conftest import StoreFactory
from tests.state.test_store_contract import NO_WEAK, cid, one, req

ANN = "email:ann@example.com"
COOKIE = "cookie_id:ck-1"


def merge_e3(store: ProfileStore) -> Merge:
    """e1 and e2 create two customers, e3 merges e1's into e2's."""
    one(store, "e1", 1_000, cookie_id="ck-1")
    one(store, "e2", 2_000, email="ann@example.com")
    (merge,) = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges
    assert (merge.survivor_id, merge.merged_id) == (new_customer_id("e2"), new_customer_id("e1"))
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

    def test_the_customer_is_where_the_event_lands_now(self, store_factory: StoreFactory) -> None:
        store = store_factory(NO_WEAK)
        merge = merge_e3(store)
        crm = cid(one(store, "e4", 4_000, crm_id="C-1", phone="+14155550100"))
        later = one(store, "e5", 5_000, crm_id="C-1", email="ann@example.com")
        assert [(m.survivor_id, m.merged_id) for m in later.merges] == [(crm, merge.survivor_id)]
        again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        assert again.customer_id == crm  # canonical now ...
        assert again.merges == (merge,)  # ... the merge as it happened (same output id)
        assert one(store, "e5", 5_000, crm_id="C-1", email="ann@example.com") == later

    def test_refused_and_limited_conflicts_are_reported_again(self, store: ProfileStore) -> None:
        ann = cid(one(store, "e1", 1, crm_id="C-1", email="ann@example.com"))
        bob = cid(one(store, "e2", 2, crm_id="C-2", phone="+14155550100"))
        for n in range(3, 7):  # fill ann's emails up to the limit (5)
            one(store, f"e{n}", n, crm_id="C-1", email=f"a{n}@example.com")
        request = {"email": "ann@example.com", "phone": "+14155550100", "x_mail": "a"}
        first = one(store, "e7", 7, **request, social_handle="@a")
        assert first.conflicts == (
            Conflict(
                (ann, bob), "e7", "crm_id limit 1 would be exceeded", (ANN, "phone:+14155550100")
            ),
        )
        full = one(store, "e8", 8, crm_id="C-1", email="a8@example.com")
        assert full.conflicts == (
            Conflict((ann,), "e8", "email limit 5 reached", ("email:a8@example.com",)),
        )
        assert one(store, "e7", 7, **request, social_handle="@a") == first
        assert one(store, "e8", 8, crm_id="C-1", email="a8@example.com") == full

    def test_a_rerun_adds_what_its_own_walk_does_now(self, store_factory: StoreFactory) -> None:
        store = store_factory(IdentityPolicy(limits={"phone": 1}, weak_types=()))
        ann = cid(one(store, "e1", 1, cookie_id="ck-1"))
        bob = cid(one(store, "e2", 2, email="ann@example.com", phone="+14155550101"))
        request = {"cookie_id": "ck-1", "email": "ann@example.com", "phone": "+14155550102"}
        first = one(store, "e3", 3, **request)
        limited = Conflict((bob,), "e3", "phone limit 1 reached", ("phone:+14155550102",))
        assert [(m.survivor_id, m.merged_id) for m in first.merges] == [(bob, ann)]
        assert first.conflicts == (limited,)
        # the phone e3 could not link goes to a new customer; re-running e3 now meets it
        carl = cid(one(store, "e4", 4, phone="+14155550102", social_handle="@c"))
        again = one(store, "e3", 3, **request)
        assert again.merges == first.merges
        assert again.conflicts == (
            Conflict(
                (bob, carl),
                "e3",
                "phone limit 1 would be exceeded",
                (ANN, "phone:+14155550102", COOKIE),
            ),
            limited,
        )
        assert one(store, "e3", 3, **request) == again  # the record grew by the refusal

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

    def test_outcomes_are_kept_for_the_window(self, store_factory: StoreFactory) -> None:
        store = store_factory(rules=ProfileRules(idempotence_window_ms=10_000))
        merge = merge_e3(store)
        one(store, "e4", 12_000, email="bob@example.com")
        one(store, "e5", 12_500, phone="+14155550100")
        # an outcome recorded within the window of the latest one keeps e3's
        one(store, "e6", 13_000, email="bob@example.com", phone="+14155550100")
        again = one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com")
        assert again.merges == (merge,)
        one(store, "e7", 13_500, cookie_id="ck-7")
        one(store, "e8", 14_000, cookie_id="ck-7", email="bob@example.com")  # e3 out now
        assert one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges == ()
        assert one(store, "e6", 13_000, email="bob@example.com", phone="+14155550100").merges

    def test_a_window_of_zero_records_nothing(self, store_factory: StoreFactory) -> None:
        store = store_factory(rules=ProfileRules(idempotence_window_ms=0))
        merge_e3(store)
        assert one(store, "e3", 3_000, cookie_id="ck-1", email="ann@example.com").merges == ()


def test_redis_keeps_two_bounded_keys(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisProfileStore(
        redis_client, redis_prefix, rules=ProfileRules(idempotence_window_ms=50)
    )
    before = store.round_trips
    for n in range(100):  # each pair of events ends in one merge, at event time 10 n
        store.resolve_batch(
            [
                req(f"a{n}", 10 * n, cookie_id=f"ck-{n}"),
                req(f"b{n}", 10 * n, email=f"u{n}@x.io"),
                req(f"m{n}", 10 * n, cookie_id=f"ck-{n}", email=f"u{n}@x.io"),
            ]
        )
    assert store.round_trips - before == 100  # still one call per batch
    keys = redis_client.hkeys(f"{redis_prefix}outcomes")
    recorded = {k.decode() if isinstance(k, bytes) else k for k in keys}
    assert recorded == {f"m{n}" for n in range(94, 100)}  # time >= 990 - 50
    assert redis_client.zcard(f"{redis_prefix}outcomes:ms") == len(recorded)
