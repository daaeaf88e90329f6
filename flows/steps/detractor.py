"""Detractor alerts: close the loop on every NPS answer of 0-6.

The journey step raises them (:mod:`flows.steps.journey`), where the customer is known;
the due time is ``CX_JOURNEY__DETRACTOR_SLA_HOURS``.
"""

from __future__ import annotations

from datetime import timedelta

from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert
from schemas.vocabulary import NPS_DETRACTOR_MAX

# A detractor score at or below this is a high-severity alert (else medium).
HIGH_SEVERITY_MAX = 3


def detractor_alert(
    event: InteractionEvent, customer_id: str | None, sla_hours: float = 48.0
) -> Alert | None:
    """Return a close-the-loop alert for an NPS answer of 0-6; None for anything else.

    Examples
    --------
    >>> event = InteractionEvent.model_validate({"id": "s-1", "source": "/doc",
    ...     "type": "cx.survey.nps", "time": "2026-03-02T10:00:00Z",
    ...     "data": {"channel": "survey", "touchpoint": "store.till", "nps": 2}})
    >>> alert = detractor_alert(event, "cust-1")
    >>> alert.severity, alert.due_at.isoformat(), alert.evidence["nps"]
    ('high', '2026-03-04T10:00:00+00:00', 2)
    >>> detractor_alert(event.model_copy(update={"data": event.data.model_copy(
    ...     update={"nps": 7})}), "cust-1") is None
    True
    """
    score = event.data.nps
    if score is None or score > NPS_DETRACTOR_MAX:
        return None
    return Alert(
        id=output_id("alert", "detractor", event.id),
        kind="detractor",
        severity="high" if score <= HIGH_SEVERITY_MAX else "medium",
        customer_id=customer_id,
        touchpoint=event.data.touchpoint,
        time=event.time,
        due_at=event.time + timedelta(hours=sla_hours),
        message=f"detractor (NPS {score}) at {event.data.touchpoint}: close the loop",
        evidence={
            "event_ids": [event.id],
            "nps": score,
            "touchpoint": event.data.touchpoint,
            "channel": event.data.channel,
        },
    )
