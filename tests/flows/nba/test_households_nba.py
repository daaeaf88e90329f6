"""Households in decisions: household fields in the context, one family fatigue budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.nba.catalogue import CatalogueError, HouseholdCap, load_catalogue
from flows.nba.context import FIELDS, with_household
from flows.nba.decider import Decider
from flows.nba.policy import DAY_MS, ContactHistory
from flows.records import Journeyed, Resolved
from flows.steps.household_cap import CapIn, CapLogic, CapOut, Capped, Triggers
from flows.steps.summary import Decided
from schemas.envelope import InteractionEvent
from schemas.outputs import NextBestAction
from state.household_figures import HouseholdView, MemberFigures
from state.households import HouseholdChange, HouseholdItem, MemoryHouseholdStore
from tests.flows.nba.conftest import action, context

Write = Callable[[str], Path]
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)
CAPPED = '[household]\nmax_per_day = 1\nclasses = ["marketing"]\n\n'


def _family() -> tuple[MemoryHouseholdStore, list[str]]:
    ids = ["c0", "c1", "c2"]
    items = [
        HouseholdItem(
            f"e{i}",
            c,
            (
                HouseholdChange(
                    "link",
                    c,
                    {"address": "4 Elm Road"} if i < 2 else {},
                    figures=MemberFigures(f"{i}|e{i}", i, amount_cents=1000, nps=3),
                ),
            ),
        )
        for i, c in enumerate(ids)
    ]
    store = MemoryHouseholdStore()
    store.step(items)
    return store, ids


def _view(store: MemoryHouseholdStore, cid: str) -> HouseholdView:
    return store.step([HouseholdItem("", cid, ())]).contexts[0]


def test_the_context_carries_the_household(write_catalogue: Write) -> None:
    store, (a, _, alone) = _family()
    ctx = with_household(context(customer_id=a), _view(store, a))
    assert (ctx["household_members"], ctx["household_ltv"]) == (2, 20.0)
    assert ctx["household_detractor"] is True and ctx["household_open_case"] is False
    assert with_household(context(customer_id=alone), _view(store, alone))["household_id"] is None
    assert {"household_id", "household_ltv", "household_members"} <= set(FIELDS)
    # a rule on a household field fires on the household context
    rule = action("family_offer", when='["household_ltv >= 15"]')
    decider = Decider(load_catalogue(write_catalogue(rule)))
    assert decider.decide(ctx, ContactHistory(), "t1", T0, MS) != []


def _capped(decider: Decider, seq: int, cid: str, household: str, ms: int) -> Capped:
    event = InteractionEvent.model_validate(
        {
            "id": f"t{seq}",
            "source": "/test",
            "type": "cx.web.page.viewed",
            "time": datetime.fromtimestamp(ms / 1000, UTC).isoformat(),
            "data": {"channel": "web", "touchpoint": "web.home"},
        }
    )
    resolved = Resolved(cid, event, lane="l0", seq=seq)
    ctx = with_household(context(customer_id=cid, nps=5), HouseholdView(household, 2))
    nbas = decider.decide(ctx, ContactHistory(), event.id, event.time, ms)
    return Capped(Journeyed(resolved, None, None), household, ms // DAY_MS, tuple(nbas), ())


def test_a_household_shares_one_marketing_budget_per_day_in_lane_order(
    write_catalogue: Write,
) -> None:
    store, (a, b, alone) = _family()
    decider = Decider(load_catalogue(write_catalogue(CAPPED + action("promo"))))
    cap = decider.catalogue.household_cap
    assert cap == HouseholdCap(1, ("marketing",))
    hid = _view(store, a).household_id
    items = [
        _capped(decider, 0, a, hid, MS),
        _capped(decider, 1, b, hid, MS + 1),
        _capped(decider, 2, alone, "", MS + 2),  # no household: no family budget
        _capped(decider, 3, b, hid, MS + DAY_MS),  # a new day
    ]

    def sent(batches: list[list[CapIn]]) -> list[tuple[str, object]]:
        assert cap is not None
        logic = CapLogic(cap, store)
        out: list[CapOut] = []
        for batch in batches:
            out += logic.on_batch(batch)[0]
        return [
            (o.customer_id, o.action)
            if isinstance(o, NextBestAction)
            else (f"decided {o.seq}", o.tally.held)
            if isinstance(o, Decided)
            else ("done", o.resolved.seq)
            for o in out
        ]

    triggers = Triggers("l0", (0, 1, 2, 3))
    # decide's answers come in any order (keyed by customer): released in lane order
    shuffled = sent([[items[3], items[1]], [triggers, items[2]], [items[0]]])
    in_order = sent([[triggers, *items]])  # again: every token was spent before
    assert shuffled == in_order
    assert in_order == [
        (a, "promo"),
        ("decided 0", ()),
        ("done", 0),
        ("decided 1", (("household_cap", "promo"),)),  # the family's budget is spent
        ("done", 1),
        (alone, "promo"),
        ("decided 2", ()),
        ("done", 2),
        (b, "promo"),
        ("decided 3", ()),
        ("done", 3),
    ]


def test_a_bad_household_table_names_its_line(write_catalogue: Write) -> None:
    with pytest.raises(CatalogueError, match="max_per_day"):
        load_catalogue(write_catalogue("[household]\nmax_per_day = 0\n\n" + action("x")))
    with pytest.raises(CatalogueError, match="classes"):
        load_catalogue(
            write_catalogue('[household]\nmax_per_day = 1\nclasses = ["x"]\n\n' + action("x"))
        )
