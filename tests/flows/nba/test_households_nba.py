"""Households in decisions: household fields in the context, one family fatigue budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.nba.catalogue import CatalogueError, HouseholdCap, load_catalogue
from flows.nba.context import FIELDS, with_household
from flows.nba.decider import Decider
from flows.nba.policy import ContactHistory
from schemas.outputs import HouseholdSnapshot
from state.households import HouseholdChange, MemoryHouseholdStore
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileDelta
from state.store import ResolveRequest
from tests.flows.nba.conftest import action, context

Write = Callable[[str], Path]
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)
CAPPED = '[household]\nmax_per_day = 1\nclasses = ["marketing"]\n\n'


def _family() -> tuple[MemoryHouseholdStore, list[str]]:
    profiles = MemoryProfileStore()
    requests = [ResolveRequest(f"e{i}", i, {"email": f"{i}@x.co"}) for i in range(3)]
    ids = [r.customer_id or "" for r in profiles.resolve_batch(requests)]
    profiles.apply_profiles(
        [
            ProfileDelta(c, f"e{i}", i, "web", "w", amount_cents=1000, nps="3")
            for i, c in enumerate(ids)
        ]
    )
    store = MemoryHouseholdStore(profiles)
    store.apply([HouseholdChange("link", c, {"address": "4 Elm Road"}) for c in ids[:2]])
    return store, ids


def test_the_context_carries_the_household(write_catalogue: Write) -> None:
    store, (a, _, alone) = _family()
    household = store.household_of(a)
    assert household is not None
    ctx = with_household(context(customer_id=a), household)
    assert (ctx["household_members"], ctx["household_ltv"]) == (2, 20.0)
    assert ctx["household_detractor"] is True and ctx["household_open_case"] is False
    assert with_household(context(customer_id=alone), None)["household_id"] is None
    assert {"household_id", "household_ltv", "household_members"} <= set(FIELDS)
    # a rule on a household field makes the decider read the households
    rule = action("family_offer", when='["household_ltv >= 15"]')
    decider = Decider(load_catalogue(write_catalogue(rule)))
    assert decider.needs_household
    assert decider.decide(ctx, ContactHistory(), "t1", T0, MS) != []
    assert not Decider(load_catalogue(write_catalogue(action("x")))).needs_household


def test_a_household_shares_one_marketing_budget_per_day(write_catalogue: Write) -> None:
    store, (a, b, alone) = _family()
    decider = Decider(load_catalogue(write_catalogue(CAPPED + action("promo"))))
    assert decider.catalogue.household_cap == HouseholdCap(1, ("marketing",))
    household = store.household_of(a)

    def decide(cid: str, event: str, ms: int, member_of: HouseholdSnapshot | None) -> list[str]:
        ctx = with_household(context(customer_id=cid, nps=5), member_of)
        nbas = decider.decide(ctx, ContactHistory(), event, T0, ms, budget=store)
        return [n.action for n in nbas]

    assert decide(a, "t1", MS, household) == ["promo"]
    assert decide(b, "t2", MS + 1, household) == []  # the family's budget is spent
    assert decider.suppressed["household_cap"] == 1
    assert decide(a, "t1", MS, household) == ["promo"]  # a re-processed decision: the same
    assert decide(alone, "t3", MS, None) == ["promo"]  # no household: no family budget
    assert decide(b, "t4", MS + 86_400_000, household) == ["promo"]  # a new day


def test_a_bad_household_table_names_its_line(write_catalogue: Write) -> None:
    with pytest.raises(CatalogueError, match="max_per_day"):
        load_catalogue(write_catalogue("[household]\nmax_per_day = 0\n\n" + action("x")))
    with pytest.raises(CatalogueError, match="classes"):
        load_catalogue(
            write_catalogue('[household]\nmax_per_day = 1\nclasses = ["x"]\n\n' + action("x"))
        )
