"""The request and response bodies of the Experience API (they name the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.identifiers import MAX_IDENTIFIER_CHARS
from schemas.outputs import ProfileSnapshot
from schemas.responses import Outcome

_Id = Annotated[str, Field(min_length=1, max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LookupRequest(_Body):
    """An identifier to look a customer up by (in the body: never in a URL or a log)."""

    type: Annotated[str, Field(min_length=1, max_length=32, examples=["email"])]
    value: Annotated[str, Field(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]


class LookupResult(BaseModel):
    """The customer an identifier links to, and their 360 profile."""

    customer_id: str
    profile: ProfileSnapshot


class Sentiment(BaseModel):
    """The customer's sentiment: latest, rolling windows, trend (EWMA), mean per stage."""

    current: float | None
    windows: dict[str, float]
    trend: float | None
    by_stage: dict[str, float]


class Timeline(BaseModel):
    """The journey: interactions oldest first (stage, sentiment, touchpoint), and sentiment."""

    customer_id: str
    journey_stage: str | None
    interactions: list[dict[str, Any]]
    sentiment: Sentiment


class CustomerActions(BaseModel):
    """A customer's current (unexpired, unanswered) NBAs and open alerts, newest first."""

    customer_id: str
    nbas: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


class ResponseRequest(_Body):
    """An agent's response to an NBA."""

    nba_id: _Id
    outcome: Outcome
    agent_id: _Id
    time: AwareDatetime


class ResponseAccepted(BaseModel):
    """A response taken: published to the flow (``duplicate``: the same one was taken before)."""

    event_id: str
    nba_id: str
    outcome: str
    duplicate: bool
    outcomes: list[str]


class Health(BaseModel):
    """Liveness and the state of the parts behind the API."""

    status: str
    store: str
    stream: str
    stream_clients: int
    time: datetime


class Problem(BaseModel):
    """An error: what went wrong and what to do."""

    detail: str
