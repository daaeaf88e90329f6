"""The household contract, over both stores (memory and Redis): the same results."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from schemas.outputs import HouseholdSnapshot
from state.hashing import IdentifierHasher
from state.household_figures import NO_HOUSEHOLD, MemberFigures
from state.household_rules import (
    HouseholdPolicy,
    household_id,
    identity_identifiers,
    normalise_address,
)
from state.households import (
    HouseholdChange,
    HouseholdItem,
    HouseholdStore,
    MemoryHouseholdStore,
    Spend,
    apply_changes,
)
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileDelta
from state.redis_households import RedisHouseholdStore
from state.redis_store import RedisProfileStore
from state.store import ProfileStore, ResolveRequest
from tests.state.conftest import _graph_problems, delete_prefix


@dataclass
class Pair:
    profiles: ProfileStore
    households: HouseholdStore


@pytest.fixture(params=["memory", "redis"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    if request.param == "memory":
        profiles = MemoryProfileStore()
        yield Pair(profiles, MemoryHouseholdStore())
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield Pair(RedisProfileStore(client, prefix), RedisHouseholdStore(client, prefix))
    # every Redis test doubles as a consistency check of the graph and households it left
    problems = _graph_problems(client, prefix)
    delete_prefix(client, prefix)
    assert not problems, problems


def people(pair: Pair, n: int, **delta: object) -> list[str]:
    """``n`` customers with a profile each (one event, ``delta`` fields)."""
    requests = [ResolveRequest(f"e{i}", 1000 + i, {"email": f"p{i}@x.co"}) for i in range(n)]
    ids = [r.customer_id or "" for r in pair.profiles.resolve_batch(requests)]
    pair.profiles.apply_profiles(
        [ProfileDelta(c, f"e{i}", 1000 + i, "web", "w", **delta) for i, c in enumerate(ids)]  # type: ignore[arg-type]
    )
    return ids


def link(cid: str, *figures: MemberFigures, **identifiers: str) -> HouseholdChange:
    return HouseholdChange("link", cid, identifiers, figures=figures[0] if figures else None)


def figures(ms: int, eid: str, **kw: object) -> MemberFigures:
    return MemberFigures(f"{ms:015d}|{eid}", ms, **kw)  # type: ignore[arg-type]


def test_shared_address_variants_link_two_customers_that_stay_two(pair: Pair) -> None:
    a, b = people(pair, 2)
    batch = apply_changes(
        pair.households,
        [link(a, address="12 High Street, Flat 3"), link(b, address="FLAT 3  12 high st.")],
    )
    [household] = batch.published
    assert household.members == sorted([a, b])
    assert household.evidence_types == ["address"]
    assert household.household_id == household_id(["address:12 high st unit 3"])
    assert pair.profiles.customers() == sorted([a, b])  # never merged


def test_the_id_comes_from_the_evidence_not_the_arrival_order(pair: Pair) -> None:
    a, b, c = people(pair, 3)
    first = apply_changes(
        pair.households,
        [
            link(c, device_id="tab-9"),
            link(a, address="1 Main St"),
            link(b, address="1 main street"),
        ],
    )
    assert not first.published or first.published[0].members == sorted([a, b])
    apply_changes(pair.households, [link(c, address="1 Main St.")])
    seen = [pair.households.household_of(x) for x in (a, b, c)]
    assert seen[0] is not None and seen[0].member_count == 3
    assert seen[0] == seen[1] == seen[2]
    assert seen[0].household_id == household_id(["address:1 main st"])


def test_a_kiosk_device_never_joins_its_users(pair: Pair) -> None:
    users = people(pair, 12)
    limit = HouseholdPolicy().limit("device_id")
    early = apply_changes(pair.households, [link(u, device_id="kiosk-1") for u in users[:2]])
    [household] = early.published  # under its limit it links, like a family tablet
    batch = apply_changes(pair.households, [link(u, device_id="kiosk-1") for u in users[2:]])
    assert batch.published == [] and batch.gone == [household.household_id]
    assert all(pair.households.household_of(u) is None for u in users)
    assert pair.households.households() == []
    # a latecomer is not linked either, and a family's own address still links them
    late = people(pair, 14)[12:]
    apply_changes(pair.households, [link(u, device_id="kiosk-1", address="9 Elm Rd") for u in late])
    [family] = pair.households.households()
    assert family.members == sorted(late) and family.evidence_types == ["address"]
    assert limit < len(users)


def test_blocked_values_never_link(pair: Pair) -> None:
    a, b = people(pair, 2)
    batch = apply_changes(pair.households, [link(a, address="Unknown"), link(b, address="unknown")])
    assert batch.published == [] and pair.households.households() == []


def test_aggregates_sum_and_summarise_the_members(pair: Pair) -> None:
    a, b = people(pair, 2)
    first = [
        link(c, figures(1000 + i, f"e{i}", amount_cents=1250, order=True, nps=4))
        for i, c in enumerate((a, b))
    ]
    apply_changes(pair.households, first)
    apply_changes(pair.households, [link(b, figures(5000, "x1", nps=9, churn="0.8000"))])
    apply_changes(pair.households, [link(a, figures(5001, "x2", case=("case-1", "1")))])
    [h] = apply_changes(
        pair.households, [link(a, device_id="tab"), link(b, device_id="tab")]
    ).published
    assert (h.lifetime_value, h.orders, h.open_cases, h.max_churn) == (25.0, 2, 1, 0.8)
    assert h.last_nps == {a: 4, b: 9} and h.mean_nps == 6.5 and h.detractors == 1
    assert h.last_seen is not None and int(h.last_seen.timestamp() * 1000) == 5001
    # an older answer does not replace a newer one; a case closes; totals follow
    late = [link(b, figures(4000, "x0", nps=1)), link(a, figures(6000, "x3", case=("case-1", "0")))]
    [h] = apply_changes(pair.households, late).published
    assert h.last_nps == {a: 4, b: 9} and h.open_cases == 0


def each(store: HouseholdStore, *items: HouseholdItem) -> list[str]:
    return [v.text() for v in store.step(list(items)).contexts]


def event(eid: str, cid: str, ms: int, cents: int = 0, **ids: str) -> HouseholdItem:
    return HouseholdItem(eid, cid, (link(cid, figures(ms, eid, amount_cents=cents), **ids),))


def test_each_item_sees_the_household_as_it_leaves_it(pair: Pair) -> None:
    a, b, c = people(pair, 3)
    items = [
        event("e1", a, 1, 100, address="5 Oak Ave"),
        event("e2", c, 2, 50),
        event("e3", b, 3, 200, address="5 oak avenue"),
        event("e4", a, 4, 1000),
        HouseholdItem("", None, (HouseholdChange("erase", b),)),
        event("e5", a, 5, 1),
    ]
    views = pair.households.step(items).contexts
    assert views[0] == views[1] == NO_HOUSEHOLD  # alone; c has no evidence at all
    assert (views[2].members, views[2].ltv_cents) == (2, 300)
    assert (views[3].members, views[3].ltv_cents) == (2, 1300)
    assert views[4] == NO_HOUSEHOLD and views[5] == NO_HOUSEHOLD  # b erased: a alone


def test_a_re_processed_event_gets_its_first_answer_and_counts_once(pair: Pair) -> None:
    a, b = people(pair, 2)
    first = each(
        pair.households, event("e1", a, 1, 100, device_id="t"), event("e2", b, 2, 5, device_id="t")
    )
    each(pair.households, event("e3", a, 3, 7))
    again = each(
        pair.households, event("e1", a, 1, 100, device_id="t"), event("e2", b, 2, 5, device_id="t")
    )
    assert again == first
    [h] = pair.households.households()
    assert h.lifetime_value == 1.12  # 100 + 5 + 7 cents, nothing twice


def test_budgets_are_spent_in_order_and_once_per_token(pair: Pair) -> None:
    asks = [Spend("hh-1", 7, f"n{i}", 2) for i in range(3)] + [Spend("hh-1", 8, "n9", 2)]
    assert pair.households.spend(asks) == [True, True, False, True]
    assert pair.households.spend([Spend("hh-1", 7, "n1", 2), Spend("hh-1", 7, "n4", 2)]) == [
        True,
        False,
    ]


def test_a_merge_merges_memberships_and_an_erase_removes_the_member(pair: Pair) -> None:
    a, b, c = people(pair, 3)
    apply_changes(pair.households, [link(a, address="1 A St"), link(b, address="1 A St")])
    apply_changes(pair.households, [link(c, address="2 B Rd")])  # alone: no household
    assert pair.households.household_of(c) is None
    # identity merges c into a (its email shows up on a's event)
    merged = pair.profiles.resolve_batch(
        [
            ResolveRequest("m", 9000, {"email": "p0@x.co", "crm_id": "C1"}),
            ResolveRequest("m2", 9001, {"email": "p2@x.co", "crm_id": "C1"}),
        ]
    )
    merge = merged[1].merges[0]
    batch = apply_changes(
        pair.households, [HouseholdChange("merge", merge.merged_id, survivor_id=merge.survivor_id)]
    )
    survivor = merge.survivor_id
    [h] = pair.households.households()
    assert survivor in h.members and merge.merged_id not in h.members
    assert h.member_count == 2 and batch.published == [h]
    # erasing one of two members dissolves the household
    other = next(m for m in h.members if m != survivor)
    gone = apply_changes(pair.households, [HouseholdChange("erase", other)])
    assert gone.gone == [h.household_id] and pair.households.households() == []
    # an event of the erased customer arriving late links nobody
    assert apply_changes(pair.households, [link(other, address="1 A St")]).published == []


def _script(seed: int, n: int) -> list[tuple[int, dict[str, str]]]:
    rng = random.Random(seed)
    steps = []
    for _ in range(60):
        ids: dict[str, str] = {}
        if rng.random() < 0.7:
            ids["address"] = f"{rng.randrange(6)} {rng.choice(['Main St', 'main street'])}"
        if rng.random() < 0.5:
            ids["device_id"] = f"d{rng.randrange(4)}"
        steps.append((rng.randrange(n), ids))
    return steps


def _items(ids: list[str], steps: list[tuple[int, dict[str, str]]]) -> list[HouseholdItem]:
    out = []
    for k, (i, s) in enumerate(steps):
        f = figures(k, f"ev{k}", amount_cents=k, nps=k % 11, case=(f"k{k % 3}", str(k % 2)))
        out.append(HouseholdItem(f"ev{k}", ids[i], (link(ids[i], f, **s),)))
        if k % 17 == 16:  # now and then a merge, and an erase
            out.append(
                HouseholdItem(
                    "", None, (HouseholdChange("merge", ids[k % 10], survivor_id=ids[i]),)
                )
            )
        if k == 40:
            out.append(HouseholdItem("", None, (HouseholdChange("erase", ids[9]),)))
    return out


def test_memory_and_redis_agree_and_order_does_not_matter(redis_client: redis.Redis) -> None:
    finals: list[list[HouseholdSnapshot]] = []
    answers: list[list[str]] = []
    for store_kind in (
        "memory",
        "redis",
        "memory-reversed",
        "redis-reversed",
        "memory-1",
        "redis-1",
    ):
        prefix = f"test:{uuid.uuid4().hex[:12]}:"
        profiles: ProfileStore
        households: HouseholdStore
        if store_kind.startswith("memory"):
            profiles = MemoryProfileStore()
            households = MemoryHouseholdStore()
        else:
            profiles = RedisProfileStore(redis_client, prefix)
            households = RedisHouseholdStore(redis_client, prefix)
        try:
            ids = people(Pair(profiles, households), 10)
            steps = _script(3, len(ids))
            if store_kind.endswith("reversed"):
                steps.reverse()
                for start in range(0, len(steps), 7):
                    apply_changes(
                        households, [link(ids[i], **s) for i, s in steps[start : start + 7]]
                    )
                finals.append(households.households())
                continue
            items = _items(ids, steps)
            size = 1 if store_kind.endswith("-1") else 7
            got = []
            for start in range(0, len(items), size):
                got += [v.text() for v in households.step(items[start : start + size]).contexts]
            answers.append(got)
            finals.append(households.households())
        finally:
            delete_prefix(redis_client, prefix)
    # item by item, both stores and both batch sizes answer alike
    assert any(answers[0]) and all(a == answers[0] for a in answers)
    with_figures = [finals[0], finals[1], finals[4], finals[5]]
    assert with_figures[0] and all(f == with_figures[0] for f in with_figures)
    # the structure does not depend on the order the evidence came in
    assert finals[2] and finals[2] == finals[3]


def test_address_normalisation_folds_real_world_variants() -> None:
    same = [
        "12 High Street, Flat 3",
        "12 high st flat 3",
        "Flat 3, 12 High St.",
        "  12  HIGH   STREET   APT 3 ",
        "12 High St #3",
        "12 High St, Apartment 3",
        "12 High St Unit 3",
    ]
    assert {normalise_address(v) for v in same} == {"12 high st unit 3"}
    assert normalise_address("12 High St Flat 4") != normalise_address("12 High St Flat 3")
    assert normalise_address("500 West 5th Avenue") == normalise_address("500 W. 5th Ave")
    assert normalise_address("7 Queen's Road") == normalise_address("7 queens rd")


def test_a_payment_token_links_when_configured_and_hashing_hides_the_evidence() -> None:
    profiles = MemoryProfileStore()
    ids = people(Pair(profiles, MemoryHouseholdStore()), 2)
    plain = MemoryHouseholdStore()
    assert apply_changes(plain, [link(c, payment_token="tok-1") for c in ids]).published == []
    policy = HouseholdPolicy(evidence=("address", "device_id", "payment_token"))
    hashed = MemoryHouseholdStore(policy, IdentifierHasher(b"k" * 32))
    [household] = apply_changes(hashed, [link(c, payment_token="tok-1") for c in ids]).published
    assert household.evidence_types == ["payment_token"]
    assert household.household_id != household_id(["payment_token:tok-1"])
    assert identity_identifiers({"payment_token": "tok-1", "email": "a@b.co"}) == {
        "email": "a@b.co"
    }
