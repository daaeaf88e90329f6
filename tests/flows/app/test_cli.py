"""The command line: demo, replay run, schema export, and errors that say what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from flows.app.cli import main
from replay.log import read_log
from replay.sample import INVALID
from schemas.envelope import InteractionEvent
from sinks.jsonl import OFFLINE_FILES


def _valid_unique_ids(log: Path) -> set[str]:
    ids = set()
    for message in read_log(log):
        try:
            ids.add(InteractionEvent.model_validate_json(message.value or b"").id)
        except ValueError:
            continue
    return ids


def test_demo_writes_every_output_file_and_accounts_for_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.app.offline import SAMPLE_LOG

    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "profiles.jsonl" in printed and "dead letters by reason" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OFFLINE_FILES.values())

    dead = [orjson.loads(line) for line in (tmp_path / "dlq.jsonl").read_bytes().splitlines()]
    assert len(dead) == len(INVALID)
    assert {d["reason"] for d in dead} == {"not_json", "not_utf8", "invalid_event"}

    profiles = [
        orjson.loads(line) for line in (tmp_path / "profiles.jsonl").read_bytes().splitlines()
    ]
    assert [p["customer_id"] for p in profiles] == sorted(p["customer_id"] for p in profiles)
    # Every valid event counted exactly once (duplicates in the sample are dropped).
    assert sum(p["event_count"] for p in profiles) == len(_valid_unique_ids(SAMPLE_LOG))


def test_demo_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path / "a")]) == 0
    assert main(["demo", "--out", str(tmp_path / "b")]) == 0
    for name in OFFLINE_FILES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_rerun_into_the_same_directory_leaves_no_stale_records(tmp_path: Path) -> None:
    (tmp_path / "nba.jsonl").write_text('{"stale": true}\n')
    assert main(["demo", "--out", str(tmp_path)]) == 0
    rows = [orjson.loads(line) for line in (tmp_path / "nba.jsonl").read_bytes().splitlines()]
    assert rows and all("stale" not in row for row in rows)


def test_schema_export(tmp_path: Path) -> None:
    assert main(["schema", "export", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        f"{n}.schema.json"
        for n in (
            "interaction_event",
            "nba",
            "alerts",
            "nps",
            "insights",
            "decisions",
            "identity",
            "identity_erasure",
            "profiles",
            "households",
            "dlq",
        )
    )
    households = orjson.loads((tmp_path / "households.schema.json").read_bytes())
    assert households["x-cloudevents"]["type"] == ["cx.household.updated", "cx.household.deleted"]
    envelope = orjson.loads((tmp_path / "interaction_event.schema.json").read_bytes())
    assert {"id", "source", "type", "time", "data"} <= set(envelope["required"])


def test_a_missing_log_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "run", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no log file at" in capsys.readouterr().err


def test_a_bad_setting_says_which(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CX_LIMITS__MAX_MESSAGE_BYTES", "lots")
    monkeypatch.setenv("CX_KAFKA", '{"sasl_password": "hunter2", "brokers": 5}')
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "limits.max_message_bytes" in err and "kafka.brokers" in err
    assert "hunter2" not in err


def test_the_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows.app.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("run", "demo", "replay", "schema"):
        assert command in result.stdout
