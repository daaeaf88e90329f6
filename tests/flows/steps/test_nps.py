"""Touchpoint NPS windows: figures, lateness, revisions, analysis, alerts, Bytewax wrapper."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource

from flows.step_settings import NpsSettings
from flows.steps.detractor import detractor_alert
from flows.steps.nps import (
    NpsEngine,
    NpsItem,
    NpsOutput,
    nps_builder,
    nps_key,
)
from flows.steps.nps_analysis import analyse_boundary
from flows.steps.ticks import Tick, survey_items
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, NpsWindow
from tests.conftest import run_dataflow

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # midnight: aligned to hours and days
T0_MS = int(T0.timestamp() * 1000)
MINUTE = 60_000
HOUR = 3_600_000

_ids = iter(range(10**9))


def survey(
    minutes: float,
    nps: int | None = None,
    csat: int | None = None,
    touchpoint: str = "web.checkout",
    channel: str = "web",
) -> InteractionEvent:
    """A survey response ``minutes`` after T0."""
    data: dict[str, Any] = {"channel": channel, "touchpoint": touchpoint}
    if nps is not None:
        data["nps"] = nps
    if csat is not None:
        data["csat"] = csat
    return InteractionEvent.model_validate(
        {
            "id": f"s-{next(_ids)}",
            "source": "/tests",
            "type": "cx.survey.nps",
            "time": (T0 + timedelta(minutes=minutes)).isoformat(),
            "data": data,
        }
    )


def tick(minutes: float) -> Tick:
    return Tick(T0_MS + round(minutes * MINUTE))


def hourly(**overrides: Any) -> NpsSettings:
    base: dict[str, Any] = {
        "window_lengths_seconds": (3600,),
        "allowed_lateness_seconds": 0,
        "by_channel": False,
    }
    return NpsSettings(**{**base, **overrides})


def windows(outputs: list[NpsOutput]) -> list[NpsWindow]:
    return [o for o in outputs if isinstance(o, NpsWindow)]


def alerts(outputs: list[NpsOutput]) -> list[Alert]:
    return [o for o in outputs if isinstance(o, Alert)]


def one_window(outputs: list[NpsOutput]) -> NpsWindow:
    """The only output, which must be a window."""
    (window,) = outputs
    assert isinstance(window, NpsWindow)
    return window


def feed(engine: NpsEngine, items: list[NpsItem]) -> list[NpsOutput]:
    """One batch per item, as a busy stream delivers them."""
    out: list[NpsOutput] = []
    for item in items:
        out += engine.process([item])
    return out


# --- window figures -----------------------------------------------------------------


def test_nps_and_csat_figures_match_a_hand_computed_window() -> None:
    engine = NpsEngine(hourly())
    batch: list[NpsItem] = [
        survey(1, nps=10, csat=5),
        survey(5, nps=10),
        survey(10, nps=9, csat=4),
        survey(20, nps=8),
        survey(30, nps=6),
        survey(59, nps=3),
        survey(40, csat=2),  # CSAT only: counts in csat_responses, not in responses
    ]
    assert engine.process(batch) == []  # the window is still open
    window = one_window(engine.process([tick(60)]))
    # promoters 3, passives 1, detractors 2 of 6: NPS = 100 * (3 - 2) / 6 = 16.67
    assert (window.responses, window.promoters, window.passives, window.detractors) == (6, 3, 1, 2)
    assert window.nps == 16.7
    assert (window.csat_responses, window.csat_avg) == (3, 3.67)  # (5 + 4 + 2) / 3
    assert window.id == output_id("nps", "web.checkout", "", 3600, T0_MS // 1000)
    assert (window.window_start, window.window_end) == (T0, T0 + timedelta(hours=1))
    assert (window.revision, window.late_responses, window.channel) == (0, 0, None)


def test_windows_are_aligned_to_the_epoch_for_every_length() -> None:
    engine = NpsEngine(hourly(window_lengths_seconds=(86400, 3600)))
    engine.process([survey(90, nps=10)])  # 01:30
    out = windows(engine.process([tick(24 * 60)]))
    spans = sorted((w.window_start, w.window_end) for w in out)
    assert spans == [
        (T0, T0 + timedelta(days=1)),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
    ]


def test_a_window_closes_only_when_the_watermark_reaches_its_end() -> None:
    engine = NpsEngine(hourly(allowed_lateness_seconds=600))
    engine.process([survey(30, nps=9)])
    assert engine.process([Tick(T0_MS + HOUR + 600_000 - 1)]) == []
    assert engine.watermark_ms == T0_MS + HOUR - 1  # 1 ms short of the window's end
    window = one_window(engine.process([tick(70)]))
    assert window.responses == 1


def test_a_window_without_nps_answers_has_no_nps() -> None:
    engine = NpsEngine(hourly())
    engine.process([survey(5, csat=4)])
    window = one_window(engine.process([tick(60)]))
    assert (window.responses, window.nps, window.csat_avg) == (0, None, 4.0)


def test_per_channel_windows_go_out_next_to_the_touchpoint_window() -> None:
    engine = NpsEngine(hourly(by_channel=True))
    engine.process(
        [
            survey(1, nps=10, channel="web"),
            survey(2, nps=9, channel="web"),
            survey(3, nps=0, channel="app"),
        ]
    )
    out = windows(engine.process([tick(60)]))
    assert [(w.channel, w.responses, w.nps) for w in out] == [
        (None, 3, 33.3),
        ("app", 1, -100.0),
        ("web", 2, 100.0),
    ]
    assert len({w.id for w in out}) == 3
    assert out[2].id == output_id("nps", "web.checkout", "web", 3600, T0_MS // 1000)
    assert out[0].analysis and out[1].analysis == {} == out[2].analysis


def test_a_sparse_touchpoint_closes_on_ticks_from_other_traffic() -> None:
    engine = NpsEngine(hourly())
    engine.process([survey(10, nps=9, touchpoint="store.till")])
    # Later traffic carries no survey for the till; its tick alone moves the clock.
    page_view = InteractionEvent.model_validate(
        {
            "id": "pv-1",
            "source": "/tests",
            "type": "cx.web.page.viewed",
            "time": (T0 + timedelta(minutes=75)).isoformat(),
            "data": {"channel": "web", "touchpoint": "web.home"},
        }
    )
    items = [s.item for s in survey_items([page_view])]
    assert items == [Tick(page_view.epoch_ms)]
    window = one_window(engine.process(items))
    assert (window.touchpoint, window.responses) == ("store.till", 1)


def test_out_of_order_input_within_lateness_gives_the_same_windows() -> None:
    rng = random.Random(7)
    lateness_ms = 600_000
    settings = NpsSettings(window_lengths_seconds=(3600, 86400), allowed_lateness_seconds=600)
    touchpoints = ["web.checkout", "app.login", "store.till"]
    events = [
        survey(
            rng.uniform(0, 6 * 60),
            nps=rng.choice([None, *range(11)]) if i % 5 else rng.randrange(11),
            csat=rng.choice([None, None, 1, 2, 3, 4, 5]),
            touchpoint=rng.choice(touchpoints),
            channel=rng.choice(["web", "app", "email"]),
        )
        for i in range(600)
    ]
    in_order = sorted(events, key=lambda e: e.epoch_ms)
    # Each event displaced by less than the lateness: never behind the watermark.
    shuffled = sorted(events, key=lambda e: e.epoch_ms + rng.uniform(0, lateness_ms - 1))
    assert shuffled != in_order

    def run(items: list[InteractionEvent], batch: int) -> dict[str, NpsWindow]:
        engine = NpsEngine(settings)
        out: list[NpsOutput] = []
        for start in range(0, len(items), batch):
            out += engine.process(items[start : start + batch])
        out += engine.close_all()
        assert engine.late_dropped == 0
        result = {w.id: w for w in windows(out)}
        assert len(result) == len(windows(out))  # no revisions either
        return result

    reference = run(in_order, 1)
    assert len(reference) > 20
    assert run(shuffled, 1) == reference
    assert run(shuffled, 37) == reference


# --- late data ----------------------------------------------------------------------


def test_late_response_within_the_horizon_revises_the_window() -> None:
    engine = NpsEngine(hourly(revision_horizon_seconds=3600))
    engine.process([survey(10, nps=10), survey(20, nps=10)])
    first = one_window(engine.process([tick(60)]))
    assert (first.revision, first.nps) == (0, 100.0)
    second = one_window(engine.process([tick(90), survey(30, nps=0)]))
    assert (second.id, second.revision, second.responses, second.nps) == (first.id, 1, 3, 33.3)
    third = one_window(engine.process([tick(119.9), survey(40, nps=0)]))
    assert (third.id, third.revision, third.nps) == (first.id, 2, 0.0)
    assert engine.late_dropped == 0


def test_too_late_responses_are_counted_and_reported_on_the_next_window() -> None:
    engine = NpsEngine(hourly(revision_horizon_seconds=3600))
    engine.process([survey(10, nps=9)])
    engine.process([tick(60)])  # 00:00-01:00 goes out
    assert engine.process([tick(120)]) == []  # ... and is forgotten at 02:00
    assert engine.process([survey(30, nps=0), survey(31, nps=0)]) == []
    assert engine.late_dropped == 2
    engine.process([survey(130, nps=10)])
    window = one_window(engine.process([tick(180)]))
    assert (window.window_start, window.responses) == (T0 + timedelta(hours=2), 1)
    assert window.late_responses == 2  # the two dropped answers, not folded in
    engine.process([survey(190, nps=10)])
    after = one_window(engine.process([tick(240)]))
    assert after.late_responses == 0  # reported once


def test_late_counts_still_pending_at_eof_go_out_on_a_revision() -> None:
    engine = NpsEngine(hourly(revision_horizon_seconds=3600))
    engine.process([survey(10, nps=9), survey(130, nps=9)])
    engine.process([tick(180)])  # 02:00-03:00 out, still revisable; 00:00-01:00 forgotten
    engine.process([survey(20, nps=0)])
    assert engine.late_dropped == 1
    revised = one_window(engine.close_all())
    assert revised.window_start == T0 + timedelta(hours=2)
    assert (revised.revision, revised.late_responses, revised.responses) == (1, 1, 1)


def test_a_response_too_late_for_the_hour_still_counts_in_the_day() -> None:
    engine = NpsEngine(
        NpsSettings(
            window_lengths_seconds=(3600, 86400),
            allowed_lateness_seconds=0,
            revision_horizon_seconds=0,
            by_channel=False,
        )
    )
    engine.process([survey(10, nps=10), tick(60)])
    engine.process([survey(20, nps=0)])  # the hour is closed and not revisable
    assert engine.late_dropped == 1
    out = windows(engine.close_all())
    day = next(w for w in out if w.window_end - w.window_start == timedelta(days=1))
    assert (day.responses, day.late_responses) == (2, 0)


def test_eof_closes_every_open_window() -> None:
    engine = NpsEngine(NpsSettings())
    engine.process([survey(10, nps=10, channel="app"), survey(20, nps=0, touchpoint="app.home")])
    out = windows(engine.close_all())
    assert len(out) == 2 * 2 * 2  # 2 touchpoints x (own + channel window) x 2 lengths
    assert engine.window_count == 8  # still held: later input can revise them
    assert engine.close_all() == []


# --- cross-touchpoint analysis ------------------------------------------------------

# touchpoint: (promoters, passives, detractors)
BOARD = {
    "a": (8, 2, 0),  # 80
    "b": (5, 4, 1),  # 40
    "c": (4, 4, 2),  # 20
    "h": (4, 4, 2),  # 20: ties with c, ranked after it by name
    "d": (3, 4, 3),  # 0
    "e": (2, 4, 4),  # -20
    "f": (1, 2, 7),  # -60
    "g": (0, 0, 2),  # -100, but only 2 answers: not ranked
}


def _board_events() -> list[NpsItem]:
    items: list[NpsItem] = []
    for touchpoint, (promoters, passives, detractors) in BOARD.items():
        scores = [10] * promoters + [8] * passives + [2] * detractors
        items += [survey(i, nps=s, touchpoint=touchpoint) for i, s in enumerate(scores)]
    return items


def test_leaderboard_quintiles_and_impact_on_a_hand_made_boundary() -> None:
    engine = NpsEngine(hourly(min_responses=5))
    engine.process(_board_events())
    out = {w.touchpoint: w for w in windows(engine.process([tick(60)]))}
    ranks = {tp: w.analysis["rank"] for tp, w in out.items()}
    assert ranks == {"a": 1, "b": 2, "c": 3, "h": 4, "d": 5, "e": 6, "f": 7, "g": None}
    a = out["a"].analysis
    # 27 promoters, 21 detractors of 72 answers: 100 * 6 / 72 = 8.33
    assert (a["overall_nps"], a["overall_responses"], a["of"]) == (8.3, 72, 7)
    # 7 ranked touchpoints: quintiles of max(1, round(7 / 5)) = 1 each
    assert (a["quintile_size"], a["top_quintile_nps"], a["bottom_quintile_nps"]) == (1, 80.0, -60.0)
    assert a["quintile_gap"] == 140.0
    assert [out[tp].analysis["quintile"] for tp in "abcdefg"] == [
        "top",
        None,
        None,
        None,
        None,
        "bottom",
        None,
    ]
    # impact = share of answers x (NPS - overall): a = 10/72 x (80 - 8.33) = 9.95
    assert a["impact"] == 9.95
    assert out["f"].analysis["impact"] == round(10 / 72 * (-60 - 600 / 72), 2) == -9.49
    assert out["g"].analysis["impact"] is None


def test_impacts_sum_to_zero_and_quintiles_grow_with_the_field() -> None:
    figures = {f"tp{i:02d}": (i, 10 - i, 10) for i in range(10)}  # NPS -100 .. 80
    analysis = analyse_boundary(figures, min_responses=5)
    assert analysis.quintile_size == 2
    assert analysis.top_quintile_nps == 70.0  # (80 + 60) / 2
    assert analysis.bottom_quintile_nps == -90.0  # (-80 + -100) / 2
    assert sum(s.impact for s in analysis.leaderboard) == pytest.approx(0.0, abs=1e-9)
    single = analyse_boundary({"only": (5, 0, 5)}, min_responses=5)
    assert single.quintile_size is None
    assert single.for_touchpoint("only")["rank"] == 1


def test_a_revision_updates_the_analysis_of_the_whole_boundary() -> None:
    engine = NpsEngine(hourly(min_responses=1, revision_horizon_seconds=3600))
    engine.process([survey(1, nps=10, touchpoint="a"), survey(2, nps=9, touchpoint="b")])
    engine.process([survey(3, nps=0, touchpoint="b")])
    first = {w.touchpoint: w for w in windows(engine.process([tick(60)]))}
    assert (first["a"].analysis["rank"], first["b"].analysis["rank"]) == (1, 2)
    revised = windows(engine.process([survey(4, nps=0, touchpoint="a"), tick(61)]))
    # a's figures changed; b's rank and impact did too, so both go out again
    assert {(w.touchpoint, w.revision) for w in revised} == {("a", 1), ("b", 1)}
    assert all(w.id == first[w.touchpoint].id for w in revised)


# --- alerts -------------------------------------------------------------------------


def _hour(hour: int, scores: list[int], touchpoint: str = "web.checkout") -> list[NpsItem]:
    return [survey(hour * 60 + i, nps=s, touchpoint=touchpoint) for i, s in enumerate(scores)]


GOOD = [10, 10, 10, 8, 8]  # NPS 60


def test_touchpoint_nps_drop_fires_against_the_baseline() -> None:
    engine = NpsEngine(hourly(baseline_windows=3, min_responses=5, revision_horizon_seconds=0))
    for hour in range(3):
        assert alerts(engine.process([*_hour(hour, GOOD), tick(hour * 60 + 60)])) == []
    out = engine.process([*_hour(3, [10, 8, 8, 2, 2]), tick(240)])  # NPS -20: 80 below
    (window,) = windows(out)
    (alert,) = alerts(out)
    assert out == [window, alert]
    assert alert.kind == "touchpoint_nps_drop"
    assert (alert.touchpoint, alert.customer_id, alert.severity) == (
        "web.checkout",
        None,
        "critical",
    )
    assert alert.id == output_id("alert", "touchpoint_nps_drop", window.id, 0)
    assert alert.time == window.window_end
    ev = alert.evidence
    assert (ev["window_id"], ev["nps"], ev["baseline"], ev["responses"]) == (
        window.id,
        -20.0,
        60.0,
        5,
    )
    assert ev["baseline_windows"] == 3
    # back to normal: no alert
    assert alerts(engine.process([*_hour(4, GOOD), tick(300)])) == []


def test_the_baseline_is_the_latest_windows_only() -> None:
    engine = NpsEngine(hourly(baseline_windows=2, min_responses=5, revision_horizon_seconds=0))
    engine.process([*_hour(0, [2, 2, 2, 2, 2]), tick(60)])  # NPS -100, outside the baseline
    engine.process([*_hour(1, GOOD), *_hour(2, GOOD), tick(180)])
    (alert,) = alerts(engine.process([*_hour(3, [10, 10, 8, 8, 2]), tick(240)]))  # NPS 20
    assert (alert.evidence["baseline"], alert.evidence["drop"]) == (60.0, 40.0)


@pytest.mark.parametrize(
    ("history", "scores", "why"),
    [
        ([GOOD, GOOD], [2, 2, 2, 2], "too few answers in the window"),
        ([GOOD], [2, 2, 2, 2, 2], "one baseline window only"),
        ([GOOD, [10, 10, 2, 2]], [2, 2, 2, 2, 2], "a baseline window with too few answers"),
        ([GOOD, GOOD], [10, 10, 8, 8, 8], "a 20-point drop is not MORE than 20"),
    ],
)
def test_touchpoint_nps_drop_stays_silent(
    history: list[list[int]], scores: list[int], why: str
) -> None:
    engine = NpsEngine(hourly(baseline_windows=6, min_responses=5, revision_horizon_seconds=0))
    out: list[NpsOutput] = []
    for hour, past in enumerate(history):
        out += engine.process([*_hour(hour, past), tick(hour * 60 + 60)])
    hour = len(history)
    out += engine.process([*_hour(hour, scores), tick(hour * 60 + 60)])
    assert alerts(out) == [], why


@pytest.mark.parametrize(
    ("promoters", "detractors", "severity"),
    [(11, 4, "medium"), (10, 5, "high"), (9, 6, "critical")],  # NPS 35, 25, 15 of 20 answers
)
def test_drop_severity_grows_with_the_drop(promoters: int, detractors: int, severity: str) -> None:
    engine = NpsEngine(hourly(baseline_windows=2, min_responses=5, revision_horizon_seconds=0))
    engine.process(_hour(0, GOOD) + _hour(1, GOOD) + [tick(120)])
    scores = [10] * promoters + [2] * detractors + [8] * (20 - promoters - detractors)
    (alert,) = alerts(engine.process([*_hour(2, scores), tick(180)]))
    # drops of 25, 35 and 45 points against a 20-point threshold
    assert alert.severity == severity


def test_a_revision_that_reveals_a_drop_alerts_once() -> None:
    engine = NpsEngine(hourly(baseline_windows=2, min_responses=5, revision_horizon_seconds=3600))
    engine.process(_hour(0, GOOD) + _hour(1, GOOD) + [tick(120)])
    assert alerts(engine.process([*_hour(2, [10, 10, 10, 8]), tick(180)])) == []  # 4 answers
    out = engine.process([survey(150, nps=0), survey(151, nps=0)])  # late, within the horizon
    (window,) = windows(out)
    (alert,) = alerts(out)
    assert (window.revision, window.responses) == (1, 6)
    assert alert.id == output_id("alert", "touchpoint_nps_drop", window.id, 1)
    assert alerts(engine.process([survey(152, nps=0)])) == []  # already alerted for this window


@pytest.mark.parametrize("score", range(11))
def test_detractor_alert_for_zero_to_six_only(score: int) -> None:
    event = survey(5, nps=score, csat=3)
    alert = detractor_alert(event, "cust-9", sla_hours=24)
    if score >= 7:
        assert alert is None
        return
    assert alert is not None
    assert (alert.kind, alert.customer_id, alert.touchpoint) == (
        "detractor",
        "cust-9",
        "web.checkout",
    )
    assert alert.severity == ("high" if score <= 3 else "medium")
    assert alert.id == output_id("alert", "detractor", event.id)
    assert (alert.time, alert.due_at) == (event.time, event.time + timedelta(hours=24))
    assert alert.evidence["event_ids"] == [event.id] and alert.evidence["nps"] == score


def test_no_detractor_alert_for_csat_only() -> None:
    assert detractor_alert(survey(5, csat=1), None) is None


# --- state, snapshots and the Bytewax wrapper ---------------------------------------


def test_state_is_bounded_over_a_long_stream() -> None:
    settings = NpsSettings(baseline_windows=3, min_responses=1)
    engine = NpsEngine(settings)
    for hour in range(24 * 10):
        engine.process(_hour(hour, [9, 3]) + _hour(hour, [7], touchpoint="app.home"))
    # held: windows within lateness + horizon, 2 touchpoints x 2 series x 2 lengths at most
    assert engine.window_count <= 2 * 2 * (3 + 2)
    history = engine._state.history
    assert history and all(len(past) <= settings.baseline_windows + 2 for past in history.values())


def test_snapshot_round_trip_continues_where_it_left_off() -> None:
    settings = NpsSettings(allowed_lateness_seconds=300)
    items: list[NpsItem] = [
        survey(m, nps=m % 11, touchpoint=f"tp{m % 3}", channel="web" if m % 2 else "app")
        for m in range(0, 300, 7)
    ]
    whole = NpsEngine(settings)
    expected = feed(whole, items) + whole.close_all()
    first = NpsEngine(settings)
    out = feed(first, items[:20])
    snap = first.snapshot()
    feed(first, items[20:25])  # changes after the snapshot do not leak into it
    resumed = NpsEngine.restore(settings, snap)
    out += feed(resumed, items[20:]) + resumed.close_all()
    assert out == expected


def _nps_flow(source: TestingSource[InteractionEvent], out: list[NpsOutput]) -> Dataflow:
    flow = Dataflow("nps_test")
    events = op.input("input", flow, source)
    items = op.flat_map_batch("survey_items", events, survey_items)
    keyed = op.key_on("nps_key", items, nps_key)
    nps = op.stateful_batch("nps", keyed, nps_builder(NpsSettings(allowed_lateness_seconds=0)))
    op.output("emit", op.key_rm("unkey", nps), TestingSink(out))
    return flow


def _stream() -> list[InteractionEvent]:
    events = [survey(m * 5, nps=m % 11, touchpoint=f"tp{m % 2}") for m in range(40)]
    page_views = [
        InteractionEvent.model_validate(
            {
                "id": f"pv-{m}",
                "source": "/tests",
                "type": "cx.web.page.viewed",
                "time": (T0 + timedelta(minutes=m * 5 + 2)).isoformat(),
                "data": {"channel": "web", "touchpoint": "web.home"},
            }
        )
        for m in range(40)
    ]
    return sorted(events + page_views, key=lambda e: e.epoch_ms)


def _latest(out: list[NpsOutput]) -> dict[str, NpsWindow]:
    latest: dict[str, NpsWindow] = {}
    for w in windows(out):
        if w.id not in latest or w.revision > latest[w.id].revision:
            latest[w.id] = w
    return latest


def test_the_logic_runs_in_a_real_dataflow() -> None:
    stream = _stream()
    out: list[NpsOutput] = []
    run_dataflow(_nps_flow(TestingSource(stream, 4), out))
    engine = NpsEngine(NpsSettings(allowed_lateness_seconds=0))
    expected = engine.process([s.item for s in survey_items(stream)]) + engine.close_all()
    assert _latest(out) == _latest(expected)
    hours = {
        w.window_start for w in windows(out) if w.window_end - w.window_start == timedelta(hours=1)
    }
    assert len(hours) == 4  # 00:00 .. 03:00; the last one closed by on_eof
    days = [w for w in windows(out) if w.window_end - w.window_start == timedelta(days=1)]
    assert {w.responses for w in days if w.channel is None} == {20}  # on_eof closed the day


def test_a_killed_dataflow_resumes_from_its_snapshot(tmp_path: Path) -> None:
    stream = _stream()
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    recovery = RecoveryConfig(str(tmp_path))  # type: ignore[no-untyped-call]
    items: list[Any] = [*stream[:50], TestingSource.ABORT(), *stream[50:]]
    before: list[NpsOutput] = []
    run_dataflow(
        _nps_flow(TestingSource(items, 4), before),
        epoch_interval=timedelta(0),
        recovery_config=recovery,
    )
    closed_before = {w.id for w in windows(before)}
    assert closed_before  # 00:00 and 01:00 went out before the crash
    after: list[NpsOutput] = []
    run_dataflow(
        _nps_flow(TestingSource(items, 4), after),
        epoch_interval=timedelta(0),
        recovery_config=recovery,
    )
    # Resumed from the snapshot, not from scratch: what went out is not sent again ...
    assert closed_before.isdisjoint(w.id for w in windows(after))
    reference: list[NpsOutput] = []
    run_dataflow(_nps_flow(TestingSource(stream, 4), reference))
    # ... and the windows open across the crash kept what they had before it.
    assert _latest(before + after) == _latest(reference)
