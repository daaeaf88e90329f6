"""decode: bytes -> InteractionEvent, or a DeadLetter with the original bytes and a reason.

Never raises: anything that cannot become an event becomes a dead letter. Each
limit of ``CX_LIMITS__*`` has its own reason, and the error names the setting:

>>> decode = Decoder(LimitSettings(max_identifiers=1))
>>> letter = decode(RawMessage(b'{"id": "e1", "source": "/s", "type": "cx.web.login",'
...     b' "time": "2026-03-02T10:00:00Z", "data": {"channel": "web", "touchpoint": "t",'
...     b' "identifiers": {"email": "a@b.co", "phone": "+442079460958"}}}'))
>>> letter.reason
'too_many_identifiers'
>>> print(letter.error)
data.identifiers: 2 identifiers, over the limit of 1 (raise CX_LIMITS__MAX_IDENTIFIERS to accept it)

Reasons: ``empty``, ``kafka_error``, ``too_large``, ``not_utf8``, ``not_json``,
``not_an_object``, ``too_deep``, ``text_too_long``, ``too_many_identifiers``,
``too_many_values``, ``invalid_event`` and ``decode_failed`` (the decoder
itself failed: a bug, reported rather than allowed to stop the flow). An
over-long text is a dead letter, not cut: a cut text would be scored and kept
as if it were whole, and the producer would never learn of it.
"""

from __future__ import annotations

import base64
from hashlib import blake2b
from typing import Any, get_args

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from flows import metrics
from flows.settings import LimitSettings
from schemas.cloudevents import (
    JSON_DATA,
    PARTITIONKEY,
    SPECVERSION,
    Binding,
    BindingError,
    binary_body,
    header_disagreement,
    key_text,
    read_binding,
)
from schemas.envelope import LIMIT_ERRORS, MAX_JSON_DEPTH, InteractionEvent, Limits
from schemas.fast_envelope import fast_event
from schemas.ids import output_id
from schemas.outputs import DeadLetter, DeadLetterReason
from schemas.records import RawMessage

# An error message quotes at most this many characters of the offending input.
_INPUT_REPR_MAX = 60


MAX_ERROR_CHARS = 1000
_MAX_LISTED_ERRORS = 5

#: Every dead-letter reason decode gives (the ``reason`` label of cx_dead_letters_total).
REASONS: tuple[DeadLetterReason, ...] = get_args(DeadLetterReason)

#: Validation error type of a broken limit (schemas.envelope.LIMIT_ERRORS) -> its reason.
_LIMIT_REASONS: dict[str, DeadLetterReason] = {r: r for r in REASONS if r in LIMIT_ERRORS}

#: Limit reason -> the setting that raises it.
LIMIT_SETTINGS: dict[DeadLetterReason, str] = {
    "too_large": "CX_LIMITS__MAX_MESSAGE_BYTES",
    "too_deep": "CX_LIMITS__MAX_DEPTH",
    "text_too_long": "CX_LIMITS__MAX_TEXT_CHARS",
    "too_many_identifiers": "CX_LIMITS__MAX_IDENTIFIERS",
    "too_many_values": "CX_LIMITS__MAX_VALUES",
}


def dead_letter(
    raw: RawMessage, reason: DeadLetterReason, error: str, max_original_bytes: int | None = None
) -> DeadLetter:
    """Build the dead letter of ``raw``; its id depends only on where or what the input was.

    The original bytes are kept whole unless longer than ``max_original_bytes``: then
    only that prefix is kept (``original_size`` still gives the full size), so the
    dead letter itself fits the dead-letter topic.
    """
    value = raw.value or b""
    if raw.offset is not None:
        dl_id = output_id("dlq", raw.topic or "", raw.partition or 0, raw.offset)
    else:
        dl_id = output_id("dlq", blake2b(value, digest_size=16).hexdigest())
    kept = value
    if max_original_bytes is not None and len(value) > max_original_bytes:
        kept = value[:max_original_bytes]
        cut = (
            f" [original cut to its first {max_original_bytes} bytes "
            "(CX_LIMITS__MAX_DEAD_LETTER_BYTES)]"
        )
        error = error[: MAX_ERROR_CHARS - len(cut)] + cut
    metrics.DEAD_LETTERS.labels(reason).inc()
    return DeadLetter(
        id=dl_id,
        reason=reason,
        error=error[:MAX_ERROR_CHARS],
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        timestamp_ms=raw.timestamp_ms,
        key_b64=base64.b64encode(raw.key).decode() if raw.key is not None else None,
        original_b64=base64.b64encode(kept).decode(),
        original_size=len(value),
        headers=[(name, base64.b64encode(header).decode()) for name, header in raw.headers],
    )


def count_json_values(value: bytes) -> int:
    r"""About how many JSON values ``value`` holds, counted without parsing it.

    Every value but the first follows a comma or opens a container; commas and
    brackets inside strings are skipped (escaped quotes first removed). An empty
    container counts one too many. Linear time, in C: a few ms per MB at worst.

    >>> count_json_values(b'{"a": "x,[y", "b": [1, 2, {}], "c\\"": 3}')
    8
    """
    bare = value.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(bare.split(b'"')[0::2])
    return outside.count(b",") + outside.count(b"{") + outside.count(b"[") + 1


def _describe(err: ErrorDetails, show_input: bool) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "<root>"
    if not show_input:
        return f"{loc}: {err['msg']}"
    got = repr(err.get("input"))
    got = got if len(got) <= _INPUT_REPR_MAX else got[: _INPUT_REPR_MAX - 3] + "..."
    return f"{loc}: {err['msg']} (got {got})"


def describe_validation_error(exc: ValidationError, show_input: bool = True) -> str:
    """One line naming each bad field, e.g. ``data.nps: Input should be ... (got 11)``.

    ``show_input=False`` leaves the offending values out (settings may hold secrets).
    """
    errors = exc.errors(include_url=False)
    parts = [_describe(err, show_input) for err in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


def _classify(exc: ValidationError, value: bytes) -> tuple[DeadLetterReason, str]:
    """Return the dead-letter reason and error of a failed validation.

    A broken limit wins over other errors: it is the one the producer must fix first,
    and its error names the setting.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8", describe_validation_error(exc)
        if "recursion limit" in first["msg"]:
            msg = f"<root>: nested deeper than the JSON parser's limit of {MAX_JSON_DEPTH} levels"
            return "too_deep", f"{msg} ({LIMIT_SETTINGS['too_deep']} cannot raise it)"
        return "not_json", describe_validation_error(exc)
    if first["type"] == "model_type" and not first["loc"]:
        return "not_an_object", describe_validation_error(exc)
    for err in errors:
        reason = _LIMIT_REASONS.get(err["type"])
        if reason is not None:
            setting = LIMIT_SETTINGS[reason]
            return reason, f"{_describe(err, False)} (raise {setting} to accept it)"
    return "invalid_event", describe_validation_error(exc)


class Decoder:
    """Turns raw messages into events under the configured limits.

    A valid event in a common shape takes the fast path (:mod:`schemas.fast_envelope`);
    anything else is validated by pydantic, which also names what is wrong.
    :meth:`decode_batch` counts the batch's events in the metrics once per label.
    """

    def __init__(self, limits: LimitSettings) -> None:
        self.limits = limits
        self._limits = Limits(
            max_text_chars=limits.max_text_chars,
            max_identifiers=limits.max_identifiers,
            max_depth=limits.max_depth,
        )
        self._country = limits.phone_country_code
        self._context: dict[str, Any] = {
            "phone_country_code": limits.phone_country_code,
            "limits": self._limits,
        }

    def _dead(self, raw: RawMessage, reason: DeadLetterReason, error: str) -> DeadLetter:
        return dead_letter(raw, reason, error, self.limits.max_dead_letter_bytes)

    def _too_many_values(self, raw: RawMessage, value: bytes) -> DeadLetter | None:
        try:
            value.decode("utf-8")  # garbage is not_utf8, whatever it holds
        except UnicodeDecodeError:
            return None
        count = count_json_values(value)
        if count <= self.limits.max_values:
            return None
        limit, setting = self.limits.max_values, LIMIT_SETTINGS["too_many_values"]
        error = f"message holds about {count} JSON values, over the limit of {limit}"
        return self._dead(raw, "too_many_values", f"{error} (raise {setting} to accept it)")

    def decode(self, raw: RawMessage) -> InteractionEvent | DeadLetter:
        """Decode one message without counting it in ``cx_events_total`` (see ``__call__``).

        A message with headers is read by the CloudEvents Kafka binding
        (:mod:`schemas.cloudevents`); one without, the common case, is structured JSON.
        """
        if raw.headers:
            return self._decode_bound(raw)
        return self._decode_value(raw, raw.value)

    def _decode_bound(self, raw: RawMessage) -> InteractionEvent | DeadLetter:  # noqa: PLR0911 (one return per binding failure)
        if raw.value is None and any(name == "cx-kafka-error" for name, _ in raw.headers):
            return self._decode_value(raw, None)  # a consumer error, whatever else it carries
        try:
            binding = read_binding(raw.headers)
        except BindingError as exc:
            return self._dead(raw, exc.reason, str(exc))
        if binding.mode == "plain":
            return self._decode_value(raw, raw.value)
        if raw.value is None:
            error = f"a {binding.mode}-mode message without a value (a tombstone): no event"
            return self._dead(raw, "tombstone", error)
        if binding.mode == "structured":
            return self._structured(raw, binding)
        if len(raw.value) <= self.limits.max_message_bytes:  # else too_large, below
            try:
                orjson.loads(raw.value)  # one JSON value: the body below is the event as sent
            except orjson.JSONDecodeError as exc:
                if "recursion" not in str(exc):  # too deep: too_deep, below
                    kind = binding.content_type or JSON_DATA
                    error = f"binary mode: the value is not JSON, yet its content type is {kind!r}"
                    return self._dead(raw, "data_not_json", f"{error}: {exc}")
        try:
            body = binary_body(binding, raw.value, raw.key)
        except BindingError as exc:
            return self._dead(raw, exc.reason, str(exc))
        decoded = self._decode_value(raw, body)
        if isinstance(decoded, DeadLetter) and decoded.reason == "invalid_event":
            # The same reason, saying where the attributes came from.
            prefixed = f"binary mode (attributes from ce_ headers): {decoded.error}"
            return decoded.model_copy(update={"error": prefixed[:MAX_ERROR_CHARS]})
        return decoded

    def _structured(self, raw: RawMessage, binding: Binding) -> InteractionEvent | DeadLetter:
        decoded = self._decode_value(raw, raw.value)
        if isinstance(decoded, DeadLetter):
            return decoded
        if decoded.specversion != SPECVERSION:
            error = (
                f"structured mode: specversion is {decoded.specversion!r}; cxstream reads "
                f"CloudEvents {SPECVERSION} (a structured event must give it)"
            )
            return self._dead(raw, "unknown_specversion", error)
        disagreement = header_disagreement(binding.attributes, decoded)
        if disagreement is not None:
            return self._dead(raw, "header_mismatch", f"structured mode: {disagreement}")
        extra = decoded.model_extra or {}
        partitionkey = key_text(raw.key)
        if PARTITIONKEY not in extra and partitionkey is not None:
            return decoded.model_copy(update={PARTITIONKEY: partitionkey})
        return decoded

    def _decode_value(self, raw: RawMessage, value: bytes | None) -> InteractionEvent | DeadLetter:  # noqa: PLR0911 (a classification ladder: one return per dead-letter reason)
        """Decode ``value`` (the message's, or the structured body of a binary-mode one)."""
        if not value:
            for name, header in raw.headers:
                if name == "cx-kafka-error":
                    return self._dead(raw, "kafka_error", header.decode(errors="replace"))
            return self._dead(raw, "empty", "message has no value; send a CloudEvent JSON object")
        if len(value) > self.limits.max_message_bytes:
            limit, setting = self.limits.max_message_bytes, LIMIT_SETTINGS["too_large"]
            error = f"message is {len(value)} bytes, over the limit of {limit}"
            return self._dead(raw, "too_large", f"{error} (raise {setting} to accept it)")
        # Cheap bound first: commas and brackets anywhere, strings included.
        if value.count(b",") + value.count(b"{") + value.count(b"[") >= self.limits.max_values:
            too_many = self._too_many_values(raw, value)
            if too_many is not None:
                return too_many
        try:
            event = fast_event(value, self._limits, self._country)
        except Exception:  # unsure: the validated path below decides
            event = None
        if event is not None:
            return event
        try:
            return InteractionEvent.model_validate_json(value, context=self._context)
        except ValidationError as exc:
            return self._dead(raw, *_classify(exc, value))
        except Exception as exc:  # one bad message must not stop the flow
            return self._dead(raw, "decode_failed", f"{type(exc).__name__}: {exc}")

    def __call__(self, raw: RawMessage) -> InteractionEvent | DeadLetter:
        """Decode one message and count it (a dead letter is counted by its reason)."""
        decoded = self.decode(raw)
        if isinstance(decoded, InteractionEvent):
            metrics.count_event(decoded.data.channel, decoded.type)
        return decoded

    def decode_batch(self, raws: list[RawMessage]) -> list[InteractionEvent | DeadLetter]:
        """Decode messages in order, counting their events once per label set."""
        # decode(), unrolled: a message without headers (the common case) costs no extra call
        bound, plain = self._decode_bound, self._decode_value
        out = [bound(raw) if raw.headers else plain(raw, raw.value) for raw in raws]
        counts: dict[tuple[str, str], int] = {}
        for item in out:
            if type(item) is InteractionEvent:
                key = (item.data.channel, item.type)
                counts[key] = counts.get(key, 0) + 1
        for (channel, event_type), n in counts.items():
            metrics.count_event(channel, event_type, n)
        return out
