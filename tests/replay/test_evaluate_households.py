"""Household scores against a small hand-made truth (replay.evaluate_households)."""

from __future__ import annotations

from typing import Any

from replay.evaluate import _people_pairwise
from replay.evaluate_households import household_scores


def _person(pid: str, household: str | None, kiosk: str | None = None) -> dict[str, Any]:
    return {"person_id": pid, "household": household, "kiosk": kiosk}


def _profile(cid: str, email: str, household: str | None) -> dict[str, Any]:
    return {"customer_id": cid, "identifiers": {"email": [email]}, "household_id": household}


TRUTH = {
    "customers": [
        _person("p1", "h1"),
        _person("p2", "h1"),
        _person("p3", "h2"),
        _person("p4", "h2"),
        _person("p5", None, "k1"),
        _person("p6", None, "k1"),
    ]
}
OWNER = {f"email:{p}@x": p for p in ("p1", "p2", "p3", "p4", "p5", "p6")}


def test_a_perfect_run() -> None:
    profiles = [
        _profile("c1", "p1@x", "hh-a"),
        _profile("c2", "p2@x", "hh-a"),
        _profile("c3", "p3@x", "hh-b"),
        _profile("c4", "p4@x", "hh-b"),
        _profile("c5", "p5@x", None),
        _profile("c6", "p6@x", None),
    ]
    scores = household_scores(profiles, OWNER, TRUTH, _people_pairwise)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (1.0, 1.0, 1.0)
    assert scores["split_share"] == scores["wrongly_joined_share"] == 0.0
    assert scores["kiosk_joins"] == 0 and scores["true_households"] == 2


def test_a_split_a_wrong_join_and_a_kiosk_join() -> None:
    profiles = [
        _profile("c1", "p1@x", "hh-a"),
        _profile("c2", "p2@x", None),  # h1 split
        _profile("c3", "p3@x", "hh-b"),
        _profile("c4", "p4@x", "hh-b"),
        _profile("c5", "p5@x", "hh-b"),  # a kiosk user joined to h2 ...
        _profile("c6", "p6@x", "hh-b"),  # ... and the other: a kiosk join
    ]
    scores = household_scores(profiles, OWNER, TRUTH, _people_pairwise)
    # predicted pairs: 6 in hh-b, of which 1 true (p3, p4); true pairs 2, found 1
    assert (scores["precision"], scores["recall"]) == (round(1 / 6, 4), 0.5)
    assert scores["split_share"] == 0.5  # h1 of h1, h2
    assert scores["wrongly_joined_share"] == 0.5  # hh-b of hh-a, hh-b
    assert scores["kiosk_joins"] == 1
