"""Reading a profile hash back: the recent interactions and the :class:`ProfileSnapshot`.

The hash's fields are described in :mod:`state.profile_hash`; both stores (Redis and
in memory) build their snapshots here, so they read the same fields the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.outputs import ProfileSnapshot
from state.household_figures import profile_household
from state.profile_hash import WINDOW_FIELD


def parse_recent(entries: list[str]) -> list[dict[str, Any]]:
    """Recent-interaction entries (JSON objects) parsed in one call.

    >>> parse_recent(['{"id":"e1"}', '{"id":"e2"}'])
    [{'id': 'e1'}, {'id': 'e2'}]
    """
    parsed: list[dict[str, Any]] = orjson.loads("[" + ",".join(entries) + "]")
    return parsed


# snapshot_from_hash runs once per published profile: half its time went into
# model_construct walking every field for aliases and defaults. Every field is
# given here, so the instance is assembled as model_construct would leave it
# (tests/state/test_profile_hash.py holds the two equal).
_SNAPSHOT_FIELDS = tuple(ProfileSnapshot.model_fields)
_new_snapshot = ProfileSnapshot.__new__
_set = object.__setattr__
if ProfileSnapshot.__pydantic_post_init__ or ProfileSnapshot.__private_attributes__:
    msg = "ProfileSnapshot gained a post-init or private attributes: use model_construct"
    raise TypeError(msg)


def trusted_snapshot(values: dict[str, Any]) -> ProfileSnapshot:
    """Build a :class:`ProfileSnapshot` from values that name every field, without validation.

    >>> h = {"v": "1", "count": "1", "first": "0", "last_ms": "0", "last_event": "e1", "nps": "9"}
    >>> values = dict(reversed(snapshot_from_hash("c1", h, {}, []).__dict__.items()))
    >>> trusted, constructed = trusted_snapshot(values), ProfileSnapshot.model_construct(**values)
    >>> trusted == constructed, trusted.model_dump_json() == constructed.model_dump_json()
    (True, True)
    """
    if tuple(values) != _SNAPSHOT_FIELDS:
        # Serialisation follows the order of __dict__: keep the declared one.
        missing = sorted(set(_SNAPSHOT_FIELDS) - set(values))
        if missing:
            msg = f"a trusted snapshot needs every field; missing {missing}"
            raise ValueError(msg)
        values = {name: values[name] for name in _SNAPSHOT_FIELDS}
    snapshot = _new_snapshot(ProfileSnapshot)
    _set(snapshot, "__dict__", values)
    _set(snapshot, "__pydantic_fields_set__", set(_SNAPSHOT_FIELDS))
    _set(snapshot, "__pydantic_extra__", None)
    _set(snapshot, "__pydantic_private__", None)
    return snapshot


def _ms_to_dt(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def snapshot_from_hash(
    customer_id: str,
    h: Mapping[str, str],
    identifiers: Mapping[str, list[str]],
    recent: list[dict[str, Any]],
) -> ProfileSnapshot:
    """Return the output view of a stored profile.

    ``recent`` holds the parsed entries, oldest first.

    Fields are read in whatever order the store lists them; the small dicts built
    from them are sorted at the end, so every store and every run gives one order.
    """
    channels: dict[str, int] = {}
    consent: dict[str, bool] = {}
    windows: dict[str, float] = {}
    by_stage: dict[str, float] = {}
    open_cases: list[str] = []
    household_id, household = profile_household(h)
    for name, value in h.items():
        # Most fields are plain names read directly below; only the prefixed groups
        # and the sentiment windows are collected here (a hot loop: cheap tests first).
        if ":" in name:
            if name[-1] == "@":
                continue
            head, _, rest = name.partition(":")
            if head == "n":
                channels[rest] = int(value)
            elif head == "consent":
                consent[rest] = value == "1"
            elif head == "case":
                if value == "1":
                    open_cases.append(rest)
            elif head == "sent_stage":
                by_stage[rest] = float(value)
        elif name[:5] == "sent_" and WINDOW_FIELD.match(name):
            windows[name[5:]] = float(value)
    # The hash was written by our own rules: construct without re-validating (hot path).
    return trusted_snapshot(
        {  # in the declared order of the fields
            "customer_id": customer_id,
            "version": int(h["v"]),
            "identifiers": {t: sorted(v) for t, v in sorted(identifiers.items())},
            "first_seen": _ms_to_dt(h["first"]),
            "last_seen": _ms_to_dt(h["last_ms"]),
            "event_count": int(h["count"]),
            "channel_counts": dict(sorted(channels.items())),
            "last_channel": h.get("last_channel"),
            "last_touchpoint": h.get("last_touchpoint"),
            "lifetime_value": int(h.get("ltv_c", "0")) / 100,
            "orders": int(h.get("orders", "0")),
            "last_nps": int(h["nps"]) if "nps" in h else None,
            "last_csat": int(h["csat"]) if "csat" in h else None,
            "sentiment": float(h["sent"]) if "sent" in h else None,
            "churn_score": float(h["churn"]) if "churn" in h else None,
            "consent": dict(sorted(consent.items())),
            "open_cases": sorted(open_cases),
            "segment": h.get("segment"),
            "journey_stage": h.get("stage"),
            "sentiment_windows": dict(sorted(windows.items())),
            "sentiment_trend": float(h["sent_trend"]) if "sent_trend" in h else None,
            "sentiment_by_stage": dict(sorted(by_stage.items())),
            "recent": recent,
            "last_event_id": h["last_event"],
            "household_id": household_id,
            "household": household,
        }
    )
