"""The store contract for ``ResolveResult.opted_out``: withdrawn consent, merges included."""

from __future__ import annotations

from typing import Any

import redis

from state.redis_store import RedisProfileStore
from state.store import ProfileStore, ResolveRequest, ResolveResult
from tests.state.test_profile_contract import ev, feed

MINUTE = 60_000
T0 = 1_772_445_600_000  # ev(n, minute) is this plus minute minutes


def resolve(store: ProfileStore, n: int, minute: int, **identifiers: str) -> ResolveResult:
    event = ev(n, minute, identifiers=identifiers)
    (result,) = store.resolve_batch([ResolveRequest(event.id, event.epoch_ms, identifiers)])
    return result


def consent(n: int, minute: int, identifiers: dict[str, str], **purposes: bool) -> Any:
    return ev(n, minute, identifiers=identifiers, consent=purposes)


class TestOptedOut:
    def test_lists_withdrawn_purposes_sorted_with_their_time(self, store: ProfileStore) -> None:
        ann = {"email": "ann@example.com"}
        feed(store, [consent(1, 0, ann, marketing=False, sms=True, marketing_email=False)])
        result = resolve(store, 2, 5, **ann)
        assert result.opted_out == ("marketing", "marketing_email")
        assert result.opted_out_ms == (T0, T0)
        # a later grant by event time lifts that withdrawal only
        feed(store, [consent(3, 6, ann, marketing=True)])
        later = resolve(store, 4, 7, **ann)
        assert (later.opted_out, later.opted_out_ms) == (("marketing_email",), (T0,))

    def test_nothing_withdrawn_and_new_customers_report_none(self, store: ProfileStore) -> None:
        bob = {"email": "bob@example.com"}
        assert resolve(store, 1, 0, **bob).opted_out == ()  # created: no profile yet
        feed(store, [consent(2, 1, bob, marketing=True)])
        result = resolve(store, 3, 2, **bob)
        assert (result.opted_out, result.opted_out_ms, result.merges) == ((), (), ())

    def test_an_older_grant_arriving_late_does_not_lift_it(self, store: ProfileStore) -> None:
        ann = {"crm_id": "C-1"}
        feed(store, [consent(1, 10, ann, marketing=False)])
        feed(store, [consent(2, 5, ann, marketing=True)])  # out of order: older
        assert resolve(store, 3, 11, **ann).opted_out == ("marketing",)

    def test_a_merge_brings_the_merged_ids_opt_out(self, store: ProfileStore) -> None:
        feed(store, [ev(1, 0, identifiers={"crm_id": "C-A"})])
        feed(store, [consent(2, 1, {"email": "b@x.io"}, marketing=False)])
        survivor = resolve(store, 3, 2, crm_id="C-A")
        assert survivor.opted_out == ()
        # the merge happens in this very batch: the reply already sees its result
        merged = resolve(store, 4, 3, crm_id="C-A", email="b@x.io")
        assert merged.customer_id == survivor.customer_id
        assert [m.survivor_id for m in merged.merges] == [survivor.customer_id]
        assert (merged.opted_out, merged.opted_out_ms) == (("marketing",), (T0 + MINUTE,))
        assert resolve(store, 5, 4, crm_id="C-A").opted_out == ("marketing",)

    def test_a_newer_opt_in_under_the_survivor_wins(self, store: ProfileStore) -> None:
        feed(store, [consent(1, 0, {"email": "b@x.io"}, marketing=False)])
        feed(store, [consent(2, 5, {"crm_id": "C-A"}, marketing=True)])
        merged = resolve(store, 3, 6, crm_id="C-A", email="b@x.io")
        assert len(merged.merges) == 1 and merged.opted_out == ()
        # and the other way round: the merged id's newer opt-out wins over an older grant
        feed(store, [consent(4, 0, {"crm_id": "C-B"}, marketing=True)])
        feed(store, [consent(5, 5, {"email": "d@x.io"}, marketing=False)])
        other = resolve(store, 6, 6, crm_id="C-B", email="d@x.io")
        assert len(other.merges) == 1 and other.opted_out == ("marketing",)

    def test_a_profile_step_after_the_merge_keeps_it(self, store: ProfileStore) -> None:
        feed(store, [consent(1, 0, {"email": "b@x.io"}, sms=False)])
        feed(store, [ev(2, 1, identifiers={"crm_id": "C-A", "email": "b@x.io"})])  # merges
        feed(store, [ev(3, 2, identifiers={"crm_id": "C-A"}, nps=9)])
        assert resolve(store, 4, 3, crm_id="C-A").opted_out == ("sms",)
        cid = store.lookup("crm_id", "C-A") or ""
        profile = store.profile(cid)
        assert profile is not None and profile.consent == {"sms": False}


def test_opted_out_costs_no_extra_round_trip(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisProfileStore(redis_client, redis_prefix)
    people = [{"email": f"u{n}@x.io"} for n in range(50)]
    # the odd ones withdraw marketing
    feed(store, [consent(n, 0, ids, marketing=n % 2 == 0) for n, ids in enumerate(people)])
    requests = [ResolveRequest(f"r{n}", T0 + MINUTE, people[n % 50]) for n in range(200)]
    before = store.round_trips
    results = store.resolve_batch(requests)
    assert store.round_trips - before == 1
    withdrawn = {r.customer_id for r in results if r.opted_out == ("marketing",)}
    expected = {store.lookup("email", f"u{n}@x.io") for n in range(1, 50, 2)}
    assert withdrawn == expected
