from __future__ import annotations

import base64

import orjson
import pytest

from flows.decode import Decoder
from flows.settings import LimitSettings
from schemas.envelope import InteractionEvent
from schemas.outputs import DeadLetter
from schemas.records import RawMessage
from tests.conftest import make_event, raw

decode = Decoder(LimitSettings(max_message_bytes=10_000))


def dead(message: RawMessage) -> DeadLetter:
    result = decode(message)
    assert isinstance(result, DeadLetter), result
    assert base64.b64decode(result.original_b64) == (message.value or b"")
    assert result.original_size == len(message.value or b"")
    return result


def test_a_valid_event_decodes() -> None:
    event = decode(raw(make_event(7)))
    assert isinstance(event, InteractionEvent)
    assert event.id == "evt-7"


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        (b"", "empty", "no value"),
        (b"x" * 10_001, "too_large", "CX_LIMITS__MAX_MESSAGE_BYTES"),
        (b"{not json", "not_json", "<root>"),
        (b'\xff\xfe{"id": 1}', "not_utf8", ""),
        (b"[1, 2, 3]", "not_an_object", ""),
        (b'"just a string"', "not_an_object", ""),
        (orjson.dumps({**make_event(), "id": None}), "invalid_event", "id"),
        (orjson.dumps(make_event(nps=11)), "invalid_event", "data.nps"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_a_reason(
    value: bytes, reason: str, says: str
) -> None:
    letter = dead(raw(value, offset=3))
    assert letter.reason == reason
    assert says in letter.error
    assert (letter.topic, letter.partition, letter.offset) == ("cx.events", 0, 3)


def test_kafka_errors_become_dead_letters() -> None:
    message = RawMessage(None, None, "cx.events", 1, 9, None, (("cx-kafka-error", b"boom"),))
    letter = dead(message)
    assert (letter.reason, letter.error) == ("kafka_error", "boom")


def test_dead_letter_ids_are_deterministic() -> None:
    first = dead(raw(b"nope", offset=5))
    assert dead(raw(b"nope", offset=5)).id == first.id
    assert dead(raw(b"nope", offset=6)).id != first.id
    unplaced = RawMessage(b"nope")
    assert dead(unplaced).id == dead(RawMessage(b"nope")).id


def test_errors_are_bounded() -> None:
    many_bad = {
        **make_event(),
        "data": {
            "channel": 1,
            "touchpoint": 2,
            "nps": "x",
            "csat": "y",
            "amount": "z",
            "sentiment": "w",
            "case_id": 3,
        },
    }
    letter = dead(raw(orjson.dumps(many_bad)))
    assert "more" in letter.error
    assert len(letter.error) <= 1000
