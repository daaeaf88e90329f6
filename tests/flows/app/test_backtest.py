"""Backtest: the same log with two catalogues, and the difference per action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.app.backtest import backtest
from flows.app.cli import main
from flows.nba.catalogue import DEFAULT_CATALOGUE
from flows.settings import Settings
from replay.log import write_log
from tests.conftest import make_event, raw

ANN, BO, CY = ({"email": f"{n}@example.com"} for n in ("ann", "bo", "cy"))


def _survey(n: int, who: dict[str, str], nps: int, **data: Any) -> dict[str, Any]:
    return {**make_event(n, identifiers=who, nps=nps, **data), "type": "cx.survey.nps"}


@pytest.fixture
def small_log(tmp_path: Path) -> Path:
    events = [
        _survey(1, ANN, 2),  # detractor
        _survey(2, BO, 10),  # promoter
        _survey(3, CY, 8),  # passive
        _survey(4, ANN, 9),
    ]
    log = tmp_path / "small.jsonl"
    write_log(log, [raw(e, offset=i) for i, e in enumerate(events)])
    return log


@pytest.fixture
def new_rules(tmp_path: Path) -> Path:
    text = DEFAULT_CATALOGUE.read_text()
    # removed: passive_feedback; changed: service_recovery's value; added: a thank-you
    text = text.replace('id = "passive_feedback"', 'id = "passive_feedback"\nenabled = false')
    text = text.replace("value = 100.0", "value = 80.0")
    text += (
        '\n[[action]]\nid = "thank_you"\nclass = "service"\nchannel = "email"\nvalue = 5\n'
        'when = ["nps >= 9"]\nmessage = "Thank you, {customer_id}"\n'
    )
    path = tmp_path / "new.toml"
    path.write_text(text)
    return path


def test_the_diff_per_action(small_log: Path, new_rules: Path) -> None:
    report = backtest(Settings(), small_log, new_rules)
    table = {
        name: (d.current, d.new, d.added, d.removed, d.changed)
        for name, d in report.actions.items()
    }
    assert table == {
        "passive_feedback": (1, 0, 0, 1, 0),
        "promoter_referral": (2, 2, 0, 0, 0),
        "service_recovery": (1, 1, 0, 0, 1),
        "thank_you": (0, 2, 2, 0, 0),
    }
    assert report.actions["service_recovery"].fields == {"priority": 1, "reason_codes": 1}
    total = report.totals()
    assert (total.current, total.new, total.added, total.removed, total.changed) == (4, 5, 2, 1, 1)
    changed = next(e for e in report.examples if e["change"] == "changed")
    assert (changed["was"]["priority"], changed["now"]["priority"]) == (100.0, 80.0)


def test_the_same_rules_give_no_difference(small_log: Path) -> None:
    report = backtest(Settings(), small_log, DEFAULT_CATALOGUE)
    total = report.totals()
    assert total.current == total.new == 4
    assert (total.added, total.removed, total.changed) == (0, 0, 0)


def test_the_command_prints_a_table_and_writes_json(
    small_log: Path, new_rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "diff.json"
    argv = ["backtest", "--rules", str(new_rules), "--log", str(small_log), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "thank_you" in printed and "total" in printed
    assert orjson.loads(out.read_bytes())["total"]["added"] == 2


def test_a_malformed_catalogue_exits_2_with_file_and_line(
    small_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[action]]\nid = "x"\nclass = "service"\nchannel = "web"\nvalue = 1\n'
        'when = ["nps <== 3"]\nmessage = "m"\n'
    )
    assert main(["backtest", "--rules", str(bad), "--log", str(small_log)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cxstream: error: {bad}:6: ") and "Traceback" not in err
    assert main(["replay", "run", str(small_log), "--out", str(tmp_path / "o")]) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CX_NBA__CATALOGUE", str(bad))
        assert main(["replay", "run", str(small_log), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}:6: " in capsys.readouterr().err
