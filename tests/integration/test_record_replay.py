"""Record a topic into a log and play it back through the real broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.app.cli import main
from replay.kafka_io import play, record
from replay.log import read_log, write_log
from replay.sample import generate_sample

pytestmark = pytest.mark.integration


def test_play_then_record_round_trips_every_message(
    kafka_brokers: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}cx.events"
    original = list(generate_sample(customers=8, days=4))
    log = tmp_path / "in.jsonl.gz"
    write_log(log, original)

    assert play({"bootstrap.servers": kafka_brokers}, log, topic=topic) == len(original)
    out = tmp_path / "out.jsonl"
    assert record({"bootstrap.servers": kafka_brokers}, topic, out) == len(original)

    recorded = list(read_log(out))
    assert [m.value for m in recorded] == [m.value for m in original]
    assert [m.offset for m in recorded] == list(range(len(original)))
    assert {m.topic for m in recorded} == {topic}


def test_paced_play_keeps_the_recorded_gaps(
    kafka_brokers: str, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "paced.jsonl"
    write_log(log, [m for m in generate_sample(customers=2, days=1)][:3])  # 1 s apart
    started = time.monotonic()
    play({"bootstrap.servers": kafka_brokers}, log, topic=f"{topic_prefix}paced", speed=4.0)
    assert 0.4 <= time.monotonic() - started < 5  # 2 s of recorded time at 4x


def test_the_cli_records_with_bounds(
    kafka_brokers: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"{topic_prefix}cli"
    log = tmp_path / "in.jsonl"
    write_log(log, list(generate_sample(customers=3, days=2)))
    monkeypatch.setenv("CX_KAFKA__BROKERS", kafka_brokers)
    assert main(["replay", "play", str(log), "--to-kafka", "--topic", topic]) == 0
    out = tmp_path / "five.jsonl"
    assert (
        main(["replay", "record", "--topic", topic, "--out", str(out), "--max-messages", "5"]) == 0
    )
    assert len(list(read_log(out))) == 5
