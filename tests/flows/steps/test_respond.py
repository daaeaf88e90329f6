"""respond: a response's dead letters carry the message as it came (bytes, key, headers).

A binary-mode CloudEvent response (attributes in ``ce_*`` headers, the data as the
value) is dead-lettered by the routing (``unknown_customer``) and by the join in the
decide step (``unknown_nba``); both dead letters hold the original value, key, headers
and Kafka coordinates, not the decoded event re-serialised.
"""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from flows.app.stores import make_store
from flows.settings import Settings
from flows.step_settings import NbaSettings
from schemas.records import RawMessage
from schemas.responses import RESPONSE_TYPE
from tests.conftest import raw, run_flow
from tests.flows.test_responses import CATALOGUE, response, survey


def _binary(event: dict[str, object], offset: int) -> RawMessage:
    """``event`` in CloudEvents binary mode, with one extra header of the producer's."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event["id"]).encode()),
        ("ce_source", str(event["source"]).encode()),
        ("ce_type", str(event["type"]).encode()),
        ("ce_time", str(event["time"]).encode()),
        ("content-type", b"application/json"),
        ("x-desk", b"\x00desk-7"),
    ]
    # the data as the producer wrote it: spaces and an order orjson would not give
    value = b"{ " + orjson.dumps(event["data"])[1:]
    return RawMessage(value, b"the-key", "cx.events", 0, offset, 1_772_445_600_000 + offset,
                      tuple(headers))  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    return Settings(nba=NbaSettings(catalogue=str(path)))


def test_response_dead_letters_carry_the_original_message(settings: Settings) -> None:
    nobody = response("evt-1", "callback", "evt-1", "rejected", 5, customer_id="cust-nobody")
    no_nba = response("evt-9", "callback", "evt-1", "accepted", 6)  # evt-9 decided nothing
    messages = [raw(survey(1, 0, 3), offset=0), _binary(nobody, 1), _binary(no_nba, 2)]
    out = run_flow(messages, settings, make_store(settings, default="memory"), 1)
    assert len(out["nba"]) == 1
    letters = {d["reason"]: d for d in out["dlq"]}
    assert sorted(letters) == ["unknown_customer", "unknown_nba"]
    for reason, message in (("unknown_customer", messages[1]), ("unknown_nba", messages[2])):
        letter = letters[reason]
        assert base64.b64decode(letter["original_b64"]) == message.value
        assert letter["original_size"] == len(message.value or b"")
        assert base64.b64decode(letter["key_b64"]) == b"the-key"
        headers = [(name, base64.b64decode(v)) for name, v in letter["headers"]]
        assert headers == list(message.headers)
        assert (letter["topic"], letter["partition"], letter["offset"]) == (
            "cx.events",
            0,
            message.offset,
        )
        assert letter["timestamp_ms"] == message.timestamp_ms
    assert dict(messages[1].headers)["ce_type"] == RESPONSE_TYPE.encode()


def test_a_structured_response_dead_letter_keeps_its_bytes(settings: Settings) -> None:
    invalid = {
        **response("evt-1", "callback", "evt-1", "accepted", 9),
        "data": {"channel": "call_center", "touchpoint": "agent_desktop"},
    }
    body = b'{"note": "as sent",  ' + orjson.dumps(invalid)[1:]
    out = run_flow([raw(body, offset=3)], settings, make_store(settings, default="memory"), 1)
    (letter,) = out["dlq"]
    assert letter["reason"] == "invalid_event"
    assert base64.b64decode(letter["original_b64"]) == body
    assert letter["offset"] == 3
