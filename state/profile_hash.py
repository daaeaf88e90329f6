"""The customer profile as a flat hash, the same in Redis and in memory.

A profile is one hash of string fields plus a small sorted set of recent
interactions. Events change it through a :class:`ProfileDelta`; the rules are
implemented twice, here (for the in-memory store) and in ``lua/profile.lua``
(for Redis), and the store contract tests hold the two to the same results.

Fields: ``v`` version (events applied), ``count`` and ``n:<channel>`` counters,
``first`` (ms), ``ltv_c`` lifetime value in cents, ``orders``; groups whose value
is the one of the latest event by event time, each with a ``<name>@`` stamp:
``last`` (``last_ms``, ``last_event``, ``last_channel``, ``last_touchpoint``),
``nps``, ``csat``, ``sent``, ``stage``, ``consent:<purpose>``, ``case:<id>``;
``emit`` is the event time of the last publication.

A stamp is ``"<15-digit ms>|<event id>"``: comparing stamps as strings orders
by event time, then by event id, so the order of arrival never matters.

>>> h: dict[str, str] = {}
>>> d = ProfileDelta("c1", "e1", 1_000, "web", "web.home", amount_cents=1999, nps="9")
>>> apply_delta(h, d, emit_interval_ms=60_000)
True
>>> h["count"], h["ltv_c"], h["nps"], h["last_channel"]
('1', '1999', '9', 'web')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.envelope import InteractionEvent
from schemas.outputs import ProfileSnapshot
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, action_of

_WINDOW_FIELD = re.compile(r"^sent_[0-9.]+h$")
# case action -> "1" open / "0" closed
_CASE_ACTIONS = {CASE_OPENED: "1", **dict.fromkeys(CASE_FINISHED, "0")}
_COUNTERS = ("v", "count", "ltv_c", "orders")


@dataclass(frozen=True, slots=True)
class ProfileRules:
    """How profiles are kept: publication rate limit (event time) and recent-list size."""

    emit_interval_ms: int = 60_000
    recent_limit: int = 10
    # False: keep profiles without publishing them (offline runs read them at the end)
    publish: bool = True


def stamp(ms: int, event_id: str) -> str:
    """The ordering key of a value: event time first, then event id."""
    return f"{ms:015d}|{event_id}"


@dataclass(frozen=True, slots=True)
class ProfileDelta:
    """What one event changes in its customer's profile (values already as strings)."""

    customer_id: str
    event_id: str
    ms: int
    channel: str
    touchpoint: str
    amount_cents: int = 0
    order: bool = False
    nps: str | None = None
    csat: str | None = None
    sentiment: str | None = None
    stage: str | None = None
    consent: dict[str, str] = field(default_factory=dict)
    case: tuple[str, str] | None = None  # (case id, "1" open / "0" closed)
    recent: str = ""  # JSON of the recent-interaction entry
    latest: dict[str, str] = field(default_factory=dict)  # more latest-wins fields

    def to_wire(self) -> dict[str, Any]:
        """The delta as sent to the Lua script (short keys, no None values)."""
        wire: dict[str, Any] = {
            "c": self.customer_id,
            "s": stamp(self.ms, self.event_id),
            "ms": str(self.ms),
            "e": self.event_id,
            "ch": self.channel,
            "tp": self.touchpoint,
            "amt": self.amount_cents,
            "ord": 1 if self.order else 0,
            "r": self.recent,
        }
        for key, value in (
            ("nps", self.nps),
            ("csat", self.csat),
            ("sent", self.sentiment),
            ("stage", self.stage),
        ):
            if value is not None:
                wire[key] = value
        if self.consent:
            wire["consent"] = self.consent
        if self.case is not None:
            wire["case"] = list(self.case)
        if self.latest:
            wire["latest"] = self.latest
        return wire


def delta_for(
    customer_id: str,
    event: InteractionEvent,
    *,
    stage: str | None = None,
    sentiment: float | None = None,
    latest: Mapping[str, str] | None = None,
) -> ProfileDelta:
    """The profile change of one resolved event.

    ``stage`` and ``sentiment`` are what the journey step made of the event (they
    default to the event's own hints); ``latest`` holds more latest-wins fields.
    """
    data = event.data
    stage = stage if stage is not None else data.journey_stage
    sentiment = sentiment if sentiment is not None else data.sentiment
    ms = event.epoch_ms
    action = action_of(event.type)
    case = None
    if data.case_id is not None and action in _CASE_ACTIONS:
        case = (data.case_id, _CASE_ACTIONS[action])
    recent = orjson.dumps(
        {
            "time": event.time.isoformat(),
            "id": event.id,
            "type": event.type,
            "channel": data.channel,
            "touchpoint": data.touchpoint,
            **({"stage": stage} if stage is not None else {}),
        }
    ).decode()
    return ProfileDelta(
        customer_id=customer_id,
        event_id=event.id,
        ms=ms,
        channel=data.channel,
        touchpoint=data.touchpoint,
        amount_cents=round(data.amount * 100) if data.amount is not None else 0,
        order=action == "order.placed",
        nps=str(data.nps) if data.nps is not None else None,
        csat=str(data.csat) if data.csat is not None else None,
        sentiment=repr(float(sentiment)) if sentiment is not None else None,
        stage=stage,
        consent={k: "1" if v else "0" for k, v in (data.consent or {}).items()},
        case=case,
        recent=recent,
        latest=dict(latest or {}),
    )


def _set_latest(h: dict[str, str], name: str, st: str, values: Mapping[str, str]) -> None:
    current = h.get(name + "@")
    if current is None or st > current:
        h[name + "@"] = st
        h.update(values)


def _incr(h: dict[str, str], name: str, by: int) -> None:
    h[name] = str(int(h.get(name, "0")) + by)


def apply_delta(h: dict[str, str], d: ProfileDelta, emit_interval_ms: int) -> bool:
    """Apply ``d`` to the hash ``h``; return True when the profile is due for publication."""
    st = stamp(d.ms, d.event_id)
    _incr(h, "v", 1)
    _incr(h, "count", 1)
    _incr(h, "n:" + d.channel, 1)
    _incr(h, "ltv_c", d.amount_cents)
    _incr(h, "orders", 1 if d.order else 0)
    if "first" not in h or d.ms < int(h["first"]):
        h["first"] = str(d.ms)
    _set_latest(
        h,
        "last",
        st,
        {
            "last_ms": str(d.ms),
            "last_event": d.event_id,
            "last_channel": d.channel,
            "last_touchpoint": d.touchpoint,
        },
    )
    for name, value in (
        ("nps", d.nps),
        ("csat", d.csat),
        ("sent", d.sentiment),
        ("stage", d.stage),
    ):
        if value is not None:
            _set_latest(h, name, st, {name: value})
    for purpose, granted in sorted(d.consent.items()):
        _set_latest(h, "consent:" + purpose, st, {"consent:" + purpose: granted})
    if d.case is not None:
        _set_latest(h, "case:" + d.case[0], st, {"case:" + d.case[0]: d.case[1]})
    for name, value in sorted(d.latest.items()):
        _set_latest(h, name, st, {name: value})
    if "emit" not in h or d.ms - int(h["emit"]) >= emit_interval_ms:
        h["emit"] = str(d.ms)
        return True
    return False


def fold(into: dict[str, str], src: Mapping[str, str]) -> None:
    """Merge profile ``src`` into ``into``: counters add, latest-by-stamp wins, first is the min."""
    for name, value in src.items():
        if name in _COUNTERS or name.startswith("n:"):
            _incr(into, name, int(value))
    if "first" in src and ("first" not in into or int(src["first"]) < int(into["first"])):
        into["first"] = src["first"]
    groups = {name[:-1] for name in src if name.endswith("@")}
    for group in sorted(groups):
        members = _LAST_FIELDS if group == "last" else (group,)
        _set_latest(into, group, src[group + "@"], {m: src[m] for m in members if m in src})


_LAST_FIELDS = ("last_ms", "last_event", "last_channel", "last_touchpoint")


def _ms_to_dt(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def snapshot_from_hash(
    customer_id: str,
    h: Mapping[str, str],
    identifiers: Mapping[str, list[str]],
    recent: list[str],
) -> ProfileSnapshot:
    """The output view of a stored profile."""
    channels: dict[str, int] = {}
    consent: dict[str, bool] = {}
    windows: dict[str, float] = {}
    by_stage: dict[str, float] = {}
    open_cases: list[str] = []
    for name, value in sorted(h.items()):  # one pass; sorted, so every run gives one order
        if name[-1] == "@":
            continue
        head, sep, rest = name.partition(":")
        if sep:
            if head == "n":
                channels[rest] = int(value)
            elif head == "consent":
                consent[rest] = value == "1"
            elif head == "case":
                if value == "1":
                    open_cases.append(rest)
            elif head == "sent_stage":
                by_stage[rest] = float(value)
        elif name.startswith("sent_") and _WINDOW_FIELD.match(name):
            windows[name[5:]] = float(value)
    # The hash was written by our own rules: construct without re-validating (hot path).
    return ProfileSnapshot.model_construct(
        customer_id=customer_id,
        version=int(h["v"]),
        identifiers={t: sorted(v) for t, v in sorted(identifiers.items())},
        first_seen=_ms_to_dt(h["first"]),
        last_seen=_ms_to_dt(h["last_ms"]),
        event_count=int(h["count"]),
        channel_counts=channels,
        last_channel=h.get("last_channel"),
        last_touchpoint=h.get("last_touchpoint"),
        lifetime_value=int(h.get("ltv_c", "0")) / 100,
        orders=int(h.get("orders", "0")),
        last_nps=int(h["nps"]) if "nps" in h else None,
        last_csat=int(h["csat"]) if "csat" in h else None,
        sentiment=float(h["sent"]) if "sent" in h else None,
        consent=consent,
        open_cases=open_cases,
        journey_stage=h.get("stage"),
        sentiment_windows=windows,
        sentiment_trend=float(h["sent_trend"]) if "sent_trend" in h else None,
        sentiment_by_stage=by_stage,
        churn_score=float(h["churn"]) if "churn" in h else None,
        segment=h.get("segment"),
        recent=[orjson.loads(item) for item in recent],
        last_event_id=h["last_event"],
    )
