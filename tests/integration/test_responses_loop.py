"""The loop closed against the real Kafka and Redis: a response changes the next decision.

`cxstream run` decides on a detractor's survey (cx.nba); a rejection of that NBA,
produced to the input topic as the API publishes it (schemas.responses), reaches the
flow in a second run (resumed from its recovery snapshot, so the NBA ledger and the
contact history come back from Bytewax state) and holds the next callback back, while
a customer without a response gets one (#19).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.app.topics import ensure_topics
from schemas.responses import NbaResponse
from tests.flows.test_responses import CATALOGUE, survey
from tests.integration.test_crash_recovery import flow_env, produce, run_to_end, settings_of
from tests.integration.verifier import consume_all

pytestmark = pytest.mark.integration


def _run(env: dict[str, str]) -> None:
    run_to_end(env, processes=1)


def _nbas(brokers: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in consume_all(brokers, topic)]


def test_a_response_produced_to_the_input_changes_the_next_decision(
    kafka_brokers: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    env = {
        **flow_env(kafka_brokers, topic_prefix, tmp_path / "recovery"),
        "CX_REDIS__URL": redis_url,
        "CX_NBA__CATALOGUE": str(catalogue),
        "CX_EPOCH_INTERVAL_SECONDS": "1",
    }
    ensure_topics(settings_of(env, redis_url))
    events = env["CX_TOPICS__EVENTS"]
    first = [survey(1, 0, 3, "ann@example.com"), survey(2, 0, 3, "bob@example.com")]
    produce(kafka_brokers, events, [orjson.dumps(e) for e in first])
    _run(env)
    nbas = {n["trigger_event_ids"][0]: n for n in _nbas(kafka_brokers, env["CX_TOPICS__NBA"])}
    assert sorted(nbas) == ["evt-1", "evt-2"]
    ann = nbas["evt-1"]
    assert ann["decision_id"] and ann["rank"] == 1

    # the agent rejects Ann's callback 10 minutes later, as `POST /v1/responses` publishes it
    rejection = NbaResponse.model_validate(
        {
            "nba_id": ann["id"],
            "decision_id": ann["decision_id"],
            "customer_id": ann["customer_id"],
            "action": ann["action"],
            "channel": ann["channel"],
            "outcome": "rejected",
            "agent_id": "agent-7",
            "time": "2026-03-02T10:10:00Z",
        }
    )
    # both answer again after the 2 h cool-down of the send, within that of the rejection
    second = [
        rejection.to_cloudevent(),
        survey(3, 125, 3, "ann@example.com"),
        survey(4, 125, 3, "bob@example.com"),
    ]
    produce(kafka_brokers, events, [orjson.dumps(e) for e in second])
    _run(env)
    after = [n["trigger_event_ids"][0] for n in _nbas(kafka_brokers, env["CX_TOPICS__NBA"])]
    assert sorted(after) == ["evt-1", "evt-2", "evt-4"]  # Ann's evt-3 held back: rejected
    assert consume_all(kafka_brokers, env["CX_TOPICS__DLQ"]) == []
