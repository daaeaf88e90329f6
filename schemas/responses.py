"""Agent responses to next-best actions: the wire contract between the API and the flow.

The Experience API (``cxstream serve``, ``POST /v1/responses``) publishes each response
to the flow's input topic as a structured-mode CloudEvent of type
:data:`RESPONSE_TYPE`; the flow reads it like any other event. Its ``data`` carries the
usual ``channel`` and ``touchpoint`` and, beside them, the response fields. The id is
derived from ``(nba_id, outcome)``, so a response sent twice is one event for the
flow's dedupe step (idempotent by construction).

>>> from datetime import UTC, datetime
>>> response = NbaResponse(nba_id="nba-1", decision_id="dec-1", customer_id="c-1",
...                        action="service_recovery", channel="call_center",
...                        outcome="accepted", agent_id="agent-7",
...                        time=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
>>> event = response.to_cloudevent()
>>> event["type"], event["id"] == response_event_id("nba-1", "accepted")
('cx.nba.response', True)
>>> NbaResponse.from_data(event["data"], event["time"]) == response
True
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.ids import output_id

#: CloudEvents ``type`` of an agent's response to an NBA.
RESPONSE_TYPE = "cx.nba.response"
#: CloudEvents ``source`` of responses published by the Experience API.
RESPONSE_SOURCE = "/cxstream/api"
#: Touchpoint of every response event.
RESPONSE_TOUCHPOINT = "agent_desktop"

Outcome = Literal["impression", "accepted", "rejected", "dismissed"]
"""What an agent (or the customer through them) did with an NBA."""

_Id = Annotated[str, Field(min_length=1, max_length=256)]


def response_event_id(nba_id: str, outcome: str) -> str:
    """Return the deterministic event id of the response ``outcome`` to ``nba_id``."""
    return output_id("resp", nba_id, outcome)


class NbaResponse(BaseModel):
    """One response to one NBA, joined to its decision in event time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nba_id: _Id
    decision_id: _Id
    customer_id: _Id
    action: _Id
    channel: Annotated[str, Field(min_length=1, max_length=64)]
    outcome: Outcome
    agent_id: _Id
    time: AwareDatetime

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def event_id(self) -> str:
        """The response's deterministic CloudEvent id."""
        return response_event_id(self.nba_id, self.outcome)

    def to_cloudevent(self) -> dict[str, Any]:
        """Return the structured-mode CloudEvent (a JSON-ready dict) the flow reads."""
        data = self.model_dump(mode="json", exclude={"time"})
        data["touchpoint"] = RESPONSE_TOUCHPOINT
        return {
            "specversion": "1.0",
            "id": self.event_id,
            "source": RESPONSE_SOURCE,
            "type": RESPONSE_TYPE,
            "subject": self.customer_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": data,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any], time: datetime | str) -> NbaResponse:
        """Read a response back from an event's ``data`` and ``time`` (raises on a bad one)."""
        fields = {name: data.get(name) for name in cls.model_fields if name != "time"}
        return cls.model_validate({**fields, "time": time})
