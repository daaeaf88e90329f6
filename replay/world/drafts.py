"""Events before they become bytes: the :class:`Draft`, its id, and its CloudEvent form.

>>> ids = EventIds(key=12345)
>>> a, b = ids.next("w"), ids.next("w")
>>> a != b and a.startswith("w-") and len(a) == 14
True
>>> rfc3339(1772445600123)
'2026-03-02T10:00:00.123Z'
>>> rfc3339(1772445600123, "-08:00")
'2026-03-02T02:00:00-08:00'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_MASK48 = (1 << 48) - 1


@dataclass(slots=True)
class Draft:
    """One interaction event of one person, with raw (un-normalised) identifiers."""

    t: int  # event time, ms since the epoch
    event_id: str
    type: str
    channel: str
    touchpoint: str
    source: str
    identifiers: dict[str, str]
    fields: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    # How the source writes its clock: "Z" with ms, or a fixed offset such as
    # a till's local "-08:00"; both name the same instant.
    tz: str = "Z"

    def cloud_event(self) -> dict[str, Any]:
        """Return the structured-mode CloudEvent of this draft, as a fresh dict."""
        data: dict[str, Any] = {"channel": self.channel, "touchpoint": self.touchpoint}
        if self.stage is not None:
            data["journey_stage"] = self.stage
        data["identifiers"] = dict(self.identifiers)
        data.update(self.fields)
        if self.attributes:
            data["attributes"] = dict(self.attributes)
        return {
            "specversion": "1.0",
            "id": self.event_id,
            "source": self.source,
            "type": self.type,
            "time": rfc3339(self.t, self.tz),
            "data": data,
        }


class EventIds:
    """Unique, opaque event ids: a counter through a keyed 48-bit bijection.

    Every step (xor, multiply by an odd constant, xor-shift) is invertible on 48
    bits, so distinct counters give distinct ids without remembering any.
    """

    def __init__(self, key: int) -> None:
        self.key = key & _MASK48
        self.count = 0

    def next(self, prefix: str) -> str:
        """Return the next id, e.g. ``w-3f9a2c7d11e0``."""
        x = self.count ^ self.key
        self.count += 1
        x = (x * 0x9E3779B97F4B) & _MASK48
        x ^= x >> 23
        x = (x * 0xBF58476D1CE5) & _MASK48
        x ^= x >> 19
        return f"{prefix}-{x:012x}"


_DATES: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(t_ms: int, tz: str = "Z") -> str:
    """RFC 3339 text for ``t_ms``: UTC with ms for ``"Z"``, else local time at offset ``tz``."""
    if tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        t_ms += sign * (int(tz[1:3]) * HOUR_MS + int(tz[4:6]) * MINUTE_MS)
    day, rest = divmod(t_ms, DAY_MS)
    date = _DATES.get(day)
    if date is None:  # ~100 distinct days per world: formatting them once is enough
        date = _DATES[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
    hours, rest = divmod(rest, HOUR_MS)
    minutes, rest = divmod(rest, MINUTE_MS)
    seconds, millis = divmod(rest, SECOND_MS)
    if tz == "Z":
        return f"{date}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"
    return f"{date}T{hours:02d}:{minutes:02d}:{seconds:02d}{tz}"
