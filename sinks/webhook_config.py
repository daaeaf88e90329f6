"""Webhook targets (``CX_WEBHOOKS__*``): which outputs go where, signed with which secret.

One target takes the records of one output kind, optionally only those whose
top-level fields hold one of the listed values (``match``), e.g. alerts of kind
``detractor`` with severity ``high``:

>>> target = WebhookTarget(name="desk", kind="alerts", url="https://desk.example/hook",
...     secret="s3cret", match={"kind": ["detractor"], "severity": ["high"]})
>>> high = {"kind": "detractor", "severity": "high"}
>>> target.accepts(high), target.accepts({"kind": "sla_breach"})
(True, False)
>>> target.secret
SecretStr('**********')
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from schemas.records import OUTPUT_KINDS


class WebhookTarget(BaseModel):
    """One receiver of one output kind."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    url: str
    secret: SecretStr
    match: dict[str, list[str | int | float | bool | None]] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_seconds: float = Field(default=0.5, ge=0)
    backoff_cap_seconds: float = Field(default=30.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in OUTPUT_KINDS:
            msg = f"kind must be one of {', '.join(OUTPUT_KINDS)}"
            raise ValueError(msg)
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            msg = "url must start with http:// or https://"
            raise ValueError(msg)
        return value

    def accepts(self, record: dict[str, Any]) -> bool:
        """Whether a record of this target's kind passes its ``match`` filter."""
        return all(record.get(name) in values for name, values in self.match.items())


class WebhookSettings(BaseModel):
    """Every webhook target, and the delivery limits they share."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    targets: list[WebhookTarget] = Field(default_factory=list)
    #: deliveries in flight at once, per worker
    concurrency: int = Field(default=4, ge=1)
    #: deliveries held (in flight or waiting); past it a record goes to cx.dlq at once
    max_pending: int = Field(default=10_000, ge=1)

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, value: list[WebhookTarget]) -> list[WebhookTarget]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            msg = "webhook target names must be unique"
            raise ValueError(msg)
        return value

    def kinds(self) -> frozenset[str]:
        """Return the output kinds some target takes."""
        return frozenset(t.kind for t in self.targets)
