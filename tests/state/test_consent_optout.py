"""The store contract for ``ResolveResult.opted_out``: withdrawn consent, merges included."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import redis

from state.profile_hash import ProfileRules, delta_for
from state.redis_store import RedisProfileStore
from state.store import ProfileStore, ResolveRequest, ResolveResult
from tests.state.conftest import StoreFactory
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


def req(n: int, minute: int, identifiers: dict[str, str], **purposes: bool) -> ResolveRequest:
    """Event ``n`` at ``minute`` as the flow asks for it: its consent changes included."""
    return ResolveRequest(f"evt-{n:04d}", T0 + minute * MINUTE, identifiers, purposes)


def reported(result: ResolveResult) -> tuple[tuple[str, ...], tuple[int, ...]]:
    return result.opted_out, result.opted_out_ms


class TestRecordedAtResolve:
    """Consent changes are recorded by the resolve call itself, in request order: the
    profile step (apply_profiles) never runs in these tests."""

    ANN: ClassVar[dict[str, str]] = {"email": "ann@example.com"}

    def test_a_later_event_in_the_same_batch_sees_the_opt_out(self, store: ProfileStore) -> None:
        first, opt_out, later, other = store.resolve_batch(
            [
                req(1, 0, self.ANN),
                req(2, 1, self.ANN, marketing=False, sms=True),
                req(3, 2, self.ANN),
                req(4, 2, {"email": "bob@example.com"}),
            ]
        )
        assert first.created and opt_out.customer_id == later.customer_id == first.customer_id
        # an event reports what the events before it recorded, not its own changes
        assert reported(opt_out) == ((), ())
        assert reported(later) == (("marketing",), (T0 + MINUTE,))
        assert reported(other) == ((), ())

    def test_the_creating_event_records_its_own_opt_out(self, store: ProfileStore) -> None:
        (created, later) = store.resolve_batch(
            [req(1, 0, self.ANN, marketing=False), req(2, 1, self.ANN)]
        )
        assert created.created and reported(created) == ((), ())
        assert reported(later) == (("marketing",), (T0,))
        # no event applied yet: the consent record alone is no profile
        assert store.profile(later.customer_id or "") is None

    def test_a_later_batch_sees_it(self, store: ProfileStore) -> None:
        store.resolve_batch([req(1, 0, self.ANN), req(2, 1, self.ANN, marketing=False)])
        (later,) = store.resolve_batch([req(3, 2, self.ANN)])
        assert reported(later) == (("marketing",), (T0 + MINUTE,))

    def test_a_newer_grant_clears_it_an_older_one_arriving_later_does_not(
        self, store: ProfileStore
    ) -> None:
        store.resolve_batch([req(1, 0, self.ANN), req(2, 10, self.ANN, marketing=False)])
        _, after_older = store.resolve_batch(
            [req(3, 5, self.ANN, marketing=True), req(4, 11, self.ANN)]
        )
        assert reported(after_older) == (("marketing",), (T0 + 10 * MINUTE,))
        newer_grant, after_newer = store.resolve_batch(
            [req(5, 12, self.ANN, marketing=True), req(6, 13, self.ANN)]
        )
        assert reported(newer_grant) == (("marketing",), (T0 + 10 * MINUTE,))
        assert reported(after_newer) == ((), ())
        # a withdrawal older than that grant arriving now changes nothing either
        _, still = store.resolve_batch(
            [req(7, 11, self.ANN, marketing=False), req(8, 14, self.ANN)]
        )
        assert reported(still) == ((), ())

    def test_a_re_run_gives_the_recorded_reply_and_changes_nothing(
        self, store: ProfileStore
    ) -> None:
        batch = [req(1, 0, self.ANN), req(2, 5, self.ANN, marketing=False), req(3, 6, self.ANN)]
        first = store.resolve_batch(batch)
        store.resolve_batch([req(4, 7, self.ANN, marketing=True)])
        # the same events again (a restore): recorded replies, unchanged, as first given
        assert store.resolve_batch(batch) == first
        (after,) = store.resolve_batch([req(5, 8, self.ANN)])
        assert reported(after) == ((), ())  # the re-run did not withdraw it again

    def test_folding_an_event_twice_changes_nothing(self, store_factory: StoreFactory) -> None:
        # without recorded outcomes every re-run walks and records the changes again
        store = store_factory(rules=ProfileRules(outcome_retention_ms=0))
        opt_out = req(2, 5, self.ANN, marketing=False)
        store.resolve_batch([req(1, 0, self.ANN), opt_out, req(3, 6, self.ANN, marketing=True)])
        for _ in range(2):
            (again, after) = store.resolve_batch([opt_out, req(4, 7, self.ANN)])
            assert reported(again) == reported(after) == ((), ())  # the newer grant holds

    def test_the_profile_step_only_rewrites_what_resolve_recorded(
        self, store: ProfileStore
    ) -> None:
        events = [consent(1, 0, self.ANN), consent(2, 10, self.ANN, marketing=False)]
        grant = consent(3, 5, self.ANN, marketing=True)  # older, resolved later
        requests = [
            ResolveRequest(e.id, e.epoch_ms, dict(e.data.identifiers), e.data.consent)
            for e in [*events, grant]
        ]
        results = store.resolve_batch(requests)
        # the profile steps of the three events come afterwards, the older grant last
        for result, event in zip(results, [*events, grant], strict=True):
            store.apply_profiles([delta_for(result.customer_id or "", event)])
        after = resolve(store, 4, 11, **self.ANN)
        assert reported(after) == (("marketing",), (T0 + 10 * MINUTE,))
        profile = store.profile(after.customer_id or "")
        assert profile is not None and profile.consent == {"marketing": False}

    def test_a_merge_pools_what_resolve_recorded(self, store: ProfileStore) -> None:
        a, b = {"crm_id": "C-A"}, {"email": "b@x.io"}
        first_a, _, merged, later = store.resolve_batch(
            [req(1, 0, a), req(2, 1, b, marketing=False), req(3, 2, {**a, **b}), req(4, 3, a)]
        )
        assert [m.survivor_id for m in merged.merges] == [first_a.customer_id]
        assert reported(merged) == reported(later) == (("marketing",), (T0 + MINUTE,))
        # a newer grant under the survivor wins over the merged id's opt-out
        _, cleared = store.resolve_batch([req(5, 4, a, marketing=True), req(6, 5, a)])
        assert reported(cleared) == ((), ())

    def test_erase_drops_it(self, store: ProfileStore) -> None:
        (opt_out,) = store.resolve_batch([req(1, 0, self.ANN, marketing=False)])
        store.erase(opt_out.customer_id or "")
        first, later = store.resolve_batch([req(2, 1, self.ANN), req(3, 2, self.ANN)])
        assert first.created and reported(later) == ((), ())

    def test_anonymous_and_shared_only_events_record_nothing(self, store: ProfileStore) -> None:
        (anonymous,) = store.resolve_batch([ResolveRequest("e1", T0, {}, {"marketing": False})])
        assert anonymous.customer_id is None
        store.resolve_batch([req(2, 1, self.ANN)])
        (later,) = store.resolve_batch([req(3, 2, self.ANN)])
        assert reported(later) == ((), ())


def test_a_malformed_consent_change_is_refused(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    store = RedisProfileStore(redis_client, redis_prefix)
    member = "email:ann@example.com"
    for tail in ([1, "marketing", "yes"], [2, "marketing", "0"], ["x"], []):
        with pytest.raises(redis.ResponseError, match=r"consent|a request is"):
            store._call("resolve", store._policy_json, "", "e1", 0, "cust-x", 1, member, *tail)
    assert store.customers() == []
