"""``cxstream report --kafka``: the output topics give the figures the output files give."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from flows.app import report_data
from flows.app.cli import main
from flows.app.topics import ensure_topics
from flows.settings import KafkaSettings, Settings, TopicSettings

EXPECTED = Path(__file__).parents[1] / "replay" / "golden" / "expected"
pytestmark = pytest.mark.integration


def test_the_report_from_kafka_equals_the_report_from_files(
    kafka_brokers: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {kind: f"{topic_prefix}cx.{kind}" for kind in report_data.KINDS}
    settings = Settings(kafka=KafkaSettings(brokers=kafka_brokers), topics=TopicSettings(**names))
    ensure_topics(settings)
    producer = Producer({"bootstrap.servers": kafka_brokers})
    for kind, topic in names.items():
        for line in (EXPECTED / f"{kind}.jsonl").read_bytes().splitlines():
            record = orjson.loads(line)  # the compacted profiles topic needs keys
            producer.produce(topic, line, key=record.get("customer_id") or record["id"])
    assert producer.flush(30) == 0
    monkeypatch.setenv("CX_KAFKA__BROKERS", kafka_brokers)
    for kind, topic in names.items():
        monkeypatch.setenv(f"CX_TOPICS__{kind.upper()}", topic)
    assert main(["report", "--kafka", "--out", str(tmp_path / "kafka")]) == 0
    got = report_data.read_kafka(settings.kafka.client_config(), names)
    assert report_data.figures(got) == report_data.figures(report_data.read_dir(EXPECTED))
    page = (tmp_path / "kafka" / "report.html").read_text()
    assert f"Kafka at {kafka_brokers}" in page and "Key drivers" in page
    since = "2026-03-10T00:00:00Z"
    assert main(["report", "--kafka", "--since", since, "--out", str(tmp_path / "since")]) == 0
    later = report_data.since(got, since)
    assert all(r["window_start"] >= since for r in later.insights) and later.insights
