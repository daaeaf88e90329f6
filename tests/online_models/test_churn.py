"""The churn engine: learning from scoring-time snapshots, alerts, drift, determinism, quality."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.churn_eval import replay, world_steps
from online_models.churn import ChurnEngine
from online_models.features import CustomerFeatures
from online_models.settings import ModelSettings
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from tests.online_models.conftest import ev, ms

CLOSED = "cx.account.closed"


class Stub:
    """A classifier that answers ``p`` (or ``x["exit_fresh"]`` if asked) and records lessons."""

    def __init__(self, p: float = 0.1, from_exits: bool = False) -> None:
        self.p = p
        self.from_exits = from_exits
        self.lessons: list[tuple[dict[str, float], bool]] = []

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        p = x.get("exit_fresh", 0.0) if self.from_exits else self.p
        return {False: 1 - p, True: p}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.lessons.append((x, y))


def settings(**churn: Any) -> ModelSettings:
    return ModelSettings(churn={"label_grace_hours": 0, **churn})


def test_learns_the_features_as_they_were_when_scored() -> None:
    stub = Stub()
    engine = ChurnEngine(settings(), model=stub)
    ann = CustomerFeatures()
    engine.step("ann", ev(1, 0), ann, None, "usage")
    at_scoring = ann.vector(ms(0))
    # later the same day (no new snapshot), then trouble, then the churn
    engine.step("ann", ev(2, 0.5, touchpoint="call_center.cancellations"), ann, -0.9, "service")
    engine.step("ann", ev(3, 2, touchpoint="web.account"), ann, -0.9, "service")
    engine.step("ann", ev(4, 3, CLOSED), ann, None, "churned")
    assert stub.lessons == []  # a positive is learnt when its horizon has passed
    engine.observe("bob", ev(5, 33))
    assert [y for _, y in stub.lessons] == [True, True]  # the snapshots of day 0 and day 2
    first, _ = stub.lessons[0]
    assert first == at_scoring
    assert first["exits"] == 0.0 != ann.vector(ms(3))["exits"]


def test_positives_can_be_learnt_when_the_churn_arrives() -> None:
    stub = Stub()
    engine = ChurnEngine(settings(learn_positives="at_churn"), model=stub)
    ann = CustomerFeatures()
    engine.step("ann", ev(1, 0), ann, None, None)
    engine.step("ann", ev(2, 3, CLOSED), ann, None, "churned")
    assert [y for _, y in stub.lessons] == [True]
    engine.observe("bob", ev(3, 31))
    assert len(stub.lessons) == 1  # evaluated at the horizon, not learnt twice
    assert engine.evaluation.n == 0  # the engine was not warm when it scored


def test_negative_only_after_the_horizon_in_event_time() -> None:
    stub = Stub()
    engine = ChurnEngine(settings(horizon_days=10), model=stub)
    engine.step("ann", ev(1, 0), CustomerFeatures(), None, None)
    engine.observe("bob", ev(2, 10))
    assert stub.lessons == []
    engine.observe("bob", ev(3, 10.001))
    assert [y for _, y in stub.lessons] == [False]


def test_a_churn_event_is_scored_but_never_kept() -> None:
    engine = ChurnEngine(settings(), model=Stub())
    engine.step("ann", ev(1, 0, CLOSED), CustomerFeatures(), None, "churned")
    assert engine.labels.pending == 0 and engine.scored == 1


def test_late_events_are_scored_not_kept() -> None:
    engine = ChurnEngine(ModelSettings(churn={"label_grace_hours": 24}), model=Stub())
    engine.step("ann", ev(1, 10), CustomerFeatures(), None, None)
    engine.step("bob", ev(2, 8), CustomerFeatures(), None, None)
    assert engine.metrics()["late"] == 1
    assert engine.labels.pending == 1


def risky(engine: ChurnEngine, f: CustomerFeatures, n: int, day: float, exits: bool) -> list[Any]:
    touchpoint = "call_center.cancellations" if exits else "web.home"
    return engine.step("ann", ev(n, day, touchpoint=touchpoint), f, None, None)[1]


def test_churn_risk_alert_once_per_crossing_and_rearmed() -> None:
    engine = ChurnEngine(settings(warmup_labels=0, warmup_per_class=0), model=Stub(from_exits=True))
    f = CustomerFeatures()
    assert risky(engine, f, 1, 0, exits=False) == []
    alerts = risky(engine, f, 2, 0.1, exits=True)  # exit_fresh = 1
    assert [a.kind for a in alerts] == ["churn_risk"]
    (alert,) = alerts
    assert alert.id == output_id("alert", "churn_risk", "e2")
    assert alert.customer_id == "ann" and alert.evidence["event_ids"] == ["e2"]
    assert f.at_risk and f.churn_score is not None and f.churn_score >= 0.7
    assert risky(engine, f, 3, 0.2, exits=True) == []  # still above: no repeat
    # months later the exit signal has faded below threshold - rearm: re-armed
    assert risky(engine, f, 4, 200, exits=False) == []
    assert not f.at_risk
    assert [a.kind for a in risky(engine, f, 5, 200.1, exits=True)] == ["churn_risk"]


def test_no_churn_risk_before_the_warm_up() -> None:
    engine = ChurnEngine(settings(warmup_labels=5), model=Stub(from_exits=True))
    f = CustomerFeatures()
    assert risky(engine, f, 1, 0, exits=True) == []
    assert not engine.warm and not f.at_risk


def daily_stream(
    days: int, churn: Any, customers: int = 60, seed: int = 0
) -> Iterator[tuple[str, InteractionEvent]]:
    """Every customer active every day; ``churn(day, rng)`` says if they close that day."""
    rng = random.Random(seed)
    n = 0
    for day in range(days):
        for c in range(customers):
            n += 1
            closed = churn(day, rng)
            yield f"c{c}", ev(n, day + c / 1000, CLOSED if closed else "cx.web.page.viewed")


def run_drift(churn: Any) -> tuple[ChurnEngine, list[Any]]:
    engine = ChurnEngine(settings(warmup_labels=0, warmup_per_class=0), model=Stub(0.1))
    people: dict[str, CustomerFeatures] = {}
    alerts = []
    for customer, event in daily_stream(240, churn):
        features = people.setdefault(customer, CustomerFeatures())
        alerts += engine.step(customer, event, features, None, None)[1]
    return engine, alerts


def test_model_drift_alert_on_an_abrupt_concept_change() -> None:
    # nobody leaves for 120 days, then everybody keeps leaving: the model's error jumps
    engine, alerts = run_drift(lambda day, rng: day >= 120 and rng.random() < 0.2)
    drift = [a for a in alerts if a.kind == "model_drift"]
    assert drift, engine.metrics()
    first = drift[0]
    assert first.customer_id is None
    assert first.id == output_id("alert", "model_drift", first.evidence["event_ids"][0])
    assert first.time >= ev(0, 120).time


def test_no_model_drift_alert_on_a_stationary_stream() -> None:
    engine, alerts = run_drift(lambda day, rng: rng.random() < 0.01)
    assert engine.evaluation.n > 5000
    assert [a for a in alerts if a.kind == "model_drift"] == []


def test_metrics_and_forget() -> None:
    engine = ChurnEngine(settings(), model=Stub())
    engine.step("ann", ev(1, 0), CustomerFeatures(), None, None)
    m = engine.metrics()
    assert {"model", "warm", "scored", "labelled", "pending", "prequential"} <= set(m)
    assert m["pending"] == 1 and m["prequential"]["n"] == 0
    assert engine.forget("ann") == 1
    assert engine.metrics()["pending"] == 0


@pytest.fixture(scope="module")
def world() -> list[Any]:
    return world_steps(1500, 90, seed=3)


def test_the_same_stream_twice_gives_the_same_scores(world: list[Any]) -> None:
    part = world[:15_000]
    first, second = replay(part), replay(part)
    assert first.scores == second.scores
    assert first.engine.metrics() == second.engine.metrics()


def test_prequential_churn_auc_is_well_above_chance(world: list[Any]) -> None:
    run = replay(world)
    report = run.engine.metrics()
    assert report["warm"]
    preq = report["prequential"]
    assert preq["n"] > 2000 and preq["positives"] > 100
    assert preq["auc"] > 0.7, preq
    assert preq["log_loss"] < 0.5
