"""The decision summaries' engine: counts, no_response, late items, batching and restore."""

from __future__ import annotations

import random

from flows.insights.decisions import Answered, DecisionEngine, DecisionItem, Tally
from flows.steps.ticks import Tick
from flows.steps.windowed import Windowing
from schemas.outputs import DecisionSummary

DAY = 86_400_000
HOUR = 3_600_000
START = 1_772_409_600_000  # 2026-03-02T00:00:00Z
WINDOWS = Windowing.of((86400,), 0)
TIMEOUTS = {"call": HOUR, "offer": 2 * HOUR}


def items(seed: int, days: int = 3) -> list[DecisionItem]:
    """Tallies and responses in event-time order, with ticks between them."""
    rng = random.Random(seed)
    out: list[DecisionItem] = []
    t = START
    for n in range(400):
        t += rng.randrange(1, 2 * days * DAY // 400)
        action = rng.choice(("call", "offer"))
        held = (("cooldown", "offer"),) if rng.random() < 0.3 else ()
        out.append(Tally(t, ((action, "web"),), held))
        if rng.random() < 0.6:
            out.append(Answered(t + 10, f"n{n}", action, "impression"))
            outcome = rng.choice(("accepted", "rejected", "dismissed", None))
            if outcome is not None:
                out.append(
                    Answered(t + rng.randrange(HOUR // 2, 3 * HOUR), f"n{n}", action, outcome)
                )
        out.append(Tick(t))
    return sorted(out, key=lambda i: i.ms)  # one lane: its stamps only go up


def run(
    stream: list[DecisionItem], batch: int, restore_at: int | None = None
) -> list[DecisionSummary]:
    engine = DecisionEngine(WINDOWS, timeouts=TIMEOUTS)
    out: list[DecisionSummary] = []
    for i in range(0, len(stream), batch):
        if restore_at is not None and i >= restore_at:
            engine = DecisionEngine.resume(WINDOWS, TIMEOUTS, engine.snapshot())
            restore_at = None
        out += engine.process(stream[i : i + batch])
    return out + engine.close_all()


def test_the_counts_are_those_of_the_items_by_hand() -> None:
    stream = items(1)
    summaries = run(stream, 50)
    assert [s.window_start.day for s in summaries] == [2, 3, 4, 5][: len(summaries)]
    tallies = [i for i in stream if isinstance(i, Tally)]
    assert sum(s.nbas_total for s in summaries) == len(tallies)
    assert sum(s.suppressed_total for s in summaries) == sum(len(t.held) for t in tallies)
    answered = [i for i in stream if isinstance(i, Answered)]
    counted = sum(
        r["count"] for s in summaries for r in s.responses if r["outcome"] != "no_response"
    )
    assert counted == len(answered)
    for summary in summaries:
        for row in summary.acceptance:
            got = {
                r["outcome"]: r["count"] for r in summary.responses if r["action"] == row["action"]
            }
            answers = sum(
                got.get(o, 0) for o in ("accepted", "rejected", "dismissed", "no_response")
            )
            assert row["answered"] == answers and row["accepted"] == got.get("accepted", 0)
            assert row["rate"] == (round(row["accepted"] / answers, 4) if answers else None)


def test_an_impression_left_unanswered_is_a_no_response_at_its_deadline() -> None:
    engine = DecisionEngine(WINDOWS, timeouts=TIMEOUTS)
    late_evening = START + DAY - HOUR // 2
    engine.process(
        [
            Tally(late_evening, (("call", "web"),)),
            Answered(late_evening, "n1", "call", "impression"),
        ]
    )
    engine.process([Answered(late_evening + 60_000, "n2", "call", "impression")])
    engine.process([Answered(late_evening + 120_000, "n2", "call", "accepted")])  # n2 in time
    (first,) = engine.process([Tick(START + DAY)])
    assert {r["outcome"] for r in first.responses} == {"impression", "accepted"}
    (second,) = engine.process([Tick(START + 2 * DAY)])  # n1's wait ended on the next day
    assert second.responses == [{"action": "call", "outcome": "no_response", "count": 1}]
    assert second.acceptance[0]["rate"] == 0.0


def test_a_closed_window_is_final_and_late_items_are_counted() -> None:
    engine = DecisionEngine(WINDOWS, timeouts=TIMEOUTS)
    engine.process([Tally(START + 5, (("call", "web"),))])
    (closed,) = engine.process([Tick(START + DAY)])
    assert engine.process([Tally(START + 6, (("call", "web"),))]) == []  # its day has closed
    (after,) = engine.process([Tally(START + DAY + 1), Tick(START + 2 * DAY)])
    assert (closed.nbas_total, closed.late_items) == (1, 0)
    assert (after.nbas_total, after.late_items) == (0, 1)


def test_the_summaries_do_not_depend_on_batching_or_a_restore() -> None:
    stream = items(2)
    reference = run(stream, 1)
    assert len(reference) >= 3
    for batch in (7, 100, 5000):
        assert run(stream, batch) == reference
    assert run(stream, 13, restore_at=260) == reference


def test_an_answer_after_the_wait_is_counted_with_its_no_response() -> None:
    engine = DecisionEngine(WINDOWS, timeouts=TIMEOUTS)
    engine.process([Answered(START, "n1", "call", "impression")])
    engine.process([Answered(START + 2 * HOUR, "n1", "call", "rejected")])  # 1 h too late
    (summary,) = engine.close_all()
    assert {r["outcome"]: r["count"] for r in summary.responses} == {
        "impression": 1,
        "no_response": 1,
        "rejected": 1,
    }
