"""Event factories for the online-model tests: events on a day/hour grid of event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import InteractionEvent

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAY_MS = 86_400_000


def ev(
    n: int | str,
    day: float,
    etype: str = "cx.web.page.viewed",
    channel: str = "web",
    touchpoint: str = "web.home",
    **data: Any,
) -> InteractionEvent:
    """Event ``n`` at ``day`` days (fractions allowed) after T0."""
    return InteractionEvent.model_validate(
        {
            "id": f"e{n}",
            "source": "/tests",
            "type": etype,
            "time": (T0 + timedelta(days=day)).isoformat(),
            "data": {"channel": channel, "touchpoint": touchpoint, **data},
        }
    )


def ms(day: float) -> int:
    return int((T0 + timedelta(days=day)).timestamp() * 1000)
