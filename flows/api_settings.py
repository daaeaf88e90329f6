"""Settings of the Experience API and of the action board (``CX_API__*``).

``CX_API__TOKENS`` maps the SHA-256 hex digest of each bearer token to its scopes, as
JSON: ``{"<64 hex>": ["profiles:read", "stream:read"]}``. Only digests are configured
(``printf %s "$TOKEN" | sha256sum``), and even they are kept in a ``SecretStr``: they
never show in a repr, a log line or an error.

>>> ApiSettings(tokens='{"' + "ab" * 32 + '": ["stream:read"]}').token_scopes()
{'abababababababababababababababababababababababababababababababab': frozenset({'stream:read'})}
"""

from __future__ import annotations

import re
from typing import Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Scope = Literal["profiles:read", "stream:read", "responses:write"]
SCOPES: tuple[str, ...] = get_args(Scope)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def parse_tokens(text: str) -> dict[str, frozenset[str]]:
    """Read the ``CX_API__TOKENS`` JSON; the error never quotes the value."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        msg = "CX_API__TOKENS must be a JSON object of sha256-hex -> list of scopes"
        raise ValueError(msg) from None
    if not isinstance(value, dict):
        msg = "CX_API__TOKENS must be a JSON object of sha256-hex -> list of scopes"
        raise ValueError(msg)
    tokens: dict[str, frozenset[str]] = {}
    for n, (digest, scopes) in enumerate(value.items(), 1):
        if not isinstance(digest, str) or not _DIGEST.match(digest.lower()):
            msg = f"CX_API__TOKENS key #{n} is not a SHA-256 hex digest (64 hex digits)"
            raise ValueError(msg)
        if not isinstance(scopes, list) or not all(s in SCOPES for s in scopes):
            msg = f"CX_API__TOKENS entry #{n}: scopes must be a list of {', '.join(SCOPES)}"
            raise ValueError(msg)
        tokens[digest.lower()] = frozenset(scopes)
    return tokens


class ApiSettings(BaseModel):
    """``cxstream serve`` and the board the flow keeps for it (``CX_API__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: SecretStr = SecretStr("{}")
    #: requests per second allowed per token (a token bucket of ``rate_burst``)
    rate_per_second: float = Field(default=50.0, gt=0)
    rate_burst: int = Field(default=100, ge=1)
    #: browser origins allowed to call the API (CORS); none by default
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=16_384, ge=256)
    #: uvicorn's access log (method, path, status: never a body); off by default, as
    #: a line per request cost serve about a fifth of its CPU per lookup (#19)
    access_log: bool = False
    #: SSE: events kept for ``Last-Event-ID`` resumes, per serve process
    stream_history: int = Field(default=10_000, ge=1)
    #: SSE: events queued for one client before it counts as slow and is dropped
    stream_client_queue: int = Field(default=1_000, ge=1)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: the flow writes the action board (current NBAs, open alerts, timeline)
    board: bool = True
    board_max_nbas: int = Field(default=20, ge=1)
    board_max_alerts: int = Field(default=20, ge=1)
    board_timeline_length: int = Field(default=100, ge=1)
    #: lifetime of an NBA without ``expires_at``, and of an open alert (event time)
    board_nba_ttl_seconds: float = Field(default=86_400.0, gt=0)
    board_alert_ttl_seconds: float = Field(default=7 * 86_400.0, gt=0)
    #: a quiet customer's board keys expire after this (Redis wall clock)
    board_retention_seconds: int = Field(default=7 * 86_400, ge=1)

    @field_validator("tokens")
    @classmethod
    def _tokens_parse(cls, value: SecretStr) -> SecretStr:
        parse_tokens(value.get_secret_value())
        return value

    def token_scopes(self) -> dict[str, frozenset[str]]:
        """Return the configured token digests and the scopes of each."""
        return parse_tokens(self.tokens.get_secret_value())
