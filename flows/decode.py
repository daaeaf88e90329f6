"""decode: bytes -> InteractionEvent, or a DeadLetter with the original bytes and a reason.

Never raises: anything that cannot become an event becomes a dead letter.
"""

from __future__ import annotations

import base64
from hashlib import blake2b

from pydantic import ValidationError

from flows import metrics
from flows.settings import LimitSettings
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import DeadLetter
from schemas.records import RawMessage

MAX_ERROR_CHARS = 1000
_MAX_LISTED_ERRORS = 5


def dead_letter(raw: RawMessage, reason: str, error: str) -> DeadLetter:
    """Build the dead letter of ``raw``; its id depends only on where or what the input was."""
    value = raw.value or b""
    if raw.offset is not None:
        dl_id = output_id("dlq", raw.topic or "", raw.partition or 0, raw.offset)
    else:
        dl_id = output_id("dlq", blake2b(value, digest_size=16).hexdigest())
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
        original_b64=base64.b64encode(value).decode(),
        original_size=len(value),
    )


def describe_validation_error(exc: ValidationError, show_input: bool = True) -> str:
    """One line naming each bad field, e.g. ``data.nps: Input should be ... (got 11)``.

    ``show_input=False`` leaves the offending values out (settings may hold secrets).
    """
    parts = []
    for err in exc.errors(include_url=False)[:_MAX_LISTED_ERRORS]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if show_input:
            got = repr(err.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            parts.append(f"{loc}: {err['msg']} (got {got})")
        else:
            parts.append(f"{loc}: {err['msg']}")
    if exc.error_count() > _MAX_LISTED_ERRORS:
        parts.append(f"... and {exc.error_count() - _MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


def _classify(exc: ValidationError, value: bytes) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8"
        return "not_json"
    if first["type"] == "model_type" and not first["loc"]:
        return "not_an_object"
    return "invalid_event"


class Decoder:
    """Turns raw messages into events under the configured limits."""

    def __init__(self, limits: LimitSettings) -> None:
        self.limits = limits
        self._context = {"phone_country_code": limits.phone_country_code}

    def __call__(self, raw: RawMessage) -> InteractionEvent | DeadLetter:
        value = raw.value
        if not value:
            for name, header in raw.headers:
                if name == "cx-kafka-error":
                    return dead_letter(raw, "kafka_error", header.decode(errors="replace"))
            return dead_letter(raw, "empty", "message has no value; send a CloudEvent JSON object")
        if len(value) > self.limits.max_message_bytes:
            return dead_letter(
                raw,
                "too_large",
                f"message is {len(value)} bytes, over the limit of "
                f"{self.limits.max_message_bytes} (CX_LIMITS__MAX_MESSAGE_BYTES)",
            )
        try:
            event = InteractionEvent.model_validate_json(value, context=self._context)
        except ValidationError as exc:
            return dead_letter(raw, _classify(exc, value), describe_validation_error(exc))
        except (RecursionError, ValueError) as exc:  # defensive: the parser's own limits
            return dead_letter(raw, "not_json", f"{type(exc).__name__}: {exc}")
        metrics.count_event(event.data.channel, event.type)
        return event
