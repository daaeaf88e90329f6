"""Decision summaries in the whole flow: what decide sent, held back and heard, per window."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from flows.insights.decisions import DecisionItem
from flows.records import Journeyed, Resolved, Scored
from flows.settings import Settings
from flows.steps.summary import Decided, Resequencer, expected, handed
from flows.steps.ticks import Stamped, Tick
from schemas.envelope import InteractionEvent
from tests.flows.test_responses import _run, response, survey
from tests.flows.test_responses import settings as settings  # noqa: PLC0414 (the fixture)


def _window(out: dict[str, list[Any]]) -> dict[str, Any]:
    (summary,) = out["decisions"]
    assert isinstance(summary, dict)
    return summary


def test_the_summary_counts_sends_holds_and_outcomes(settings: Settings) -> None:
    events = [
        survey(1, 0, 3),  # ann: callback sent
        response("evt-1", "callback", "evt-1", "impression", 5),  # shown, never answered
        survey(2, 30, 3),  # ann again: callback held back by its 2 h cool-down
        survey(3, 10, 10, "bob@example.com"),  # bob: offer sent
        response("evt-3", "offer", "evt-3", "accepted", 15),
        response("evt-9", "offer", "evt-3", "accepted", 16),  # no such NBA: not counted
        survey(4, 200, 3, "cat@example.com"),  # moves event time past the 1 h timeout
    ]
    out = _run(settings, events)
    summary = _window(out)
    assert summary["window_start"] == "2026-03-02T00:00:00Z"
    # by hand from the other outputs: every NBA, by action and channel
    sent: dict[tuple[str, str], int] = {}
    for nba in out["nba"]:
        sent[nba["action"], nba["channel"]] = sent.get((nba["action"], nba["channel"]), 0) + 1
    assert {(r["action"], r["channel"]): r["count"] for r in summary["nbas"]} == sent
    assert sent == {("callback", "call_center"): 2, ("offer", "web"): 1}
    assert summary["suppressions"] == [{"reason": "cooldown", "action": "callback", "count": 1}]
    assert summary["responses"] == [
        {"action": "callback", "outcome": "impression", "count": 1},
        {"action": "callback", "outcome": "no_response", "count": 1},
        {"action": "offer", "outcome": "accepted", "count": 1},
    ]
    rates = {a["action"]: (a["accepted"], a["answered"], a["rate"]) for a in summary["acceptance"]}
    assert rates == {"callback": (0, 1, 0.0), "offer": (1, 1, 1.0)}
    assert [d["reason"] for d in out["dlq"]] == ["unknown_nba"]
    assert (summary["nbas_total"], summary["suppressed_total"], summary["late_items"]) == (3, 1, 0)


def test_an_answer_in_time_is_no_no_response(settings: Settings) -> None:
    events = [
        survey(1, 0, 3),
        response("evt-1", "callback", "evt-1", "impression", 5),
        response("evt-1", "callback", "evt-1", "rejected", 50),
        survey(4, 200, 3, "cat@example.com"),
    ]
    outcomes = {(r["action"], r["outcome"]) for r in _window(_run(settings, events))["responses"]}
    assert outcomes == {("callback", "impression"), ("callback", "rejected")}


def _scored(seq: int, customer: str, minute: int) -> Scored:
    event = InteractionEvent.model_validate(
        {
            "id": f"e{seq}",
            "source": "/t",
            "type": "cx.web.page.viewed",
            "time": f"2026-03-02T10:{minute:02d}:00Z",
            "data": {"channel": "web", "touchpoint": "web.home"},
        }
    )
    resolved = Resolved(customer, event, lane="l0", seq=seq, wm_ms=event.epoch_ms)
    return Scored(Journeyed(resolved, None, None), 0.0, True, "s")


def test_the_resequencer_puts_decide_back_into_lane_order() -> None:
    items = [_scored(seq, f"c{seq % 3}", seq) for seq in range(30)]
    by_customer: dict[str, list[Decided | Journeyed]] = {}
    for item in items:
        resolved = item.journeyed.resolved
        mine = by_customer.setdefault(item.customer_id, [])
        if resolved.seq % 2:
            mine.append(Decided.of(resolved, [], [("cooldown", f"a{resolved.seq}")]))
        mine.append(item.journeyed)
    in_order = [h for item in items for h in by_customer[item.customer_id] if _seq(h) == _seq(item)]

    def released(batches: Sequence[Sequence[object]]) -> list[Stamped[DecisionItem]]:
        logic, out = Resequencer(), list[Stamped[DecisionItem]]()
        for batch in batches:  # each through the flat_map_batch of its side
            side = expected if isinstance(batch[0], Scored) else handed
            out += logic.on_batch(side(batch))[0]
        return [s for s in out if not isinstance(s.item, Tick)]

    reference = released([items, in_order])
    assert [s.item.held for s in reference] == [  # type: ignore[union-attr]
        (("cooldown", f"a{seq}"),) for seq in range(1, 30, 2)
    ]
    rng = random.Random(4)
    for _ in range(5):
        # decide's outputs of different customers interleave in any way; one customer's keep
        # their order; and they may come before the score step's side
        queues = [list(q) for q in by_customer.values()]
        shuffled: list[object] = []
        while any(queues):
            shuffled.append(rng.choice([q for q in queues if q]).pop(0))
        decided, scored = _batches(rng, shuffled), _batches(rng, list(items))
        batches = [*decided[:2], *scored, *decided[2:]]  # decide may come first
        assert released(batches) == reference


def _batches(rng: random.Random, stream: list[object]) -> list[list[object]]:
    cut = sorted(rng.sample(range(1, len(stream)), 4))
    return [stream[a:b] for a, b in zip([0, *cut], [*cut, len(stream)], strict=True)]


def _seq(item: Scored | Decided | Journeyed) -> int:
    if isinstance(item, Decided):
        return item.seq
    resolved = item.journeyed.resolved if isinstance(item, Scored) else item.resolved
    return resolved.seq


def test_summaries_leave_no_trace_without_decisions() -> None:
    settings = Settings.model_validate({"nba": {"enabled": False}})
    out = _run(settings, [survey(1, 0, 3), survey(4, 200, 3, "cat@example.com")])
    assert out["decisions"] == []
