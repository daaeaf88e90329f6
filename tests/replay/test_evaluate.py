"""`cxstream generate`, a replay run of the world, and `cxstream evaluate` on it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flows.cli import main
from replay.evaluate import _auc, identity_scores


def test_generate_replay_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = tmp_path / "world"
    assert (
        main(["generate", "--customers", "120", "--days", "30", "--seed", "3", "--out", str(world)])
        == 0
    )
    assert (world / "events.jsonl.gz").is_file() and (world / "truth.json").is_file()
    assert (
        main(["replay", "run", str(world / "events.jsonl.gz"), "--out", str(tmp_path / "o")]) == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "o"),
                "--truth",
                str(world / "truth.json"),
                "--log",
                str(world / "events.jsonl.gz"),
            ]
        )
        == 0
    )
    scores = orjson.loads(capsys.readouterr().out)
    assert scores["dead_letters"]["recall"] == scores["dead_letters"]["precision"] == 1.0
    identity = scores["identity"]
    assert identity["precision"] >= 0.9
    assert identity["recall"] <= identity["achievable_recall"] + 1e-9
    assert identity["recall"] >= 0.9 * identity["achievable_recall"]
    assert scores["nps"]["windows"] > 0 and scores["nps"]["responses"] > 0
    # every distinct valid event with identifiers is counted once (anonymous ones are not)
    events = scores["events"]
    assert (
        0.99 * events["distinct_valid"] <= events["counted_by_profiles"] <= events["distinct_valid"]
    )


def test_pairwise_scores_on_a_hand_made_case() -> None:
    truth = {
        "shared_identifiers": [{"type": "device_id", "value": "tab", "person_ids": ["a", "b"]}],
        "customers": [
            {"person_id": "a", "identifiers": {"email": ["a1", "a2"], "phone": ["pa"]}},
            {"person_id": "b", "identifiers": {"email": ["b1"], "device_id": ["tab"]}},
        ],
    }
    profiles = [
        {"customer_id": "c1", "identifiers": {"email": ["a1", "a2", "b1"]}},
        {"customer_id": "c2", "identifiers": {"phone": ["pa"]}},
    ]
    scores = identity_scores(profiles, truth)
    # true pairs: (a1,a2) (a1,pa) (a2,pa); predicted: (a1,a2) (a1,b1) (a2,b1); right: (a1,a2)
    assert (scores["precision"], scores["recall"]) == (round(1 / 3, 4), round(1 / 3, 4))
    assert scores["people_split"] == 1 and scores["customers_mixing_people"] == 1


def test_auc() -> None:
    assert _auc([(0.1, False), (0.4, True), (0.35, False), (0.8, True)]) == 1.0
    assert _auc([(0.5, False), (0.5, True)]) == 0.5
    assert _auc([(0.5, True)]) is None


def test_evaluate_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path), "--truth", str(tmp_path / "t.json")]) == 2
    assert "run `cxstream replay run" in capsys.readouterr().err
