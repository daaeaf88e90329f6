"""Delivery as Kafka really does it: lag, re-deliveries, stragglers and garbage.

Each event becomes one message whose arrival (the Kafka timestamp) is its event
time plus a lag: usually under a few seconds, minutes for about 3% (so they
arrive out of order), hours for about 0.5% (late: a phone that was offline, a
till that uploads in batches). About 1.5% are re-delivered: the same bytes once
more, up to a minute and a half later. About 0.5% of events come with an
invalid message from the same source beside them: not JSON, truncated, not
UTF-8, empty, or JSON that breaks the envelope's rules.

>>> import random
>>> from replay.world.drafts import Draft, EventIds
>>> draft = Draft(0, "w-1", "cx.web.login", "web", "web.account", "/web", {"email": "a@b.co"})
>>> bad, kind = make_invalid(random.Random(1), draft, EventIds(1))
>>> kind in INVALID_KINDS
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from replay.world.drafts import HOUR_MS, MINUTE_MS, SECOND_MS, Draft, EventIds
from replay.world.stream import DELAYED, DUPLICATE, HAS_DUPLICATE, INVALID, LATE, Stream


@dataclass(frozen=True, slots=True)
class NoiseRates:
    """Shares of events that are re-delivered, minutes late, hours late, or joined by garbage."""

    duplicate: float = 0.015
    delayed: float = 0.03
    late: float = 0.005
    invalid: float = 0.005


def _not_json(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    return rng.choice(
        (
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            b"ERROR: connection reset by peer",
            repr(event).encode(),  # a producer that sent str(dict)
        )
    )


def _truncated(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    return payload[: rng.randrange(1, len(payload) - 1)]  # a proper prefix of an object


def _invalid_utf8(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    event["data"]["text"] = "Paid £45 at the café, très bien"
    # A producer that wrote Windows-1252 instead of UTF-8.
    return orjson.dumps(event).decode().encode("cp1252", errors="replace")


def _empty(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    return b""


def _not_object(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    return rng.choice((b"null", b"[]", b"42", b'"cx.web.page.viewed"'))


def _missing_id(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    if rng.random() < 0.5:
        del event["id"]
    else:
        event["id"] = "  "
    return orjson.dumps(event)


def _nps_out_of_range(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    event["type"] = "cx.survey.nps"
    event["data"].update(channel="survey", nps=rng.choice((11, 12, -1, 100)))
    return orjson.dumps(event)


def _wrong_type(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    data = event["data"]
    variant = rng.randrange(4)
    if variant == 0:
        data["nps"] = "9"
    elif variant == 1:
        data["amount"] = "49.99"
    elif variant == 2:
        data["identifiers"] = list(data["identifiers"].values())
    else:
        data["consent"] = {"marketing_email": "yes"}
    return orjson.dumps(event)


def _naive_time(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    stamp = event["time"][:19]
    event["time"] = stamp if rng.random() < 0.5 else f"{stamp[5:7]}/{stamp[8:10]}/{stamp[:4]}"
    return orjson.dumps(event)


def _bad_identifier(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    if rng.random() < 0.5:
        event["data"]["identifiers"]["email"] = rng.choice(("n/a", "unknown", "none"))
    else:
        event["data"]["identifiers"]["phone"] = rng.choice(("12345", "ext 204"))
    return orjson.dumps(event)


def _missing_channel(rng: random.Random, event: dict[str, Any], payload: bytes) -> bytes:
    del event["data"]["channel"]
    return orjson.dumps(event)


_MAKERS: dict[str, Callable[[random.Random, dict[str, Any], bytes], bytes]] = {
    "not_json": _not_json,
    "truncated": _truncated,
    "invalid_utf8": _invalid_utf8,
    "empty": _empty,
    "not_object": _not_object,
    "missing_id": _missing_id,
    "nps_out_of_range": _nps_out_of_range,
    "wrong_type": _wrong_type,
    "naive_time": _naive_time,
    "bad_identifier": _bad_identifier,
    "missing_channel": _missing_channel,
}
INVALID_KINDS: tuple[str, ...] = tuple(_MAKERS)


def make_invalid(
    rng: random.Random, draft: Draft, ids: EventIds, kind: str | None = None
) -> tuple[bytes, str]:
    """Return a broken message from ``draft``'s source (with an id of its own), and its kind."""
    kind = kind or rng.choice(INVALID_KINDS)
    event = draft.cloud_event()
    event["id"] = ids.next(draft.event_id.split("-", 1)[0])
    payload = orjson.dumps(event)
    return _MAKERS[kind](rng, event, payload), kind


class Courier:
    """Puts each event's message (and any noise around it) on the stream."""

    def __init__(self, rng: random.Random, ids: EventIds, rates: NoiseRates) -> None:
        self.rng = rng
        self.ids = ids
        self.rates = rates
        self._late = rates.late
        self._delayed = rates.late + rates.delayed

    def deliver(self, draft: Draft, payload: bytes, stream: Stream) -> None:
        rng = self.rng
        r = rng.random()
        if r < self._late:
            lag, flags = rng.randrange(HOUR_MS, 12 * HOUR_MS), LATE
        elif r < self._delayed:
            lag, flags = rng.randrange(20 * SECOND_MS, 8 * MINUTE_MS), DELAYED
        else:
            lag, flags = min(5 * SECOND_MS, int(rng.lognormvariate(math.log(400), 0.8))), 0
        arrival = draft.t + lag
        if rng.random() < self.rates.duplicate:
            seq = stream.add(arrival, flags | HAS_DUPLICATE, payload)
            again = arrival + rng.randrange(200, 90 * SECOND_MS)
            stream.add(again, DUPLICATE, payload, ref=seq)
        else:
            stream.add(arrival, flags, payload)
        if rng.random() < self.rates.invalid:
            bad, kind = make_invalid(rng, draft, self.ids)
            stream.add(
                draft.t + rng.randrange(50, 5000), INVALID, bad, ref=INVALID_KINDS.index(kind)
            )
