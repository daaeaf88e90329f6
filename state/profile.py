"""The single customer view of one customer, as plain data with pure updates.

Attributes follow "latest by event time wins", so out-of-order events give the
same profile as in-order ones; counters add; identifier lists are sets kept in
first-seen order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.envelope import InteractionEvent
from schemas.outputs import ProfileSnapshot

_CASE_ACTIONS = frozenset({"case.opened", "case.resolved", "case.closed"})


def _action(event_type: str) -> str:
    """The action part of ``cx.<channel>.<action>`` (or ``cx.<noun>.<verb>``)."""
    return event_type.rsplit(".", 2)[-2] + "." + event_type.rsplit(".", 1)[-1]


@dataclass(slots=True)
class CustomerProfile:
    """Mutable per-customer state behind a :class:`ProfileSnapshot`."""

    customer_id: str
    recent_limit: int = 10
    version: int = 0
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    channel_counts: dict[str, int] = field(default_factory=dict)
    last_channel: str | None = None
    last_touchpoint: str | None = None
    lifetime_value: float = 0.0
    orders: int = 0
    last_nps: int | None = None
    last_csat: int | None = None
    sentiment: float | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    # case id -> is open, decided by the case's latest event (by event time).
    cases: dict[str, bool] = field(default_factory=dict)
    journey_stage: str | None = None
    recent: list[dict[str, Any]] = field(default_factory=list)
    last_event_id: str = ""
    # field -> (event time, event id) of the value it holds: latest wins, whatever
    # the order of arrival; the id breaks ties between events of the same time.
    stamps: dict[str, tuple[datetime, str]] = field(default_factory=dict)

    def _newer(self, name: str, stamp: tuple[datetime, str]) -> bool:
        current = self.stamps.get(name)
        if current is not None and stamp <= current:
            return False
        self.stamps[name] = stamp
        return True

    def apply(self, event: InteractionEvent) -> None:
        """Fold one event into the profile."""
        data = event.data
        when = event.time
        stamp = (when, event.id)
        self.version += 1
        for id_type, value in data.identifiers.items():
            values = self.identifiers.setdefault(id_type, [])
            if value not in values:
                values.append(value)
        self.first_seen = when if self.first_seen is None else min(self.first_seen, when)
        self.channel_counts[data.channel] = self.channel_counts.get(data.channel, 0) + 1
        if data.amount is not None:
            self.lifetime_value = round(self.lifetime_value + data.amount, 2)
        action = _action(event.type)
        if action == "order.placed":
            self.orders += 1
        case_id = data.case_id
        if (
            case_id is not None
            and action in _CASE_ACTIONS
            and self._newer(f"case:{case_id}", stamp)
        ):
            self.cases[case_id] = action == "case.opened"
        for purpose, granted in (data.consent or {}).items():
            if self._newer(f"consent:{purpose}", stamp):
                self.consent[purpose] = granted
        if self._newer("last", stamp):
            self.last_seen = when
            self.last_event_id = event.id
            self.last_channel = data.channel
            self.last_touchpoint = data.touchpoint
        if data.nps is not None and self._newer("nps", stamp):
            self.last_nps = data.nps
        if data.csat is not None and self._newer("csat", stamp):
            self.last_csat = data.csat
        if data.sentiment is not None and self._newer("sentiment", stamp):
            self.sentiment = data.sentiment
        if data.journey_stage is not None and self._newer("stage", stamp):
            self.journey_stage = data.journey_stage
        self._remember(event)

    def _remember(self, event: InteractionEvent) -> None:
        if self.recent_limit <= 0:
            return
        self.recent.append(
            {
                "id": event.id,
                "type": event.type,
                "channel": event.data.channel,
                "touchpoint": event.data.touchpoint,
                "time": event.time.isoformat(),
            }
        )
        self.recent.sort(key=lambda item: (item["time"], item["id"]))
        del self.recent[: -self.recent_limit]

    def snapshot(self) -> ProfileSnapshot:
        """The output view of this profile (requires at least one applied event)."""
        assert self.first_seen is not None and self.last_seen is not None
        return ProfileSnapshot(
            customer_id=self.customer_id,
            version=self.version,
            identifiers={t: list(v) for t, v in self.identifiers.items()},
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            event_count=sum(self.channel_counts.values()),
            channel_counts=dict(self.channel_counts),
            last_channel=self.last_channel,
            last_touchpoint=self.last_touchpoint,
            lifetime_value=self.lifetime_value,
            orders=self.orders,
            last_nps=self.last_nps,
            last_csat=self.last_csat,
            sentiment=self.sentiment,
            consent=dict(self.consent),
            open_cases=sorted(case for case, is_open in self.cases.items() if is_open),
            journey_stage=self.journey_stage,
            recent=[dict(item) for item in self.recent],
            last_event_id=self.last_event_id,
        )
