"""The input envelope: CloudEvents 1.0 attributes with the CX payload in ``data``.

Unknown fields are kept (``extra="allow"``) at both levels, so producers can
add to the contract without losing data. ``channel`` and ``type`` are open
vocabularies: a new value is processed, never rejected for being new.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

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
)

from schemas.identifiers import IdentifierError, normalise_identifier, normalise_type

KNOWN_CHANNELS: frozenset[str] = frozenset(
    {"web", "app", "call_center", "email", "chat", "social", "store", "survey", "service_desk"}
)

MAX_IDENTIFIERS = 32

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=512)]
Number = StrictInt | StrictFloat


class CxData(BaseModel):
    """The CX payload of an interaction event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    channel: Annotated[str, Field(min_length=1, max_length=64)]
    touchpoint: NonEmptyStr
    journey_stage: NonEmptyStr | None = None
    identifiers: dict[str, str] = Field(default_factory=dict)
    text: Annotated[str, Field(max_length=100_000)] | None = None
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
        if value is not None and not math.isfinite(value):
            msg = "must be a finite number"
            raise ValueError(msg)
        return value

    @field_validator("identifiers", mode="before")
    @classmethod
    def _normalise_identifiers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic reports the type error
        if len(value) > MAX_IDENTIFIERS:
            msg = f"at most {MAX_IDENTIFIERS} identifiers per event, got {len(value)}"
            raise ValueError(msg)
        country = (info.context or {}).get("phone_country_code", "1")
        out: dict[str, str] = {}
        for raw_type, raw_value in value.items():
            if raw_value is None:
                continue
            if isinstance(raw_value, bool) or not isinstance(raw_value, str | int):
                msg = f"identifier {raw_type!r} must be a string, got {type(raw_value).__name__}"
                raise ValueError(msg)
            try:
                id_type = normalise_type(str(raw_type))
                out[id_type] = normalise_identifier(id_type, str(raw_value), country)
            except IdentifierError as exc:
                raise ValueError(str(exc)) from exc
        return out


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
        return value.astimezone(UTC)

    @field_validator("id")
    @classmethod
    def _strip_id(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            msg = "id must not be blank"
            raise ValueError(msg)
        return stripped

    @property
    def channel_label(self) -> str:
        """The channel, or ``other`` for one outside the known vocabulary."""
        return self.data.channel if self.data.channel in KNOWN_CHANNELS else "other"

    @property
    def epoch_ms(self) -> int:
        """Event time in milliseconds since the Unix epoch."""
        return int(self.time.timestamp() * 1000)
