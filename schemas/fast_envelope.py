"""A fast path to :class:`~schemas.envelope.InteractionEvent`: one orjson parse, plain checks.

:func:`fast_event` returns the very event ``InteractionEvent.model_validate_json`` would
(same ``__dict__``, extras and fields set), or ``None`` whenever it is not sure that
validation would succeed: then the caller validates with pydantic, which gives the
dead letter's reason and message. So the fast path decides nothing about bad input;
it only accepts, faster, input that pydantic accepts too, in the common shapes:

- the time is ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)`` (other forms pydantic
  accepts, such as a space for the ``T``, go the slow way);
- no digit run of 19 or more (orjson turns integers beyond 64 bits into floats);
- free values nested at most :data:`FAST_MAX_DEPTH` deep (the JSON parsers' depth
  limits differ).

``tests/schemas/test_fast_envelope.py`` holds the two paths equal on generated events.

>>> event = fast_event(b'{"id": " e1 ", "source": "/s", "type": "cx.web.login",'
...     b' "time": "2026-03-02T12:00:00+02:00", "data": {"channel": "Web",'
...     b' "touchpoint": "t", "identifiers": {"Email": "A@B.co"}}}', Limits(), "1")
>>> event.id, event.time.isoformat(), event.data.channel, event.data.identifiers
('e1', '2026-03-02T10:00:00+00:00', 'web', {'email': 'a@b.co'})
>>> fast_event(b'{"id": "e1"}', Limits(), "1") is None  # pydantic says what is missing
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.envelope import (
    CxData,
    InteractionEvent,
    Limits,
    check_free_values,
    normalise_identifiers,
)

#: Deepest free value the fast path accepts (below both JSON parsers' limits).
FAST_MAX_DEPTH: Final = 100

_TIME_RE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII
).fullmatch
# Digits to "0", every other byte to ".": a run of 19 digits is then a plain search.
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 46 for b in range(256))  # noqa: PLR2004 ("0".."9")
_LONG_DIGITS = b"0" * 19

_EVENT_FIELDS: Final = frozenset(InteractionEvent.model_fields)
_DATA_FIELDS: Final = frozenset(CxData.model_fields)
_new = object.__new__
_set = object.__setattr__
if (
    InteractionEvent.__pydantic_post_init__
    or InteractionEvent.__private_attributes__
    or CxData.__pydantic_post_init__
    or CxData.__private_attributes__
):
    msg = "InteractionEvent gained a post-init or private attributes: the fast path must follow"
    raise TypeError(msg)


_MISSING: Final = object()
# Every field of CxData, with what it is when absent (_MISSING: absent and null differ).
_DATA_DEFAULTS: Final[dict[str, Any]] = dict.fromkeys(CxData.model_fields)
_DATA_DEFAULTS.update(identifiers=_MISSING, attributes=_MISSING)
_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _text(value: object, max_chars: int) -> bool:
    return type(value) is str and 1 <= len(value) <= max_chars


def _opt_text(value: object, max_chars: int) -> bool:
    return value is None or (type(value) is str and 1 <= len(value) <= max_chars)


def _opt_int(value: object, low: int, high: int) -> bool:
    return value is None or (type(value) is int and low <= value <= high)


def _opt_number(value: object) -> bool:
    if value is None or type(value) is int:
        return True  # an int within 64 bits here: float() of it is finite
    return type(value) is float and math.isfinite(value)


def _time(value: object) -> datetime | None:
    if type(value) is not str or not _TIME_RE(value):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _scalars(values: Collection[Any]) -> bool:
    """Whether no value is a container or a float (nothing for check_free_values to see)."""
    scalars = _SCALARS
    return all(type(v) in scalars for v in values)


def _checked(values: dict[str, Any], limits: Limits, country: str) -> bool:  # noqa: PLR0911, PLR0912 (one check per field, in the model's order)
    """Check (and normalise, in place) the data's fields as CxData's validators would."""
    if not _text(values["channel"], 64) or not _text(values["touchpoint"], 512):
        return False
    if not _opt_text(values["journey_stage"], 512) or not _opt_text(values["case_id"], 512):
        return False
    text = values["text"]
    if text is not None and (type(text) is not str or len(text) > limits.max_text_chars):
        return False
    sentiment = values["sentiment"]
    if sentiment is not None and not (_opt_number(sentiment) and -1.0 <= sentiment <= 1.0):
        return False
    if not _opt_int(values["nps"], 0, 10) or not _opt_int(values["csat"], 1, 5):
        return False
    if not _opt_number(values["amount"]):
        return False
    currency = values["currency"]
    if currency is not None:
        if type(currency) is not str or len(currency) != 3:  # noqa: PLR2004 (ISO 4217)
            return False
        if not (currency.isascii() and currency.isalpha()):
            return False
        values["currency"] = currency.upper()
    consent = values["consent"]
    if consent is not None and (
        type(consent) is not dict or any(type(v) is not bool for v in consent.values())
    ):
        return False
    attributes = values["attributes"]
    if attributes is _MISSING:
        values["attributes"] = {}
    elif type(attributes) is not dict:
        return False
    identifiers = values["identifiers"]
    if identifiers is _MISSING:
        values["identifiers"] = {}
    else:
        if type(identifiers) is not dict or len(identifiers) > limits.max_identifiers:
            return False
        values["identifiers"] = normalise_identifiers(identifiers, limits.max_identifiers, country)
    values["channel"] = values["channel"].strip().lower()
    return True


def _data(raw: object, limits: Limits, country: str) -> CxData | None:
    if type(raw) is not dict:
        return None
    values = _DATA_DEFAULTS.copy()
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in values:
            values[key] = value
        else:
            extra[key] = value
    if not _checked(values, limits, country):
        return None
    data = _new(CxData)
    _set(data, "__dict__", values)
    _set(data, "__pydantic_extra__", extra)
    _set(data, "__pydantic_fields_set__", set(raw))
    _set(data, "__pydantic_private__", None)
    return data


def fast_event(value: bytes, limits: Limits, country: str) -> InteractionEvent | None:  # noqa: PLR0911 (one bail-out per unsure case)
    """Return the event of ``value`` if it is sure to be valid, else ``None`` (see the module).

    May raise (e.g. ``ValueError`` for an identifier): the caller then validates as well.
    """
    if _LONG_DIGITS in value.translate(_DIGITS_ONLY):
        return None
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(raw) is not dict:
        return None
    get = raw.get
    event_id, source, event_type = get("id"), get("source"), get("type")
    if not _text(event_id, 256) or not _text(source, 512) or not _text(event_type, 128):
        return None
    event_id = event_id.strip()  # type: ignore[union-attr]
    if not event_id:
        return None
    specversion = get("specversion")
    if specversion is not None and type(specversion) is not str:
        return None
    time = _time(get("time"))
    if time is None:
        return None
    data = _data(get("data"), limits, country)
    if data is None:
        return None
    # Five fields are required (else pydantic is asked): more keys are specversion or extras.
    fields = 6 if "specversion" in raw else 5
    extra = {k: v for k, v in raw.items() if k not in _EVENT_FIELDS} if len(raw) > fields else {}
    data_extra: dict[str, Any] = data.__pydantic_extra__  # type: ignore[assignment]
    if not (
        (not extra or _scalars(extra.values()))
        and (not data_extra or _scalars(data_extra.values()))
        and _scalars(data.attributes.values())
    ):
        if limits.max_depth > FAST_MAX_DEPTH:
            limits = replace(limits, max_depth=FAST_MAX_DEPTH)
        groups: list[tuple[Collection[Any], int]] = [
            (extra.values(), 2),
            (data_extra.values(), 3),
            (data.attributes.values(), 4),
        ]
        check_free_values(groups, limits)
    event = _new(InteractionEvent)
    _set(
        event,
        "__dict__",
        {
            "id": event_id,
            "source": source,
            "type": event_type,
            "time": time,
            "specversion": specversion,
            "data": data,
        },
    )
    _set(event, "__pydantic_extra__", extra)
    _set(event, "__pydantic_fields_set__", set(raw))
    _set(event, "__pydantic_private__", None)
    return event
