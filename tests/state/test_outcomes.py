"""A re-run event gets exactly the result it got the first time (both stores).

After a crash Bytewax re-processes events whose merges Redis already holds, and a
retried call may re-send a batch whose script already ran: a fresh walk of the
graph finds nothing left to merge, so without a record the merge's outputs (the
IdentityMerge event, the merged-away customer's tombstone) would never be sent,
and the event could land on another customer id than the first time.
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
    # every event is recorded, for the window: time >= 990 - 50
    assert recorded == {f"{kind}{n}" for n in range(94, 100) for kind in "abm"}
    assert redis_client.zcard(f"{redis_prefix}outcomes:ms") == len(recorded)
