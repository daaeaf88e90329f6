from __future__ import annotations

import base64

import orjson
import pytest
from prometheus_client import REGISTRY

from flows.settings import LimitSettings, Settings
from flows.steps import decode as decode_module
from flows.steps.decode import Decoder, count_json_values
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


def nested(depth: int) -> object:
    """A JSON value ``depth`` containers deep (alternating objects and lists)."""
    value: object = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


# The event object is depth 1, data 2, attributes 3: an attribute value nested
# ``n`` deep reaches depth 3 + n.
LIMITED = Decoder(LimitSettings(max_text_chars=50, max_identifiers=2, max_depth=8, max_values=100))


@pytest.mark.parametrize(
    ("event", "reason", "setting"),
    [
        (make_event(text="x" * 51), "text_too_long", "CX_LIMITS__MAX_TEXT_CHARS"),
        (
            make_event(identifiers={"email": "a@b.co", "crm_id": "1", "phone": "+442079460958"}),
            "too_many_identifiers",
            "CX_LIMITS__MAX_IDENTIFIERS",
        ),
        (make_event(attributes={"a": nested(6)}), "too_deep", "CX_LIMITS__MAX_DEPTH"),
        ({**make_event(), "trace": nested(8)}, "too_deep", "CX_LIMITS__MAX_DEPTH"),
        (
            make_event(attributes={"items": list(range(100))}),
            "too_many_values",
            "CX_LIMITS__MAX_VALUES",
        ),
        (
            make_event(consent={f"c{n}": True for n in range(100)}),
            "too_many_values",
            "CX_LIMITS__MAX_VALUES",
        ),
    ],
)
def test_each_limit_has_its_reason_and_names_its_setting(
    event: dict[str, object], reason: str, setting: str
) -> None:
    letter = LIMITED(raw(orjson.dumps(event)))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == reason
    assert f"raise {setting}" in letter.error
    assert base64.b64decode(letter.original_b64) == orjson.dumps(event)


def test_values_at_each_limit_are_accepted() -> None:
    at_limits = make_event(
        text="x" * 50,
        identifiers={"email": "a@b.co", "crm_id": "1"},
        attributes={"a": nested(5), "items": list(range(78)), "note": "a, b, [c], {d}"},
    )
    body = orjson.dumps(at_limits)
    assert count_json_values(body) == 100
    assert isinstance(LIMITED(raw(body)), InteractionEvent)


def test_a_limit_wins_over_other_errors() -> None:
    letter = LIMITED(raw(orjson.dumps(make_event(text="x" * 51, nps=11))))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "text_too_long"
    assert letter.error.startswith("data.text: text is 51 characters, over the limit of 50")


def test_nesting_past_the_parser_limit_is_too_deep() -> None:
    letter = dead(raw(orjson.dumps(make_event(attributes={"a": nested(150)})).replace(b" ", b"")))
    assert letter.reason == "too_deep"
    deeper = b'{"a":' * 300 + b"1" + b"}" * 300
    letter = dead(raw(deeper))
    assert (letter.reason, "parser's limit of 200" in letter.error) == ("too_deep", True)


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(make_event()).replace(b'"channel"', b'"amount":NaN,"channel"'),
        orjson.dumps(make_event()).replace(b'"channel"', b'"amount":-Infinity,"channel"'),
        orjson.dumps(make_event()).replace(b'"channel"', b'"attributes":{"x":[NaN]},"channel"'),
        orjson.dumps(make_event()).replace(b'"id"', b'"ratio":Infinity,"id"'),
        # float() of this overflows: it used to escape decode as an OverflowError
        orjson.dumps(make_event()).replace(
            b'"channel"', b'"amount":1' + b"0" * 400 + b',"channel"'
        ),
    ],
)
def test_non_finite_numbers_are_invalid(body: bytes) -> None:
    letter = dead(raw(body))
    assert letter.reason == "invalid_event"
    assert "finite" in letter.error or "NaN" in letter.error


def test_dead_letters_over_the_cap_keep_a_prefix_and_the_full_size() -> None:
    decode_capped = Decoder(LimitSettings(max_message_bytes=100, max_dead_letter_bytes=64))
    body = b"y" * 1000
    letter = decode_capped(raw(body))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "too_large"
    assert base64.b64decode(letter.original_b64) == body[:64]
    assert letter.original_size == 1000
    assert "CX_LIMITS__MAX_DEAD_LETTER_BYTES" in letter.error


def test_an_unexpected_failure_is_a_dead_letter_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> InteractionEvent:
        msg = "a bug in a validator"
        raise ZeroDivisionError(msg)

    monkeypatch.setattr(InteractionEvent, "model_validate_json", broken)
    monkeypatch.setattr(decode_module, "fast_event", broken)
    letter = dead(raw(orjson.dumps(make_event())))
    assert (letter.reason, letter.error) == (
        "decode_failed",
        "ZeroDivisionError: a bug in a validator",
    )


def test_a_failing_fast_path_leaves_the_decision_to_pydantic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> InteractionEvent:
        msg = "a bug in the fast path"
        raise ZeroDivisionError(msg)

    expected = decode(raw(orjson.dumps(make_event(7))))
    monkeypatch.setattr(decode_module, "fast_event", broken)
    assert decode(raw(orjson.dumps(make_event(7)))) == expected
    assert dead(raw(orjson.dumps(make_event(nps=11)))).reason == "invalid_event"


def test_a_batch_decodes_in_order_and_counts_its_events_once_per_label() -> None:
    before = REGISTRY.get_sample_value("cx_events_total", {"channel": "web"}) or 0.0
    batch = [raw(make_event(n), offset=n) for n in range(5)] + [raw(b"{not json", offset=9)]
    decoded = decode.decode_batch(batch)
    assert [getattr(item, "id", None) for item in decoded] == [
        "evt-0", "evt-1", "evt-2", "evt-3", "evt-4", decoded[5].id,
    ]  # fmt: skip
    assert isinstance(decoded[5], DeadLetter)
    assert REGISTRY.get_sample_value("cx_events_total", {"channel": "web"}) == before + 5


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CX_LIMITS__MAX_TEXT_CHARS", "5")
    letter = Decoder(Settings().limits)(raw(orjson.dumps(make_event(text="sixsix"))))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "text_too_long"
