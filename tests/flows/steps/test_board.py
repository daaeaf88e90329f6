"""The board steps in the real flow: NBAs, alerts, timeline, merges, erasure; outputs unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from flows.api_settings import ApiSettings
from flows.app.stores import make_store
from flows.settings import Settings
from schemas.records import RawMessage
from state.redis_actions import board_for
from tests.conftest import make_event, raw, run_flow

FAR_FUTURE_MS = 10**13


def _messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    return [raw(e, offset=i) for i, e in enumerate(events)]


def _survey(n: int, nps: int, **ids: str) -> dict[str, Any]:
    event = make_event(n, identifiers=ids, channel="call_center", nps=nps)
    event["data"]["touchpoint"] = "call_center.billing"
    return {**event, "type": "cx.survey.nps"}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_flow_keeps_the_board(workers: int) -> None:
    events = [
        make_event(1, identifiers={"email": "ann@example.com"}),
        _survey(2, 2, email="ann@example.com"),  # detractor: an NBA and an alert
        make_event(3, identifiers={"crm_id": "C-9"}),
        make_event(4, identifiers={"crm_id": "C-9", "email": "ann@example.com"}),  # merge
        make_event(5, identifiers={"email": "bob@example.com"}),
        _survey(6, 1, email="bob@example.com"),
        {**make_event(7, identifiers={"email": "bob@example.com"}), "type": "cx.privacy.erase"},
    ]
    store = make_store(Settings(), default="memory")
    out = run_flow(_messages(events), store=store, workers=workers)
    board = board_for(store)
    ann = store.lookup("email", "ann@example.com")
    assert ann is not None
    bob_nbas = [n for n in out["nba"] if n["customer_id"] != ann]
    assert bob_nbas, "the erased customer had an NBA before the erasure"
    held = board.actions(ann, 0)
    assert [n["id"] for n in held.nbas] == [n["id"] for n in out["nba"] if n["customer_id"] == ann]
    assert held.nbas
    assert {a["id"] for a in held.alerts} == {
        a["id"] for a in out["alerts"] if a.get("customer_id") == ann
    }
    # the merged-away customer's interaction moved to the survivor, in time order
    assert [e["id"] for e in board.timeline(ann)] == ["evt-1", "evt-2", "evt-3", "evt-4"]
    assert all(board.timeline(c) == [] for c in store.customers() if c != ann)
    survey = board.timeline(ann)[1]
    assert (survey["touchpoint"], survey["nps"]) == ("call_center.billing", 2)
    # the erased customer left the board whole
    assert all(board.nba(n["id"]) is None for n in bob_nbas)
    assert board.actions(bob_nbas[0]["customer_id"], 0).alerts == []


def test_the_board_changes_no_output() -> None:
    events = [
        _survey(n, n % 11, email=f"u{n % 4}@example.com") if n % 3 else make_event(n)
        for n in range(30)
    ]
    with_board = run_flow(_messages(events), Settings())
    without = run_flow(_messages(events), Settings(api=ApiSettings(board=False)))
    assert with_board == without
    assert with_board["nba"]
    off = make_store(Settings(), default="memory")
    run_flow(_messages(events), Settings(api=ApiSettings(board=False)), store=off)
    assert all(board_for(off).timeline(c) == [] for c in off.customers())
    assert board_for(off).actions(off.customers()[0], FAR_FUTURE_MS).nbas == []
