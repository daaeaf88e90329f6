"""One contract for every ProfileStore: the in-memory twin and Redis behave alike."""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Sequence

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.hashing import IdentifierHasher
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileRules
from state.redis_store import SCRIPT_SHA, RedisProfileStore
from state.store import (
    MAX_IDENTIFIERS,
    Conflict,
    IdentityPolicy,
    Merge,
    ProfileStore,
    ResolveRequest,
    ResolveResult,
    new_customer_id,
)
from tests.state.conftest import REDIS_URL, FakeClock, StoreFactory, delete_prefix


def req(event_id: str, time_ms: int = 0, **identifiers: str) -> ResolveRequest:
    return ResolveRequest(event_id, time_ms, identifiers)


def one(store: ProfileStore, event_id: str, time_ms: int = 0, **identifiers: str) -> ResolveResult:
    [result] = store.resolve_batch([req(event_id, time_ms, **identifiers)])
    return result


def cid(result: ResolveResult) -> str:
    assert result.customer_id is not None
    return result.customer_id


NO_WEAK = IdentityPolicy(weak_types=())


class TestProfileStoreContract:
    def test_weak_identifiers_never_merge_two_known_customers(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory(IdentityPolicy(weak_types=("device_id", "cookie_id")))
        mum = cid(one(store, "e1", 1, email="mum@example.com", device_id="family-tablet"))
        kid = cid(one(store, "e2", 2, email="kid@example.com"))
        result = one(store, "e3", 3, email="kid@example.com", device_id="family-tablet")
        # the kid's email names the kid: the event is the kid's, mum keeps the device
        assert result.customer_id == kid and result.merges == ()
        (conflict,) = result.conflicts
        assert conflict.reason == "only device_id links two known customers"
        assert conflict.customer_ids == (kid, mum)
        assert conflict.unlinked == ("device_id:family-tablet",)
        assert store.canonical(kid) == kid
        assert store.lookup("device_id", "family-tablet") == mum
        # An anonymous visitor (only weak identifiers) still stitches to a customer.
        visitor = cid(one(store, "e4", 4, cookie_id="ck-7"))
        stitched = one(store, "e5", 5, cookie_id="ck-7", email="kid@example.com")
        assert [m.merged_id for m in stitched.merges] == [visitor]
        # A strong identifier in the link merges as before.
        both = one(store, "e6", 6, email="mum@example.com", phone="+14155550100")
        assert both.customer_id == mum

    def test_new_identifiers_create_a_customer(self, store: ProfileStore) -> None:
        result = one(store, "e1", 1_000, email="ann@example.com", cookie_id="ck-1")
        assert result == ResolveResult(new_customer_id("e1"), True, (), (), ())
        assert store.customers() == [new_customer_id("e1")]
        assert store.lookup("email", "ann@example.com") == new_customer_id("e1")
        assert store.lookup("email", "bob@example.com") is None
        assert store.identifiers(cid(result)) == {
            "email": ["ann@example.com"],
            "cookie_id": ["ck-1"],
        }

    def test_ids_are_deterministic(self, store_factory: StoreFactory) -> None:
        events = [req("e1", 1, email="a@x.io"), req("e2", 2, phone="+14155550100")]
        first = [r.customer_id for r in store_factory().resolve_batch(events)]
        again = [r.customer_id for r in store_factory().resolve_batch(events)]
        assert first == again == [new_customer_id("e1"), new_customer_id("e2")]
        assert all(re.fullmatch(r"cust-[0-9a-f]{24}", c or "") for c in first)

    def test_unknown_identifiers_attach_to_the_known_customer(self, store: ProfileStore) -> None:
        ann = cid(one(store, "e1", 1, email="ann@example.com"))
        result = one(store, "e2", 2, email="ann@example.com", phone="+14155550100", x_loyal="L7")
        assert result == ResolveResult(ann, False, (), (), ())
        assert store.identifiers(ann) == {
            "email": ["ann@example.com"],
            "phone": ["+14155550100"],
            "x_loyal": ["L7"],
        }
        assert store.lookup("x_loyal", "L7") == ann

    def test_a_batch_sees_its_earlier_requests(self, store: ProfileStore) -> None:
        results = store.resolve_batch(
            [
                req("e1", 1, email="ann@example.com"),
                req("e2", 2, email="ann@example.com", phone="+14155550100"),
                req("e3", 3, phone="+14155550100", cookie_id="ck-1"),
                req("e4", 4, cookie_id="ck-1"),
            ]
        )
        assert [r.customer_id for r in results] == [new_customer_id("e1")] * 4
        assert [r.created for r in results] == [True, False, False, False]
        assert store.customers() == [new_customer_id("e1")]

    def test_a_chain_of_links_becomes_one_customer(self, store: ProfileStore) -> None:
        a = cid(one(store, "e1", 1, cookie_id="ck-1"))
        b = cid(one(store, "e2", 2, email="ann@example.com"))
        c = cid(one(store, "e3", 3, phone="+14155550100"))
        ab = one(store, "e4", 4, cookie_id="ck-1", email="ann@example.com")
        # the survivor is the customer with the earliest event (e1), whatever its types
        assert ab.merges == (
            Merge(
                a, b, "e4", "shared email, cookie_id", ("email:ann@example.com", "cookie_id:ck-1")
            ),
        )
        bc = one(store, "e5", 5, email="ann@example.com", phone="+14155550100")
        assert [(m.survivor_id, m.merged_id) for m in bc.merges] == [(a, c)]
        assert bc.merges[0].reason == "shared email, phone"
        assert store.customers() == [a]
        for id_type, value in [
            ("cookie_id", "ck-1"),
            ("email", "ann@example.com"),
            ("phone", "+14155550100"),
        ]:
            assert store.lookup(id_type, value) == a
        assert store.canonical(a) == store.canonical(c) == store.canonical(b) == a

    def test_the_earliest_event_survives_even_without_the_crm_id(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory(NO_WEAK)  # cookies link here; weak links have their own test
        old = cid(one(store, "e1", 1_000, email="ann@example.com", cookie_id="ck-1"))
        young = cid(one(store, "e2", 9_000, crm_id="C-1"))
        result = one(store, "e3", 10_000, crm_id="C-1", cookie_id="ck-1")
        assert result.customer_id == old
        assert [(m.survivor_id, m.merged_id) for m in result.merges] == [(old, young)]
        assert result.merges[0].linking_identifiers == ("crm_id:C-1", "cookie_id:ck-1")
        assert store.identifiers(old) == {
            "crm_id": ["C-1"],
            "email": ["ann@example.com"],
            "cookie_id": ["ck-1"],
        }

    def test_equal_strength_goes_to_the_older_customer(self, store: ProfileStore) -> None:
        young = cid(one(store, "e1", 5_000, email="young@example.com"))
        old = cid(one(store, "e2", 1_000, email="old@example.com"))
        result = one(store, "e3", 6_000, email="young@example.com", phone="+14155550100")
        assert result.customer_id == young  # not merged yet: only one customer found
        result = one(store, "e4", 7_000, email="old@example.com", phone="+14155550100")
        assert [(m.survivor_id, m.merged_id) for m in result.merges] == [(old, young)]

    def test_equal_event_times_go_to_the_smaller_event_id(self, store: ProfileStore) -> None:
        # e2 arrives first; e1, as old, is the smaller event id
        by_e2 = cid(one(store, "e2", 7, cookie_id="b"))
        by_e1 = cid(one(store, "e1", 7, cookie_id="a"))
        one(store, "e3", 8, cookie_id="a", device_id="d")
        result = one(store, "e4", 8, cookie_id="b", device_id="d")
        assert [(m.survivor_id, m.merged_id) for m in result.merges] == [(by_e1, by_e2)]
        assert store.customers() == [by_e1]

    def test_unknown_types_rank_last_by_name(self, store_factory: StoreFactory) -> None:
        # limit 1 each: nothing merges, so the event goes to its strongest identifier's
        store = store_factory(IdentityPolicy(default_limit=1, weak_types=()))
        by_zeta = cid(one(store, "e1", 1, zeta_id="z", crm_id="C-1"))
        by_alpha = cid(one(store, "e2", 2, alpha_id="a", crm_id="C-2"))
        by_cookie = cid(one(store, "e3", 3, cookie_id="c", crm_id="C-3"))
        result = one(store, "e4", 4, zeta_id="z", alpha_id="a", cookie_id="c")
        assert result.customer_id == by_cookie
        assert [c.customer_ids for c in result.conflicts] == [
            (by_cookie, by_alpha),
            (by_cookie, by_zeta),
        ]

    def test_aliases_resolve_transitively_after_several_merges(self, store: ProfileStore) -> None:
        cookie = cid(one(store, "e1", 1, cookie_id="ck-1"))
        device = cid(one(store, "e2", 2, device_id="d-1"))
        email = cid(one(store, "e3", 3, email="ann@example.com"))
        crm = cid(one(store, "e4", 4, crm_id="C-1"))
        one(store, "e5", 5, cookie_id="ck-1", device_id="d-1")  # cookie -> device
        one(store, "e6", 6, device_id="d-1", email="ann@example.com")  # device -> email
        one(store, "e7", 7, email="ann@example.com", crm_id="C-1")  # email -> crm
        assert store.customers() == [cookie]  # the earliest event's customer survives
        assert {store.canonical(c) for c in (cookie, device, email, crm)} == {cookie}
        assert store.lookup("crm_id", "C-1") == cookie
        assert store.identifiers(crm) == store.identifiers(cookie)
        report = store.erase(crm)  # an alias erases its canonical customer
        assert report.customer_id == cookie
        assert report.aliases == tuple(sorted([crm, device, email]))

    def test_two_crm_ids_never_merge(self, store: ProfileStore) -> None:
        ann = cid(one(store, "e1", 1, crm_id="C-1", email="ann@example.com"))
        bob = cid(one(store, "e2", 2, crm_id="C-2", phone="+14155550100"))
        result = one(store, "e3", 3, email="ann@example.com", phone="+14155550100", cookie_id="ck")
        assert result.merges == ()
        assert result.customer_id == ann  # the email outranks the phone
        assert result.conflicts == (
            Conflict(
                (ann, bob),
                "e3",
                "crm_id limit 1 would be exceeded",
                ("email:ann@example.com", "phone:+14155550100"),
                ("phone:+14155550100",),
            ),
        )
        assert result.ignored == ()
        assert store.customers() == sorted([ann, bob])
        assert store.lookup("phone", "+14155550100") == bob  # stays with its owner
        assert store.lookup("cookie_id", "ck") == ann  # new identifiers go to the candidate

    def test_a_sixth_email_is_ignored(self, store: ProfileStore) -> None:
        ann = cid(one(store, "e0", 0, crm_id="C-1"))
        for n in range(1, 6):
            assert one(store, f"e{n}", n, crm_id="C-1", email=f"a{n}@example.com").conflicts == ()
        result = one(store, "e6", 6, crm_id="C-1", email="a6@example.com", phone="+14155550100")
        assert result.customer_id == ann
        assert result.ignored == ("email:a6@example.com",)
        assert result.conflicts == (
            Conflict(
                (ann,),
                "e6",
                "email limit 5 reached",
                ("email:a6@example.com",),
                ("email:a6@example.com",),
            ),
        )
        assert store.lookup("email", "a6@example.com") is None
        assert store.lookup("phone", "+14155550100") == ann
        assert len(store.identifiers(ann)["email"]) == 5

    def test_a_merge_over_a_limit_is_refused(self, store_factory: StoreFactory) -> None:
        store = store_factory(IdentityPolicy(limits={"email": 2}))
        ann = cid(one(store, "e1", 1, email="a1@example.com", cookie_id="ck-a"))
        one(store, "e2", 2, email="a2@example.com", cookie_id="ck-a")
        bob = cid(one(store, "e3", 3, email="b1@example.com", cookie_id="ck-b"))
        cid(one(store, "e4", 4, device_id="d"))
        result = one(store, "e5", 5, cookie_id="ck-a", email="b1@example.com", device_id="d")
        # bob's email is the strongest identifier: bob and the device join, ann cannot
        assert result.customer_id == bob
        assert [c.reason for c in result.conflicts] == ["email limit 2 would be exceeded"]
        assert [c.customer_ids for c in result.conflicts] == [(bob, ann)]
        assert [c.unlinked for c in result.conflicts] == [("cookie_id:ck-a",)]
        assert [m.merged_id for m in result.merges] == [new_customer_id("e4")]
        assert store.customers() == sorted([ann, bob])

    def test_blocked_values_never_link_anyone(self, store: ProfileStore) -> None:
        ann = one(store, "e1", 1, email="test@test.com", cookie_id="ck-ann")
        bob = one(store, "e2", 2, email="test@test.com", cookie_id="ck-bob")
        assert ann.customer_id != bob.customer_id
        assert ann.ignored == bob.ignored == ("email:test@test.com",)
        assert (bob.merges, bob.conflicts) == ((), ())
        assert store.lookup("email", "test@test.com") is None
        junk = one(store, "e3", 3, phone="+0000000000", crm_id="N/A", email="noreply@shop.com")
        assert junk == ResolveResult(
            None, False, (), (), ("crm_id:N/A", "email:noreply@shop.com", "phone:+0000000000")
        )
        assert one(store, "e4", 4) == ResolveResult(None, False, (), (), ())
        assert len(store.customers()) == 2

    def test_erase_removes_customer_links_and_aliases(self, store: ProfileStore) -> None:
        a = cid(one(store, "e1", 2, cookie_id="ck-1"))
        b = cid(one(store, "e2", 1, email="ann@example.com"))  # earlier: b survives
        one(store, "e3", 3, cookie_id="ck-1", email="ann@example.com")
        other = cid(one(store, "e4", 4, email="bob@example.com"))
        report = store.erase(a)
        assert report.customer_id == b and report.existed
        assert report.identifiers == ("cookie_id:ck-1", "email:ann@example.com")
        assert report.aliases == (a,)
        assert store.customers() == [other]
        assert store.lookup("cookie_id", "ck-1") is None
        assert store.lookup("email", "ann@example.com") is None
        assert store.canonical(a) == a
        assert store.identifiers(b) == {}
        fresh = one(store, "e5", 5, email="ann@example.com")
        assert fresh.created and fresh.customer_id == new_customer_id("e5") not in (a, b)
        again = store.erase(b)
        assert (again.existed, again.identifiers, again.aliases) == (False, (), ())

    def test_redelivery_is_idempotent(self, store: ProfileStore) -> None:
        batch = [
            req("e1", 1, cookie_id="ck-1"),
            req("e2", 2, email="ann@example.com"),
            req("e3", 3, cookie_id="ck-1", email="ann@example.com"),
        ]
        first = store.resolve_batch(batch)
        state = {c: store.identifiers(c) for c in store.customers()}
        again = store.resolve_batch(batch)
        survivor = new_customer_id("e1")
        assert [r.customer_id for r in first] == [survivor, new_customer_id("e2"), survivor]
        # a re-run gets exactly the first results back (outputs are upserted by their
        # ids), e2 with the customer it had then, now merged away
        assert again == first
        assert first[2].merges == (
            Merge(
                survivor,
                new_customer_id("e2"),
                "e3",
                "shared email, cookie_id",
                ("email:ann@example.com", "cookie_id:ck-1"),
            ),
        )
        assert {c: store.identifiers(c) for c in store.customers()} == state

    def test_a_redelivered_creating_event_finds_its_customer(
        self, store_factory: StoreFactory
    ) -> None:
        # without recorded outcomes (retention 0) a re-run walks the graph again
        store = store_factory(rules=ProfileRules(outcome_retention_ms=0))
        created = one(store, "e1", 1, cookie_id="ck-1")
        # same event id, identifiers nobody knows (e.g. re-normalised upstream)
        again = one(store, "e1", 1, cookie_id="ck-9")
        assert again == ResolveResult(created.customer_id, False, (), (), ())
        assert store.identifiers(cid(created)) == {"cookie_id": ["ck-1", "ck-9"]}

    def test_a_recorded_creating_event_gets_its_first_result(self, store: ProfileStore) -> None:
        created = one(store, "e1", 1, cookie_id="ck-1")
        again = one(store, "e1", 1, cookie_id="ck-9")  # recorded: no walk, nothing linked
        assert again == created == ResolveResult(new_customer_id("e1"), True, (), (), ())
        assert store.identifiers(cid(created)) == {"cookie_id": ["ck-1"]}

    def test_the_earliest_event_counts_not_the_creating_one(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory(NO_WEAK)  # cookies link here; weak links have their own test
        ann = cid(one(store, "e1", 100, email="ann@example.com"))
        one(store, "e2", 10, email="ann@example.com")  # late: ann's earliest event now
        bob = cid(one(store, "e3", 50, email="bob@example.com"))  # created before e2's time
        one(store, "e4", 50, cookie_id="ck")
        # e4's cookie customer merges into bob (50, e3 < 50, e4), keeping bob's earliest
        assert [
            m.survivor_id
            for m in one(store, "e5", 60, email="bob@example.com", cookie_id="ck").merges
        ] == [bob]
        result = one(store, "e6", 300, email="bob@example.com", phone="+14155550100")
        result = one(store, "e7", 300, phone="+14155550100", email="ann@example.com")
        # ann was created at 100 but holds an event at 10: ann survives
        assert [(m.survivor_id, m.merged_id) for m in result.merges] == [(ann, bob)]

    def test_a_request_with_too_many_identifiers_is_refused(self, store: ProfileStore) -> None:
        flood = {f"t{n}": f"v{n}" for n in range(MAX_IDENTIFIERS + 1)}
        with pytest.raises(ValueError, match="more than 1000 identifiers"):
            store.resolve_batch([req("e1", 1, cookie_id="ck"), ResolveRequest("e2", 2, flood)])
        assert store.customers() == []  # refused before anything was written

    def test_hashing_keeps_values_out_of_the_store(self, store_factory: StoreFactory) -> None:
        hasher = IdentifierHasher(b"k")
        store = store_factory(hasher=hasher)
        result = one(store, "e1", 1, email="ann@example.com", phone="test@test.com")
        ann = cid(result)
        assert result.ignored == ("phone:" + hasher.hash("phone", "test@test.com"),)
        assert store.lookup("email", "ann@example.com") == ann
        assert store.identifiers(ann) == {"email": [hasher.hash("email", "ann@example.com")]}
        assert cid(one(store, "e2", 2, email="ann@example.com")) == ann


def test_one_round_trip_per_batch(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisProfileStore(redis_client, redis_prefix)
    store.resolve_batch([req("warm", 0, cookie_id="warm")])  # loads the script if needed
    rng = random.Random(7)
    batch = [
        req(f"e{n}", n, email=f"u{rng.randrange(200)}@x.io", cookie_id=f"ck{rng.randrange(300)}")
        for n in range(500)
    ]
    before = store.round_trips
    results = store.resolve_batch(batch)
    assert store.round_trips - before == 1
    assert len(results) == 500 and all(r.customer_id for r in results)
    before = store.round_trips
    store.resolve_batch([req("x", 0, email="test@test.com")] * 10)  # nothing linkable
    assert store.round_trips == before


def test_a_server_without_the_script_gets_it_loaded(
    redis_client: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh SHA stands in for SCRIPT FLUSH, which would hit everyone on the server.
    import state.redis_store as module

    script = module.SCRIPT + f"\n-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(module, "SCRIPT", script)
    monkeypatch.setattr(
        module, "SCRIPT_SHA", hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    )
    store = RedisProfileStore(redis_client, redis_prefix)
    assert one(store, "e1", 1, email="a@x.io").created
    assert store.round_trips == 3  # NOSCRIPT, SCRIPT LOAD, EVALSHA
    assert store.lookup("email", "a@x.io") == new_customer_id("e1")
    assert store.round_trips == 4


def test_a_malformed_batch_writes_nothing(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisProfileStore(redis_client, redis_prefix)
    store.resolve_batch([req("warm", 0, cookie_id="warm")])
    before = sorted(redis_client.scan_iter(match=f"{redis_prefix}*"))
    policy = '{"priority": ["email"], "limits": {}, "default_limit": 5}'
    good: list[str | int] = ["e1", 1, "cust-1", 1, "email:a@x.io"]
    malformed: list[list[str | int]] = [
        ["e2", 2, "cust-2", 2, "email:b@x.io"],  # says 2 members, has 1
        ["e2", 2, "cust-2", 1, "no-colon"],
    ]
    for bad in malformed:
        with pytest.raises(redis.ResponseError, match=r"request|members"):
            redis_client.evalsha(SCRIPT_SHA, 0, redis_prefix, "resolve", policy, "", *good, *bad)
    with pytest.raises(redis.ResponseError, match=r"wall-clock"):  # the clock left out
        redis_client.evalsha(SCRIPT_SHA, 0, redis_prefix, "resolve", policy, "x", *good)
    assert sorted(redis_client.scan_iter(match=f"{redis_prefix}*")) == before


def test_any_client_decoding_and_a_url_work(redis_prefix: str) -> None:
    text_client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    by_client = RedisProfileStore(text_client, redis_prefix)
    by_url = RedisProfileStore(REDIS_URL, redis_prefix)
    try:
        ann = cid(one(by_client, "e1", 1, email="a@x.io", crm_id="C-1"))
        one(by_url, "e2", 2, cookie_id="ck")
        merge = one(by_client, "e3", 3, cookie_id="ck", crm_id="C-1", email="b@x.io")
        assert merge.merges[0].merged_id == new_customer_id("e2")
        assert by_url.identifiers(ann) == by_client.identifiers(ann)
        report = by_url.erase(new_customer_id("e2"))
        assert (report.customer_id, report.existed, report.aliases) == (
            ann,
            True,
            (new_customer_id("e2"),),
        )
        assert by_client.customers() == [] and not by_client.erase(ann).existed
    finally:
        by_url.close()
        by_client.close()
    assert text_client.ping()  # a client passed in stays open
    text_client.close()


# --------------------------------------------------------------------------------------
# Randomized equivalence: the twin and Redis agree on every result and the final graph.

SMALL_POLICY = IdentityPolicy(
    limits={"crm_id": 1, "email": 2, "phone": 2, "cookie_id": 3},
    default_limit=2,
    shared_after={"device_id": 2, "cookie_id": 3},  # shared values are common here
)
UNIVERSE = {
    "crm_id": ["C1", "C2", "C3"],
    "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "test@test.com"],
    "phone": ["+14155550101", "+14155550102", "+14155550103"],
    "cookie_id": [f"ck{n}" for n in range(6)],
    "device_id": ["dv1", "dv2"],
    "zz_custom": ["z1", "z2"],
    "aa_custom": ["y1", "y2", "unknown"],
}

requests_st = st.builds(
    ResolveRequest,
    st.sampled_from([f"e{n}" for n in range(40)]),  # repeats are re-deliveries
    st.integers(0, 20),  # few distinct times: ties on age are common
    st.dictionaries(
        st.sampled_from(sorted(UNIVERSE)), st.integers(0, 5), min_size=1, max_size=4
    ).map(lambda picks: {t: UNIVERSE[t][i % len(UNIVERSE[t])] for t, i in picks.items()}),
    # consent changes, recorded by resolve (ties on time are common: the id decides)
    st.dictionaries(st.sampled_from(["marketing", "sms"]), st.booleans(), max_size=2),
)
operations_st = st.lists(
    st.one_of(
        st.lists(requests_st, min_size=1, max_size=12),
        st.tuples(st.sampled_from(sorted(UNIVERSE)), st.integers(0, 5)),  # erase by identifier
        st.integers(0, 10),  # seconds of wall time pass
    ),
    min_size=1,
    max_size=12,
)


def _snapshot(store: ProfileStore) -> dict[str, object]:
    return {
        "customers": {c: store.identifiers(c) for c in store.customers()},
        "links": {f"{t}:{v}": store.lookup(t, v) for t, values in UNIVERSE.items() for v in values},
    }


def _apply(store: ProfileStore, operation: object) -> object:
    if isinstance(operation, tuple):
        id_type, index = operation
        owner = store.lookup(id_type, UNIVERSE[id_type][index % len(UNIVERSE[id_type])])
        return None if owner is None else store.erase(owner)
    assert isinstance(operation, list)
    return store.resolve_batch(operation)


def _equivalent(
    operations: Sequence[object], client: redis.Redis, rules: ProfileRules | None = None
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    clock = FakeClock()  # one clock for both: they record at the same wall times
    memory = MemoryProfileStore(SMALL_POLICY, rules=rules, clock=clock)
    remote = RedisProfileStore(client, prefix, policy=SMALL_POLICY, rules=rules, clock=clock)
    try:
        for step, operation in enumerate(operations):
            if isinstance(operation, int):  # seconds of wall time pass
                clock.advance(operation)
                continue
            assert _apply(remote, operation) == _apply(memory, operation), f"step {step}"
            assert _snapshot(remote) == _snapshot(memory), f"state after step {step}"
    finally:
        delete_prefix(client, prefix)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=operations_st, retention=st.sampled_from([0, 8_000, 3_600_000]))
def test_memory_and_redis_agree(
    redis_client: redis.Redis, operations: list[object], retention: int
) -> None:
    # wall-clock steps of 0-10 s: a retention of 8 s expires outcomes, 0 records none
    _equivalent(operations, redis_client, ProfileRules(outcome_retention_ms=retention))


def test_memory_and_redis_agree_on_long_runs(redis_client: redis.Redis) -> None:
    rng = random.Random(2026)
    types = sorted(UNIVERSE)
    for run in range(5):
        operations: list[object] = []
        for b in range(30):
            if rng.random() < 0.1:
                operations.append((rng.choice(types), rng.randrange(6)))
                continue
            batch = []
            for n in range(50):
                picked = rng.sample(types, rng.randint(1, 3))
                batch.append(
                    ResolveRequest(
                        f"e{b}-{n}" if rng.random() < 0.9 else f"e{rng.randrange(b + 1)}-0",
                        rng.randrange(100),
                        {t: rng.choice(UNIVERSE[t]) for t in picked},
                        {"marketing": rng.random() < 0.5} if rng.random() < 0.2 else None,
                    )
                )
            operations.append(batch)
            operations.append(rng.randrange(3))  # seconds of wall time pass
        # odd runs expire recorded outcomes (and prune some per call), even ones keep all
        retention = 20_000 if run % 2 else 10**9
        _equivalent(operations, redis_client, ProfileRules(outcome_retention_ms=retention))


def test_the_script_handles_exactly_the_script_ops() -> None:
    # Lua cannot import the Literal: this keeps the script's dispatch and ScriptOp equal.
    import re
    from pathlib import Path
    from typing import get_args

    from schemas.vocabulary import ScriptOp

    lua = (Path(__file__).parents[2] / "state" / "lua" / "identity.lua").read_text()
    assert set(re.findall(r"^(?:if|elseif) OP == '(\w+)' then", lua, re.M)) == set(
        get_args(ScriptOp)
    )
