"""The closed loop on a generated world: answers, a self-consistent log, evaluate (#19)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flows.app.cli import main
from flows.app.loop import ANSWERED_LOG, close_loop
from flows.app.offline import run_offline
from flows.settings import KafkaSettings, Settings
from online_models.settings import AcceptanceSettings, ModelSettings
from replay.evaluate import evaluate
from replay.log import read_log
from replay.synthetic import generate_world, write_world
from sinks.jsonl import OFFLINE_FILES

FIXED = Settings(models=ModelSettings(acceptance=AcceptanceSettings(enabled=False)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("world")
    write_world(generate_world(120, 14, seed=9), base)
    return base


def test_the_loop_reaches_a_log_whose_replay_gives_its_outputs(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "adaptive"
    report = close_loop(Settings(), world / "events.jsonl.gz", world / "truth.json", out)
    assert report.converged and report.responses > 0 and report.nbas > 0
    records = list(read_log(out / ANSWERED_LOG))
    responses = [r for r in records if r.value and b'"cx.nba.response"' in r.value]
    assert len(responses) == report.responses and all(r.offset is None for r in responses)
    # no response answers an NBA the run did not make, and each NBA's answers are there
    nba_ids = {orjson.loads(line)["id"] for line in (out / "nba.jsonl").read_bytes().splitlines()}
    assert {orjson.loads(r.value or b"")["data"]["nba_id"] for r in responses} <= nba_ids
    assert b'"unknown_nba"' not in (out / "dlq.jsonl").read_bytes()
    # a recorded log like any other: replayed at any batch size, the same bytes
    for size in (7, 1000):
        again = tmp_path / f"again{size}"
        settings = Settings(kafka=KafkaSettings(batch_size=size))
        run_offline(settings, [out / ANSWERED_LOG], again)
        for name in OFFLINE_FILES.values():
            assert (again / name).read_bytes() == (out / name).read_bytes(), (name, size)


def test_evaluate_reports_acceptance_and_the_lift_over_the_fixed_rules(
    world: Path, tmp_path: Path
) -> None:
    log, truth = world / "events.jsonl.gz", world / "truth.json"
    close_loop(Settings(), log, truth, tmp_path / "adaptive")
    close_loop(FIXED, log, truth, tmp_path / "fixed")
    nba = evaluate(tmp_path / "adaptive", truth, log, baseline=tmp_path / "fixed")["nba"]
    assert nba["answered"] > 0 and 0 < nba["accepted"] < nba["answered"] <= nba["shown"]
    assert nba["acceptance_rate"] == round(nba["accepted"] / nba["answered"], 4)
    # the world's dice follow its truth: the observed rate sits near the expected one
    assert abs(nba["acceptance_rate"] - nba["expected_acceptance"]) < 0.12
    fixed = nba["fixed_rules"]
    assert fixed["nbas"] > 0 and fixed["acceptance_rate"] is not None
    assert nba["lift"]["acceptance_rate"] == round(
        nba["acceptance_rate"] / fixed["acceptance_rate"], 4
    )
    assert nba["lift"]["expected_acceptance"] is not None


def test_the_cli_runs_the_loop_and_says_what_is_missing(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["replay", "loop", str(world / "events.jsonl.gz"), "--truth", str(world / "truth.json")]
    assert main([*args, "--out", str(tmp_path / "o"), "--rounds", "1"]) == 0
    assert "closed loop:" in capsys.readouterr().out
    assert main(["replay", "loop", str(tmp_path / "nope"), "--truth", "x", "--out", "o"]) == 2
    assert "no log file" in capsys.readouterr().err
