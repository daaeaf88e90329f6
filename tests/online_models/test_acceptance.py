"""The adaptive acceptance model: Beta evidence, timeouts, AUC and health checks (#19)."""

from __future__ import annotations

import pickle
import random

from online_models.acceptance import WEEK_MS, AcceptanceModel
from online_models.settings import AcceptanceSettings

HOUR = 3_600_000


def _model(**conf: float) -> AcceptanceModel:
    return AcceptanceModel(
        {"call": 0.2, "mail": 0.1}, {"call": HOUR, "mail": 2 * HOUR}, AcceptanceSettings(**conf)
    )


def test_a_cold_start_keeps_the_fixed_rules_and_evidence_moves_the_estimate() -> None:
    model = _model()
    assert model.lift("call", "a") == 1.0 and model.lifts("a") == {}
    assert model.probability("call", "a") == 0.2  # the catalogue's prior
    for n in range(30):
        model.observe(f"n{n}", "call", "a", "accepted" if n % 2 else "rejected", n)
    assert 0.4 < model.probability("call", "a") < 0.5  # 15/30 pulled towards 0.2
    # a segment without answers starts from the action's evidence, not the bare prior
    assert model.probability("call", "new") > 0.2
    assert model.lift("mail", "a") == 1.0  # an action without answers is untouched
    assert model.figures("call")[:2] == (30, 0.5)


def test_segments_learn_apart_and_the_auc_sees_it() -> None:
    model, rng = _model(), random.Random(3)
    for n in range(2000):
        segment = "keen" if n % 2 else "cold"
        accepted = rng.random() < (0.6 if segment == "keen" else 0.05)
        model.observe(f"n{n}", "call", segment, "accepted" if accepted else "rejected", n)
    assert model.lift("call", "keen") > 2.5 > 0.5 > model.lift("call", "cold")
    n, rate, auc = model.figures("call")
    assert n == 2000 and rate is not None and auc is not None and auc > 0.75
    assert model.collect_health() == []  # a discriminating model is healthy


def test_an_unanswered_impression_times_out_into_a_no_response_negative() -> None:
    model = _model()
    assert model.observe("n1", "call", "a", "impression", 0) == []
    assert model.observe("n2", "call", "a", "impression", 0) == []
    (answer,) = model.observe("n2", "call", "a", "accepted", 10)
    assert answer.label is True
    assert model.advance(HOUR) == []  # not past the deadline yet (event time)
    (timeout,) = model.advance(HOUR + 1)
    assert (timeout.nba_id, timeout.outcome, timeout.label) == ("n1", "no_response", False)
    assert model.advance(10 * HOUR) == []
    # a late answer after the timeout teaches nothing more: one label per NBA
    assert model.observe("n1", "call", "a", "accepted", 2 * HOUR) == []
    assert model.figures("call")[0] == 2


def test_each_nba_teaches_once_and_waits_stay_bounded() -> None:
    model = _model(max_pending=3)
    assert len(model.observe("n1", "call", "a", "rejected", 0)) == 1
    assert model.observe("n1", "call", "a", "dismissed", 1) == []
    labels = [model.observe(f"i{n}", "call", "a", "impression", n) for n in range(5)]
    assert labels == [[]] * 5
    assert len(model.pending) == 3  # the earliest deadlines were learnt as no_response
    assert model.figures("call")[0] == 3


def test_an_auc_stuck_at_chance_raises_one_health_finding() -> None:
    # evidence this strong never moves the estimate: every prediction is the same
    model, rng = _model(health_min_responses=100, prior_weight=1e9), random.Random(1)
    for n in range(400):
        outcome = "accepted" if rng.random() < 0.3 else "rejected"
        model.observe(f"n{n}", "call", "same", outcome, n)
    (finding,) = model.collect_health()
    assert (finding.check, finding.action) == ("auc_stuck", "call")
    assert finding.figures["responses"] == 100
    assert abs(float(finding.figures["auc"]) - 0.5) <= 0.02


def test_responses_down_a_fifth_week_on_week_raise_a_finding() -> None:
    model = _model(min_weekly_responses=10)
    model.advance(0)
    for n in range(50):
        model.observe(f"a{n}", "call", "s", "rejected", n)  # week 0: 50
    for n in range(39):
        model.observe(f"b{n}", "call", "s", "rejected", WEEK_MS + n)  # week 1: 39 (-22 %)
    model.advance(WEEK_MS)
    assert model.collect_health() == []  # week 1 is not over
    model.advance(2 * WEEK_MS)
    (finding,) = model.collect_health()
    assert finding.check == "responses_down"
    assert finding.figures == {"responses_last_week": 39, "responses_week_before": 50}
    for n in range(45):
        model.observe(f"c{n}", "call", "s", "rejected", 2 * WEEK_MS + n)  # week 2: 45
    model.advance(3 * WEEK_MS)
    assert model.collect_health() == []  # 45 after 39 is no drop


def test_the_model_survives_a_snapshot_whole() -> None:
    model = _model()
    model.observe("n1", "call", "a", "impression", 0)
    model.observe("n2", "call", "a", "accepted", 0)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.probability("call", "a") == model.probability("call", "a")
    assert [lab.nba_id for lab in restored.advance(2 * HOUR)] == ["n1"]
