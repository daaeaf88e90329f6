"""``cxstream report``: its numbers against hand computations from the output files, and
the page rendered in a real headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib.image
import orjson
import pytest

from flows.app.cli import main
from flows.app.loop import ANSWERED_LOG, close_loop
from flows.app.offline import run_offline
from flows.insights.settings import InsightsSettings
from flows.settings import Settings
from flows.step_settings import NpsSettings
from replay.log import read_log, write_log
from replay.synthetic import generate_world, write_world


def rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    log = base / "events.jsonl"
    write_log(log, generate_world(1500, 21, seed=5).messages())
    # small enough to run in seconds: fewer answers make a leaderboard and a pocket
    settings = Settings(
        insights=InsightsSettings(pocket_min_answers=8), nps=NpsSettings(min_responses=2)
    )
    run_offline(settings, [log], base / "out")
    assert main(["report", "--from", str(base / "out"), "--out", str(base / "report")]) == 0
    return base


def test_the_report_numbers_are_the_output_files_numbers(run_dir: Path) -> None:
    out = run_dir / "out"
    page = (run_dir / "report" / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    insights, nps, profiles, nba = (
        rows(out / f"{k}.jsonl") for k in ("insights", "nps", "profiles", "nba")
    )
    # overall NPS of the period: the daily overall records, and independently the
    # touchpoints' daily NPS windows (last revisions) of the NPS step
    daily = [r for r in insights if r["touchpoint"] is None and r["window_end"][:10] != ""]
    daily = [r for r in daily if _days(r) == 1]
    answers = sum(r["answers"] for r in daily)
    overall = sum(r["nps"] * r["answers"] for r in daily) / answers
    last: dict[str, dict[str, Any]] = {}
    for w in nps:
        fresh = w["id"] not in last or w["revision"] >= last[w["id"]]["revision"]
        if w["channel"] is None and _days(w) == 1 and fresh:
            last[w["id"]] = w
    p = sum(w["promoters"] for w in last.values())
    d = sum(w["detractors"] for w in last.values())
    n = sum(w["responses"] for w in last.values())
    assert n == answers
    assert round(overall, 2) == round(100 * (p - d) / n, 2)
    assert f" {round(overall, 2)} " in text
    # leaderboard: the latest daily boundary ranking two touchpoints or more
    ranked = [w for w in last.values() if w["analysis"]["quintile_size"] is not None]
    start = max(w["window_start"] for w in ranked)
    board = sorted(
        (w for w in ranked if w["window_start"] == start and w["analysis"]["rank"]),
        key=lambda w: w["analysis"]["rank"],
    )
    assert len(board) >= 2
    table = re.findall(r"<tr><td>([a-z_.-]+)</td><td>(\d+)</td><td>(-?[\d.]+)</td>", page)
    assert [(w["touchpoint"], str(w["analysis"]["rank"]), str(w["nps"])) for w in board] == [
        t for t in table if t[0] in {w["touchpoint"] for w in board}
    ][: len(board)]
    # key drivers: the latest weekly overall record's weights, each in the table
    weekly = [r for r in insights if r["touchpoint"] is None and _days(r) == 7 and r["drivers"]]
    latest = max(weekly, key=lambda r: r["window_start"])
    for driver in latest["drivers"]:
        assert f"<td>{driver['driver']}</td><td>{driver['weight']:.4f}</td>" in page
    # pockets: every nps_pocket alert is a row
    pockets = [a for a in rows(out / "alerts.jsonl") if a["kind"] == "nps_pocket"]
    assert pockets
    for alert in pockets:
        ev = alert["evidence"]
        cell = f"<td>{ev['kind']}: {' / '.join(ev['cell'])}</td><td>{ev['answers']}</td>"
        assert cell in page
    # CEO: revenue, churn rate, LTV by segment
    revenue = sum(float(p["lifetime_value"]) for p in profiles)
    assert f"{revenue:,.2f}" in text
    churned = sum(p.get("journey_stage") == "churned" for p in profiles) / len(profiles)
    assert f"{100 * round(churned, 4):.2f} %" in text
    by_segment: dict[str, list[float]] = defaultdict(list)
    for prof in profiles:
        by_segment[prof.get("segment") or "none"].append(float(prof["lifetime_value"]))
    for segment, values in by_segment.items():
        cell = f"<td>{segment}</td><td>{len(values)}</td>"
        assert cell in page and f"<td>{round(sum(values) / len(values), 2)}</td>" in page
    # CMO: NBAs by action and channel, the funnel
    counts = Counter((a["action"], a["channel"]) for a in nba)
    assert f"<b>{len(nba)}</b>" in page and counts
    stages = Counter(prof.get("journey_stage") or "none" for prof in profiles)
    for stage, count in stages.items():
        assert f"<td>{stage}</td><td>{count}</td>" in page


def _days(record: dict[str, Any]) -> int:
    from datetime import datetime

    start = datetime.fromisoformat(record["window_start"])
    return (datetime.fromisoformat(record["window_end"]) - start).days


def test_the_page_is_self_contained(run_dir: Path) -> None:
    page = (run_dir / "report" / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) >= 8
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_chromium_renders_the_report(run_dir: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run `bash scripts/chromium.sh install`"
    page = (run_dir / "report" / "report.html").as_uri()
    shot = run_dir / "report" / "screenshot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run(
        [chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", page],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (2400, 1200)
    inked = (image[:, :, :3].mean(axis=2) < 0.9).mean()
    assert inked > 0.05, f"the screenshot is nearly blank ({inked:.1%} inked): {shot}"
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page], capture_output=True, timeout=120, check=True
    ).stdout.decode()
    assert dom.count("<img") == page_images(run_dir) and "Key drivers" in dom
    print(f"screenshot: {shot}")


def page_images(run_dir: Path) -> int:
    return (run_dir / "report" / "report.html").read_text().count("<img")


def test_a_directory_without_outputs_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", "--from", str(tmp_path), "--out", str(tmp_path / "r")])
    assert code != 0
    assert "cxstream replay run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world whose NBAs were answered (the closed loop), and its report."""
    base = tmp_path_factory.mktemp("loop")
    write_world(generate_world(200, 10, seed=5), base / "world")
    close_loop(
        Settings(), base / "world" / "events.jsonl.gz", base / "world" / "truth.json", base / "out"
    )
    assert main(["report", "--from", str(base / "out"), "--out", str(base / "report")]) == 0
    return base


def test_the_cmo_view_shows_suppressions_and_acceptance_of_the_outputs(loop_dir: Path) -> None:
    out = loop_dir / "out"
    page = (loop_dir / "report" / "report.html").read_text()
    summaries, nba = rows(out / "decisions.jsonl"), rows(out / "nba.jsonl")
    # NBAs: the summaries count what nba.jsonl holds, by action and channel (none late here)
    sent: Counter[tuple[str, str]] = Counter()
    for summary in summaries:
        sent.update({(r["action"], r["channel"]): r["count"] for r in summary["nbas"]})
    assert sum(s["late_items"] for s in summaries) == 0
    assert sent == Counter((n["action"], n["channel"]) for n in nba)
    assert f"<b>{len(nba)}</b>next-best actions" in page
    # suppressions by reason and action: every row, summed over the windows by hand
    held: Counter[str] = Counter()
    for summary in summaries:
        for r in summary["suppressions"]:
            held[f"{r['reason']} / {r['action']}"] += r["count"]
    assert held
    for key, count in held.items():
        assert f"<tr><td>{key}</td><td>{count}</td></tr>" in page
    assert f"<b>{sum(held.values())}</b>held back" in page
    # acceptance: accepted / (accepted + rejected + dismissed + no_response) over the windows
    outcomes: Counter[tuple[str, str]] = Counter()
    for summary in summaries:
        outcomes.update({(r["action"], r["outcome"]): r["count"] for r in summary["responses"]})
    # the answers counted are those of the log (every one joined: no dead letter)
    logged = Counter(
        (d["action"], d["outcome"])
        for d in (
            orjson.loads(m.value or b"")["data"]
            for m in read_log(out / ANSWERED_LOG)
            if m.value and b'"cx.nba.response"' in m.value
        )
    )
    assert logged == Counter({k: n for k, n in outcomes.items() if k[1] != "no_response"})
    assert logged and any(o == "no_response" for _, o in outcomes)
    answers = ("accepted", "rejected", "dismissed", "no_response")
    for action in sorted({a for a, _ in outcomes}):
        accepted = outcomes[action, "accepted"]
        answered = sum(outcomes[action, o] for o in answers)
        rate = "" if not answered else round(accepted / answered, 4)
        row = (
            f"<tr><td>{action}</td><td>{outcomes[action, 'impression']}</td>"
            f"<td>{accepted}</td><td>{answered}</td><td>{rate}</td></tr>"
        )
        assert row in page
    total = sum(n for (_, o), n in outcomes.items() if o in answers)
    accepted_all = sum(n for (_, o), n in outcomes.items() if o == "accepted")
    assert f"<b>{100 * round(accepted_all / total, 4):.2f} %</b>acceptance" in page
