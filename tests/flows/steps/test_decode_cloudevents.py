"""decode under the CloudEvents Kafka binding: the official SDK's messages, the spec's examples,
and one dead-letter reason per malformed variant, original bytes and headers kept."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from bytewax.connectors.kafka import KafkaError as BytewaxKafkaError
from bytewax.connectors.kafka import KafkaSourceMessage
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import KafkaError as ConfluentKafkaError
from hypothesis import given
from hypothesis import strategies as st

from flows.app.inputs import from_kafka_batch
from flows.settings import LimitSettings
from flows.steps.decode import Decoder
from schemas.envelope import InteractionEvent
from schemas.outputs import DeadLetter
from schemas.records import RawMessage
from tests.conftest import make_event
from tests.schemas.test_fast_envelope import FIELDS, FUZZ, TIMES, json_values, state, with_field

DECODE = Decoder(LimitSettings())
SPEC = orjson.loads(
    (Path(__file__).parents[2] / "fixtures/cloudevents/spec_examples.json").read_bytes()
)


def sdk_event(n: int = 1, **attributes: Any) -> CloudEvent:
    body = make_event(n)
    data = body.pop("data")
    body["time"] = datetime.fromisoformat(body["time"])
    return CloudEvent(
        attributes={**body, "datacontenttype": "application/json", **attributes}, data=data
    )


def as_raw(message: ce_kafka.KafkaMessage, offset: int = 0) -> RawMessage:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    headers = tuple(message.headers.items())
    return RawMessage(message.value, key, "cx.events", 0, offset, 1_700_000_000_000, headers)


def structured_twin(n: int = 1) -> InteractionEvent:
    decoded = DECODE(RawMessage(orjson.dumps(make_event(n))))
    assert isinstance(decoded, InteractionEvent)
    return decoded


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_sdk_s_messages_in_both_modes_decode_to_the_same_event(mode: str) -> None:
    event = sdk_event(3, partitionkey="cust-3")
    message = (
        ce_kafka.to_binary_event(event) if mode == "binary" else ce_kafka.to_structured_event(event)
    )
    assert message.key == "cust-3"  # the SDK's key mapper
    decoded = DECODE(as_raw(message))
    assert isinstance(decoded, InteractionEvent), decoded
    plain = structured_twin(3)
    assert (decoded.id, decoded.source, decoded.type, decoded.time) == (
        plain.id,
        plain.source,
        plain.type,
        plain.time,
    )
    assert decoded.data == plain.data
    assert decoded.model_extra == {"datacontenttype": "application/json", "partitionkey": "cust-3"}


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_kafka_key_is_the_partitionkey_when_the_event_has_none(mode: str) -> None:
    message = (ce_kafka.to_binary_event if mode == "binary" else ce_kafka.to_structured_event)(
        sdk_event(4), key_mapper=lambda _: "k-4"
    )
    decoded = DECODE(as_raw(message))
    assert isinstance(decoded, InteractionEvent)
    assert (decoded.model_extra or {})["partitionkey"] == "k-4"


def test_extensions_are_kept() -> None:
    decoded = DECODE(
        as_raw(ce_kafka.to_binary_event(sdk_event(5, traceparent="00-ab-cd-01", subject="s")))
    )
    assert isinstance(decoded, InteractionEvent)
    assert (decoded.model_extra or {})["traceparent"] == "00-ab-cd-01"
    assert (decoded.model_extra or {})["subject"] == "s"


def _spec(mode: str, **changes: Any) -> RawMessage:
    example = {**SPEC[mode], **changes}
    headers = tuple((name, value.encode()) for name, value in example["headers"])
    if "value_b64" in example:
        value = base64.b64decode(example["value_b64"])
    elif isinstance(example["value"], dict):
        value = orjson.dumps({**example["value"], "data": SPEC["cx_data"]})
    else:
        value = orjson.dumps(example["value"])
    return RawMessage(value, example["key"].encode(), example["topic"], 0, 1, None, headers)


def test_the_spec_s_structured_example_decodes() -> None:
    decoded = DECODE(_spec("structured"))
    assert isinstance(decoded, InteractionEvent), decoded
    assert decoded.id == "1234-1234-1234" and decoded.type == "com.example.someevent"
    assert decoded.time.isoformat() == "2018-04-05T03:56:24+00:00"
    assert (decoded.model_extra or {})["partitionkey"] == "mykey"


def test_the_spec_s_binary_example_is_avro_so_it_is_a_dead_letter_kept_whole() -> None:
    raw = _spec("binary")
    letter = DECODE(raw)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "unsupported_content_type"
    assert base64.b64decode(letter.original_b64) == raw.value
    assert [(n, base64.b64decode(v)) for n, v in letter.headers] == list(raw.headers)
    assert base64.b64decode(letter.key_b64 or "") == b"mykey"


def test_the_spec_s_binary_example_with_json_data_decodes() -> None:
    headers = [
        [n, "application/json" if n == "content-type" else v] for n, v in SPEC["binary"]["headers"]
    ]
    raw = _spec("binary", headers=headers, value=SPEC["cx_data"])
    raw = RawMessage(orjson.dumps(SPEC["cx_data"]), raw.key, raw.topic, 0, 1, None, raw.headers)
    decoded = DECODE(raw)
    assert isinstance(decoded, InteractionEvent), decoded
    assert decoded.id == "1234-1234-1234" and decoded.source == "/mycontext/subcontext"
    assert decoded.data.identifiers == {"email": "spec@example.com"}


BINARY = ce_kafka.to_binary_event(sdk_event(7))
STRUCTURED = ce_kafka.to_structured_event(sdk_event(7))


def _with(
    message: ce_kafka.KafkaMessage, value: bytes | None = b"", **headers: bytes
) -> RawMessage:
    merged = {**message.headers, **{k.replace("__", "-"): v for k, v in headers.items()}}
    body = message.value if value == b"" else value
    return RawMessage(body, b"k7", "cx.events", 0, 9, None, tuple(merged.items()))


VARIANTS: dict[str, tuple[RawMessage, str]] = {
    "tombstone": (_with(BINARY, None), "tombstone"),
    "bad header encoding": (_with(BINARY, ce_source=b"/s\xff"), "bad_header_encoding"),
    "bad content-type encoding": (_with(BINARY, content__type=b"\xfe"), "bad_header_encoding"),
    "unknown specversion": (_with(BINARY, ce_specversion=b"0.3"), "unknown_specversion"),
    "non-JSON data with a JSON type": (_with(BINARY, b"<xml/>"), "data_not_json"),
    "data cut short": (_with(BINARY, b'{"channel": "web"'), "data_not_json"),
    "non-JSON content type": (
        _with(BINARY, content__type=b"text/plain"),
        "unsupported_content_type",
    ),
    "a missing attribute": (
        RawMessage(
            BINARY.value,
            None,
            headers=tuple((k, v) for k, v in BINARY.headers.items() if k != "ce_id"),
        ),
        "invalid_event",
    ),
    "a bad ce_time": (_with(BINARY, ce_time=b"yesterday"), "invalid_event"),
    "structured: header disagrees": (_with(STRUCTURED, ce_id=b"evt-other"), "header_mismatch"),
    "structured: header the body lacks": (
        _with(STRUCTURED, ce_traceparent=b"00-x"),
        "header_mismatch",
    ),
    "structured: header time disagrees": (
        _with(STRUCTURED, ce_time=b"2020-01-01T00:00:00Z"),
        "header_mismatch",
    ),
    "structured: avro format": (
        _with(STRUCTURED, content__type=b"application/cloudevents+avro"),
        "unsupported_content_type",
    ),
    "structured: a batch": (
        _with(STRUCTURED, content__type=b"application/cloudevents-batch+json"),
        "unsupported_content_type",
    ),
    "structured: no specversion": (
        _with(
            STRUCTURED,
            orjson.dumps(
                {k: v for k, v in orjson.loads(STRUCTURED.value).items() if k != "specversion"}
            ),
        ),
        "unknown_specversion",
    ),
    "structured: tombstone": (_with(STRUCTURED, None), "tombstone"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_malformed_variant_has_its_reason_and_keeps_bytes_and_headers(name: str) -> None:
    raw, reason = VARIANTS[name]
    letter = DECODE(raw)
    assert isinstance(letter, DeadLetter), name
    assert letter.reason == reason, (name, letter.error)
    assert base64.b64decode(letter.original_b64) == (raw.value or b"")
    assert [(n, base64.b64decode(v)) for n, v in letter.headers] == list(raw.headers)


def test_structured_headers_that_agree_are_fine() -> None:
    raw = _with(
        STRUCTURED,
        ce_id=b"evt-7",
        ce_time=b"2026-03-02T10:07:00+00:00",
        ce_type=b"cx.web.page.viewed",
    )
    assert isinstance(DECODE(raw), InteractionEvent)


def test_headers_that_are_not_cloudevents_keep_today_s_behaviour() -> None:
    body = orjson.dumps(make_event(8))
    plain = DECODE(RawMessage(body))
    traced = DECODE(
        RawMessage(
            body, headers=(("traceparent", b"\xff\x00"), ("content-type", b"application/json"))
        )
    )
    assert plain == traced


def _binary_of(body: dict[str, Any]) -> RawMessage:
    attributes = {k: v for k, v in body.items() if k != "data"}
    headers = tuple((f"ce_{k}", str(v).encode()) for k, v in attributes.items())
    value = json.dumps(body["data"]).encode()
    return RawMessage(
        value, None, "cx.events", 0, 1, None, (*headers, ("content-type", b"application/json"))
    )


@FUZZ
@given(st.sampled_from([f for f in FIELDS if f[0] == "data"]), json_values | TIMES)
def test_binary_mode_decodes_as_the_same_event_in_structured_json(
    path: tuple[str, ...], value: Any
) -> None:
    body = with_field(path, value)
    plain = DECODE(RawMessage(json.dumps(body).encode(), None, "cx.events", 0, 1))
    raw = _binary_of(body)
    binary = DECODE(raw)
    try:
        orjson.loads(raw.value or b"")
    except orjson.JSONDecodeError:  # NaN or Infinity: JSON to pydantic, not to the binding
        assert isinstance(plain, DeadLetter)
        assert isinstance(binary, DeadLetter) and binary.reason == "data_not_json"
        return
    if isinstance(plain, DeadLetter):
        assert isinstance(binary, DeadLetter)
        assert binary.reason == plain.reason, (plain.error, binary.error)
        return
    assert isinstance(binary, InteractionEvent), binary
    assert binary.data == plain.data and state(binary.data) == state(plain.data)
    assert (binary.id, binary.source, binary.type, binary.time, binary.specversion) == (
        plain.id, plain.source, plain.type, plain.time, plain.specversion,
    )  # fmt: skip
    assert binary.model_extra == {"datacontenttype": "application/json"}


def test_a_consumer_error_is_a_kafka_error_dead_letter_that_keeps_the_headers() -> None:
    original = [("ce_specversion", b"1.0"), ("ce_id", b"e9"), ("trace", None)]
    msg: KafkaSourceMessage[bytes | None, bytes | None] = KafkaSourceMessage(
        # Kafka allows a null header value, which Bytewax's type leaves out
        key=b"k", value=None, topic="cx.events", headers=cast("list[tuple[str, bytes]]", original),
        partition=0, offset=5,
        timestamp=(1, 1_700_000_000_000),
    )  # fmt: skip
    (raw,) = from_kafka_batch([BytewaxKafkaError(ConfluentKafkaError(-185), msg)])
    letter = DECODE(raw)
    assert isinstance(letter, DeadLetter) and letter.reason == "kafka_error"
    kept = [(n, base64.b64decode(v)) for n, v in letter.headers]
    assert kept[:3] == [("ce_specversion", b"1.0"), ("ce_id", b"e9"), ("trace", b"")]
    assert kept[3][0] == "cx-kafka-error"
