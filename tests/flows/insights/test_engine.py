from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from flows.insights.engine import Answer, InsightsEngine
from flows.insights.keydrivers import point_weights
from flows.insights.pockets import bh_adjust
from flows.insights.settings import ALL_DRIVERS, InsightsSettings
from flows.insights.weights import relative_weights
from flows.steps.ticks import Tick
from schemas.outputs import Alert, KeyDrivers

DAY = 86_400_000
START = 1_772_409_600_000  # 2026-03-02T00:00:00Z
SETTINGS = InsightsSettings(
    window_lengths_seconds=(86400,), allowed_lateness_seconds=0, bootstrap=100, min_answers=30
)
OPEN = ALL_DRIVERS.index("open_case")


def answers(n: int, seed: int = 1, day: int = 0) -> list[Answer]:
    """NPS answers driven by open_case (strongly) and last_sentiment; a low pocket planted."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        drivers = [rng.random() for _ in ALL_DRIVERS]
        drivers[OPEN] = float(rng.random() < 0.3)
        stage = "service" if drivers[OPEN] else "usage"
        channel = rng.choice(("chat", "web", "call_center"))
        score = 8.0 - 4.0 * drivers[OPEN] + 2.0 * drivers[ALL_DRIVERS.index("last_sentiment")]
        if stage == "service" and channel == "chat":
            score -= 3.0
        nps = max(0, min(10, round(score + rng.gauss(0, 1.0))))
        tp = rng.choice(("web.checkout", "chat.support"))
        out.append(
            Answer(
                f"a{seed}-{i}",
                START + day * DAY + i * 1000,
                tuple(drivers),
                nps,
                tp,
                channel,
                stage,
                "seg-0",
            )
        )
    return out


def run(
    items: list[Answer | Tick], batch: int, settings: InsightsSettings = SETTINGS
) -> list[object]:
    engine = InsightsEngine(settings)
    out: list[object] = []
    for i in range(0, len(items), batch):
        out += engine.process(items[i : i + batch])
    return out + engine.close_all()


def test_a_planted_driver_comes_out_on_top_and_significant() -> None:
    out = run([*answers(600), Tick(START + DAY)], 1000)
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    assert overall.answers == 600
    by_name = {d["driver"]: d for d in overall.drivers}
    top = max(by_name.values(), key=lambda d: d["weight"])
    assert top["driver"] == "open_case" and top["significant"] and top["sign"] == -1
    assert by_name["last_sentiment"]["significant"]
    noise = [
        d for n, d in by_name.items() if n not in {"open_case", "last_sentiment", "service_stage"}
    ]
    assert sum(d["significant"] for d in noise) <= 1  # 7 pure-noise drivers at 95 %
    for d in overall.drivers:
        assert d["low"] <= d["high"]
    # a weight near 0 may sit under its percentile interval (weights are never negative);
    # a real driver's lies inside
    assert top["low"] <= top["weight"] <= top["high"]
    assert overall.r2 == pytest.approx(sum(d["weight"] for d in overall.drivers), abs=1e-8)
    assert overall.bootstrap == 100 and overall.sample == 600


def test_the_record_weights_are_the_direct_computation_on_the_rows() -> None:
    rows = answers(300)
    out = run([*rows, Tick(START + DAY)], 1000)
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    data = np.array([[*a.drivers, a.nps] for a in rows])
    direct = relative_weights(np.cov(data, rowvar=False))
    got = np.array([d["weight"] for d in overall.drivers])
    assert np.max(np.abs(got - direct)) < 1e-9
    detractor = np.array([[*a.drivers, float(a.nps <= 6)] for a in rows])
    direct = relative_weights(np.cov(detractor, rowvar=False))
    got = np.array([d["detractor_weight"] for d in overall.drivers])
    assert np.max(np.abs(got - direct)) < 1e-9


def test_outputs_do_not_depend_on_batching_or_a_restore() -> None:
    items: list[Answer | Tick] = [
        *answers(200),
        *answers(150, seed=2, day=1),
        Tick(START + 3 * DAY),
    ]
    whole = run(items, 10_000)
    assert whole == run(items, 1) == run(items, 7)
    engine = InsightsEngine(SETTINGS)
    out = engine.process(items[:120])
    engine = InsightsEngine.restore(SETTINGS, pickle.loads(pickle.dumps(engine.snapshot())))
    out += engine.process(items[120:]) + engine.close_all()
    assert out == whole


def test_a_different_seed_moves_the_intervals_not_the_weights() -> None:
    items: list[Answer | Tick] = [*answers(200), Tick(START + DAY)]
    a = next(r for r in run(items, 100) if isinstance(r, KeyDrivers) and r.touchpoint is None)
    other = SETTINGS.model_copy(update={"seed": 7})
    b = next(
        r for r in run(items, 100, other) if isinstance(r, KeyDrivers) and r.touchpoint is None
    )
    assert [d["weight"] for d in a.drivers] == [d["weight"] for d in b.drivers]
    assert [d["low"] for d in a.drivers] != [d["low"] for d in b.drivers]


def test_a_low_pocket_raises_an_alert_with_its_evidence() -> None:
    out = run([*answers(600), Tick(START + DAY)], 1000)
    alerts = [o for o in out if isinstance(o, Alert)]
    cells = {tuple(a.evidence["cell"]) for a in alerts}
    assert ("service", "chat") in cells
    pocket = next(a for a in alerts if tuple(a.evidence["cell"]) == ("service", "chat"))
    assert pocket.kind == "nps_pocket" and pocket.evidence["q"] <= SETTINGS.pocket_fdr
    assert pocket.evidence["nps"] < pocket.evidence["complement_nps"]
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    tested = overall.pockets
    assert [p["q"] for p in tested] == pytest.approx(bh_adjust([p["p"] for p in tested]), abs=1e-7)
    assert {tuple(p["cell"]) for p in tested if p["significant"]} == cells


def test_the_channel_mix_is_the_stage_standardised_nps() -> None:
    rows = answers(400)
    out = run([*rows, Tick(START + DAY)], 1000)
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    chat = next(c for c in overall.channels if c["channel"] == "chat")

    def nps(group: list[Answer]) -> float:
        return 100 * (sum(a.nps >= 9 for a in group) - sum(a.nps <= 6 for a in group)) / len(group)

    mine = [a for a in rows if a.channel == "chat"]
    adjusted = sum(
        sum(a.stage == s for a in rows) / len(rows) * nps([a for a in mine if a.stage == s])
        for s in ("service", "usage")
    )
    assert chat["nps"] == round(nps(mine), 2)
    assert chat["mix_adjusted_nps"] == round(adjusted, 2)


def test_late_answers_are_counted_not_folded() -> None:
    engine = InsightsEngine(SETTINGS)
    engine.process([*answers(40), Tick(START + DAY + 5)])
    out = engine.process(answers(3, seed=9)) + engine.close_all()
    assert engine.late_dropped == 3
    assert out == []  # the day closed; nothing else open
    (record,) = engine.process([*answers(20, day=2), Tick(START + 3 * DAY)])
    assert isinstance(record, KeyDrivers) and record.late_answers == 3  # reported once


def test_state_is_bounded_by_the_reservoir() -> None:
    settings = SETTINGS.model_copy(update={"reservoir_rows": 50})
    engine = InsightsEngine(settings)
    engine.process(answers(2000))
    window = next(iter(engine._state.windows.values()))
    for series in window.series.values():
        assert len(series.reservoir.rows) == 50
        assert series.moments.m2.shape == (len(ALL_DRIVERS) + 2,) * 2
    assert point_weights(window.series[""].moments, len(ALL_DRIVERS), len(ALL_DRIVERS)).shape == (
        len(ALL_DRIVERS),
    )


def test_a_cell_low_only_through_its_drivers_is_no_pocket() -> None:
    rows = answers(1500, seed=3)
    out = run([*rows, Tick(START + DAY)], 1000)
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    stage_cells = {tuple(p["cell"]): p for p in overall.pockets if p["kind"] == "stage x channel"}
    # every service cell reads low (open cases pull its answers down) ...
    for channel in ("chat", "web", "call_center"):
        cell = stage_cells["service", channel]
        assert cell["nps"] < cell["complement_nps"]
    # ... but only chat is lower than its drivers explain (the planted -3)
    flagged = {c for c, p in stage_cells.items() if p["significant"]}
    assert flagged == {("service", "chat")}
    alert = next(o for o in out if isinstance(o, Alert))
    assert alert.evidence["adjusted_for"] == list(ALL_DRIVERS)
    assert "below what its drivers explain" in alert.message


def test_the_adjusted_gap_is_the_residual_gap_of_a_direct_regression() -> None:
    rows = answers(800, seed=5)
    out = run([*rows, Tick(START + DAY)], 1000)
    overall = next(r for r in out if isinstance(r, KeyDrivers) and r.touchpoint is None)
    x = np.array([[1.0, *a.drivers] for a in rows])
    y = np.array([float(a.nps) for a in rows])
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    for pocket in overall.pockets:
        kind, (first, second) = pocket["kind"], pocket["cell"]
        if kind == "stage x channel":
            inside = np.array([a.stage == first and a.channel == second for a in rows])
        else:
            inside = np.array([a.segment == first and a.touchpoint == second for a in rows])
        gap = residual[inside].mean() - residual[~inside].mean()
        assert pocket["adjusted_gap"] == pytest.approx(gap, abs=1e-4)
