"""The input envelope: CloudEvents 1.0 attributes with the CX payload in ``data``.

Unknown fields are kept (``extra="allow"``) at both levels, so producers can
add to the contract without losing data. ``channel`` and ``type`` are open
vocabularies: a new value is processed, never rejected for being new.

Size limits come from the validation context (``context={"limits": Limits(...)}``,
defaults below when absent); breaking one raises an error whose ``type`` is one of
:data:`LIMIT_ERRORS`, so the decoder can give each its own dead-letter reason:

>>> import orjson
>>> from pydantic import ValidationError
>>> event = {"id": "e1", "source": "/s", "type": "cx.chat.message",
...          "time": "2026-03-02T10:00:00Z",
...          "data": {"channel": "chat", "touchpoint": "bot", "text": "x" * 11}}
>>> try:
...     InteractionEvent.model_validate_json(
...         orjson.dumps(event), context={"limits": Limits(max_text_chars=10)})
... except ValidationError as exc:
...     print(exc.errors()[0]["type"], "-", exc.errors()[0]["msg"])
text_too_long - text is 11 characters, over the limit of 10
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.identifiers import IdentifierError, normalise_identifier, normalise_type

KNOWN_CHANNELS: frozenset[str] = frozenset(
    {"web", "app", "call_center", "email", "chat", "social", "store", "survey", "service_desk"}
)

# Defaults of the configurable limits (CX_LIMITS__*, flows/settings.py LimitSettings).
MAX_IDENTIFIERS = 32
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_VALUES = 10_000
#: Nesting the JSON parser itself refuses (pydantic-core's recursion guard).
MAX_JSON_DEPTH = 200

#: Error types of broken limits (each is also the dead-letter reason).
LIMIT_ERRORS: frozenset[str] = frozenset({"text_too_long", "too_many_identifiers", "too_deep"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one event, passed in the validation context under ``"limits"``."""

    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_identifiers: int = MAX_IDENTIFIERS
    max_depth: int = DEFAULT_MAX_DEPTH


_DEFAULT_LIMITS = Limits()


def _limits(info: ValidationInfo) -> Limits:
    limits = (info.context or {}).get("limits")
    return limits if isinstance(limits, Limits) else _DEFAULT_LIMITS


def check_free_values(groups: list[tuple[Collection[Any], int]], limits: Limits) -> None:
    """Walk free-form JSON values (attributes, unknown fields) without recursion.

    ``groups`` are ``(values, depth a container among them has)``. Raises a
    ``too_deep`` error, or ``not_finite`` for NaN and Infinity (pydantic's parser
    accepts them; JSON has no such numbers). How many values there are at most is
    checked before parsing (flows/steps/decode.py ``count_json_values``).

    >>> check_free_values([([1, {"b": [2]}], 4)], Limits(max_depth=5))
    >>> check_free_values([([1, {"b": [2]}], 4)], Limits(max_depth=4))
    Traceback (most recent call last):
    pydantic_core._pydantic_core.PydanticCustomError: nested deeper than 4 levels
    """
    stack = list(groups)
    while stack:
        values, depth = stack.pop()
        for value in values:
            if isinstance(value, dict | list):
                if depth > limits.max_depth:
                    msg = "too_deep"
                    raise PydanticCustomError(
                        msg, "nested deeper than {limit} levels", {"limit": limits.max_depth}
                    )
                stack.append((value.values() if isinstance(value, dict) else value, depth + 1))
            elif isinstance(value, float) and not math.isfinite(value):
                msg = "not_finite"
                raise PydanticCustomError(msg, "NaN and Infinity are not JSON numbers")


def normalise_identifiers(value: dict[Any, Any], limit: int, country: str) -> dict[str, str]:
    """Check and normalise the ``identifiers`` of an event's data (null values are dropped).

    Raises a ``too_many_identifiers`` error over ``limit`` (checked before normalising:
    a flood would cost time per identifier), a ``ValueError`` for a bad one.

    >>> normalise_identifiers({"Email": " A@B.co", "crm_id": 42, "phone": None}, 32, "1")
    {'email': 'a@b.co', 'crm_id': '42'}
    """
    if len(value) > limit:
        msg = "too_many_identifiers"
        raise PydanticCustomError(
            msg,
            "{count} identifiers, over the limit of {limit}",
            {"count": len(value), "limit": limit},
        )
    out: dict[str, str] = {}
    cache = _NORMALISED
    for raw_type, raw_value in value.items():
        if raw_value is None:
            continue
        if type(raw_value) is str:
            hit = cache.get((raw_type, raw_value, country))
            if hit is not None:
                out[hit[0]] = hit[1]
                continue
        if isinstance(raw_value, bool) or not isinstance(raw_value, str | int):
            msg = f"identifier {raw_type!r} must be a string, got {type(raw_value).__name__}"
            raise ValueError(msg)
        try:
            id_type = normalise_type(str(raw_type))
            normalised = normalise_identifier(id_type, str(raw_value), country)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from exc
        out[id_type] = normalised
        if type(raw_value) is str and type(raw_type) is str:
            if len(cache) >= MAX_CACHED_IDENTIFIERS:
                cache.clear()
            cache[raw_type, raw_value, country] = (id_type, normalised)
    return out


#: Identifiers whose normalised form is remembered (a returning customer's are
#: normalised once); the cache is emptied when full.
MAX_CACHED_IDENTIFIERS = 16_384
_NORMALISED: dict[tuple[str, str, str], tuple[str, str]] = {}


NonEmptyStr = Annotated[str, Field(min_length=1, max_length=512)]
Number = StrictInt | StrictFloat


class CxData(BaseModel):
    """The CX payload of an interaction event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    channel: Annotated[str, Field(min_length=1, max_length=64)]
    touchpoint: NonEmptyStr
    journey_stage: NonEmptyStr | None = None
    identifiers: dict[str, str] = Field(default_factory=dict)
    # Length is checked against the context's limit (see _text_within_limit).
    text: str | None = None
    sentiment: Annotated[Number, Field(ge=-1.0, le=1.0)] | None = None
    nps: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    csat: Annotated[StrictInt, Field(ge=1, le=5)] | None = None
    amount: Number | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    case_id: NonEmptyStr | None = None
    consent: dict[str, StrictBool] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("channel")
    @classmethod
    def _lower_channel(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("currency")
    @classmethod
    def _upper_currency(cls, value: str | None) -> str | None:
        return value.upper() if value is not None else None

    @field_validator("amount", "sentiment")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        try:
            # float() of a 400-digit integer overflows: later arithmetic would too
            finite = value is None or math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            msg = "must be a finite number"
            raise ValueError(msg)
        return value

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A dead letter, not a cut: a cut text would be scored and kept as if whole.
        limit = _limits(info).max_text_chars
        if value is not None and len(value) > limit:
            msg = "text_too_long"
            raise PydanticCustomError(
                msg,
                "text is {chars} characters, over the limit of {limit}",
                {"chars": len(value), "limit": limit},
            )
        return value

    @field_validator("identifiers", mode="before")
    @classmethod
    def _normalise_identifiers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic reports the type error
        country = (info.context or {}).get("phone_country_code", "1")
        return normalise_identifiers(value, _limits(info).max_identifiers, country)


class InteractionEvent(BaseModel):
    """One customer interaction, as a structured-mode CloudEvent."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=256)]
    source: NonEmptyStr
    type: Annotated[str, Field(min_length=1, max_length=128)]
    time: AwareDatetime
    specversion: str | None = None
    data: CxData

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 in UTC
            msg = "time is out of range in UTC"
            raise ValueError(msg) from None

    @field_validator("id")
    @classmethod
    def _strip_id(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            msg = "id must not be blank"
            raise ValueError(msg)
        return stripped

    @model_validator(mode="after")
    def _free_values_within_limits(self, info: ValidationInfo) -> InteractionEvent:
        # Depth: the event object is 1, data 2, data's fields 3.
        groups: list[tuple[Collection[Any], int]] = [
            ((self.model_extra or {}).values(), 2),
            ((self.data.model_extra or {}).values(), 3),
            (self.data.attributes.values(), 4),
        ]
        if any(values for values, _ in groups):
            check_free_values(groups, _limits(info))
        return self

    @property
    def channel_label(self) -> str:
        """The channel, or ``other`` for one outside the known vocabulary."""
        return self.data.channel if self.data.channel in KNOWN_CHANNELS else "other"

    @cached_property
    def epoch_ms(self) -> int:
        """Event time in milliseconds since the Unix epoch (computed once per event)."""
        return int(self.time.timestamp() * 1000)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy the event (:meth:`pydantic.BaseModel.model_copy`), forgetting cached values."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("epoch_ms", None)
        return copied
