"""A small, seeded CX world for the demo and tests.

Each customer has a hidden experience quality that drives their sentiment,
survey scores and whether they churn. Identity is fragmented the way channel
systems see it: cookies before login, email on web/email/chat, phone on calls,
a CRM and loyalty id on orders, a handle on social; orders carry the home address,
typed several ways, and every sixth customer shares a home with the next (a
household of two). A little noise is mixed in:
re-delivered duplicates, events out of order, and a few invalid messages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.records import RawMessage

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FIRST_NAMES = (
    "ann",
    "bob",
    "chen",
    "dara",
    "eli",
    "fay",
    "gus",
    "hana",
    "ivo",
    "jun",
    "kai",
    "lea",
)
LAST_NAMES = ("lee", "smith", "okafor", "garcia", "novak", "tanaka", "berg", "rossi", "khan")
# touchpoint -> (channel, quality offset): some touchpoints are consistently worse.
TOUCHPOINTS: dict[str, tuple[str, float]] = {
    "web.checkout": ("web", 0.1),
    "web.search": ("web", 0.0),
    "app.home": ("app", 0.15),
    "store.london-oxford-st": ("store", 0.2),
    "call_center.billing": ("call_center", -0.35),
    "call_center.tech-support": ("call_center", -0.1),
    "chat.support-bot": ("chat", -0.25),
    "email.newsletter": ("email", 0.05),
    "social.twitter": ("social", -0.05),
    "service_desk.returns": ("service_desk", -0.2),
}
GOOD_TEXT = (
    "Thanks, that was quick and easy!",
    "Great service, the agent sorted it in minutes.",
    "Love the new app, checkout was smooth.",
)
BAD_TEXT = (
    "Still waiting for my refund, this is terrible.",
    "I have called three times and nobody helps. Very disappointed.",
    "The app keeps crashing at checkout, so frustrating.",
)


@dataclass
class _Customer:
    n: int
    email: str
    phone: str
    crm_id: str
    loyalty_id: str
    cookie_id: str
    device_id: str
    handle: str
    quality: float


def _customer(rng: random.Random, n: int) -> _Customer:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return _Customer(
        n=n,
        email=f"{first.title()}.{last}{n}@Example.com ",  # un-normalised on purpose
        phone=f"(415) 555-{1000 + n:04d}",
        crm_id=f"C-{10000 + n}",
        loyalty_id=f"L{700000 + n}",
        cookie_id=f"ck-{rng.getrandbits(48):012x}",
        device_id=f"dev-{rng.getrandbits(40):010x}",
        handle=f"@{first}{last}{n}",
        quality=rng.uniform(-1.0, 1.0),
    )


def _event(
    rng: random.Random,
    c: _Customer,
    when: datetime,
    etype: str,
    touchpoint: str,
    identifiers: dict[str, str],
    **data: Any,
) -> dict[str, Any]:
    channel, _ = TOUCHPOINTS[touchpoint]
    return {
        "specversion": "1.0",
        "id": f"evt-{c.n:04d}-{rng.getrandbits(40):010x}",
        "source": f"/channels/{channel}",
        "type": etype,
        "time": when.isoformat().replace("+00:00", "Z"),
        "data": {"channel": channel, "touchpoint": touchpoint, "identifiers": identifiers, **data},
    }


_SPELLINGS = ("{n} Elm Street, Flat {u}", "flat {u}, {n} elm st", "{n} ELM ST.  Apt {u}")


def _home(n: int, k: int) -> str:
    """Return customer ``n``'s address as their ``k``-th event types it (6m, 6m+1 share)."""
    home = n - 1 if n % 6 == 1 else n
    return _SPELLINGS[k % len(_SPELLINGS)].format(n=10 + home, u=1 + home % 4)


def _journey(rng: random.Random, c: _Customer, days: int) -> list[dict[str, Any]]:
    t = START + timedelta(hours=rng.uniform(0, 24 * days * 0.3))
    end = START + timedelta(days=days)
    out = [
        _event(
            rng,
            c,
            t,
            "cx.web.page.viewed",
            "web.search",
            {"cookie_id": c.cookie_id},
            journey_stage="awareness",
        )
    ]
    open_case: str | None = None
    while True:
        t += timedelta(hours=rng.expovariate(1 / 30))
        if t >= end:
            break
        touchpoint = rng.choice(list(TOUCHPOINTS))
        channel, offset = TOUCHPOINTS[touchpoint]
        experience = max(-1.0, min(1.0, c.quality + offset + rng.gauss(0, 0.3)))
        text = rng.choice(GOOD_TEXT if experience > 0 else BAD_TEXT)
        ids: dict[str, str] = {
            "web": {"cookie_id": c.cookie_id, "email": c.email},
            "app": {"device_id": c.device_id, "email": c.email},
            "store": {"loyalty_id": c.loyalty_id, "crm_id": c.crm_id},
            "call_center": {"phone": c.phone, "crm_id": c.crm_id},  # verified caller
            "chat": {"email": c.email},
            "email": {"email": c.email},
            "social": {"social_handle": c.handle, "email": c.email},  # DM with email
            "service_desk": {"crm_id": c.crm_id, "email": c.email},
        }[channel]
        if channel in ("web", "store", "app") and rng.random() < 0.5:
            home = _home(c.n, len(out))  # no draw of rng: the rest of the world stays
            out.append(
                _event(
                    rng,
                    c,
                    t,
                    "cx.order.placed",
                    touchpoint,
                    {**ids, "address": home},
                    amount=round(rng.uniform(15, 250), 2),
                    currency="GBP",
                    journey_stage="purchase",
                )
            )
        elif channel in ("call_center", "chat", "service_desk", "social"):
            if open_case is None and experience < -0.2:
                open_case = f"case-{c.n:04d}-{len(out)}"
                out.append(
                    _event(
                        rng,
                        c,
                        t,
                        f"cx.{channel}.case.opened",
                        touchpoint,
                        ids,
                        case_id=open_case,
                        text=text,
                        journey_stage="service",
                    )
                )
            else:
                out.append(_event(rng, c, t, f"cx.{channel}.message", touchpoint, ids, text=text))
        else:
            out.append(_event(rng, c, t, f"cx.{channel}.interaction", touchpoint, ids))
        if open_case is not None and experience > 0:
            out.append(
                _event(
                    rng,
                    c,
                    t + timedelta(hours=2),
                    "cx.service_desk.case.resolved",
                    "service_desk.returns",
                    {"crm_id": c.crm_id},
                    case_id=open_case,
                )
            )
            open_case = None
        if rng.random() < 0.35:
            nps = max(0, min(10, round(7 + 4 * experience + rng.gauss(0, 1))))
            csat = max(1, min(5, round(3.5 + 1.5 * experience)))
            out.append(
                _event(
                    rng,
                    c,
                    t + timedelta(minutes=30),
                    "cx.survey.nps",
                    touchpoint,
                    {"email": c.email},
                    nps=nps,
                    csat=csat,
                )
            )
        if rng.random() < 0.05:
            out.append(
                _event(
                    rng,
                    c,
                    t,
                    "cx.email.consent.updated",
                    "email.newsletter",
                    {"email": c.email},
                    consent={"marketing_email": experience > -0.5},
                )
            )
    if c.quality < -0.5 and rng.random() < 0.6:
        out.append(
            _event(
                rng,
                c,
                end - timedelta(hours=rng.uniform(1, 48)),
                "cx.account.closed",
                "service_desk.returns",
                {"crm_id": c.crm_id, "email": c.email},
            )
        )
    return out


INVALID: tuple[bytes, ...] = (
    b"this is not json",
    b'{"id": "bad-nps", "source": "/s", "type": "cx.survey.nps", "time": "2026-03-03T10:00:00Z",'
    b' "data": {"channel": "survey", "touchpoint": "web.checkout", "nps": 11}}',
    b'{"source": "/s", "type": "cx.web.page.viewed", "time": "2026-03-03T10:00:00Z",'
    b' "data": {"channel": "web", "touchpoint": "web.search"}}',
    b"\xff\xfe{not utf-8}",
)


def generate_sample(customers: int = 40, days: int = 14, seed: int = 7) -> Iterator[RawMessage]:
    """Yield the sample world as Kafka-like messages on ``cx.events`` partition 0."""
    rng = random.Random(seed)
    events = [e for n in range(customers) for e in _journey(rng, _customer(rng, n), days)]
    events.sort(key=lambda e: (e["time"], e["id"]))
    payloads = [orjson.dumps(e) for e in events]
    for i in range(len(payloads) - 1):  # a few neighbours swapped: out of order
        if rng.random() < 0.03:
            payloads[i], payloads[i + 1] = payloads[i + 1], payloads[i]
    stream: list[bytes] = []
    for payload in payloads:
        stream.append(payload)
        if rng.random() < 0.02:
            stream.append(payload)  # re-delivered duplicate
    for bad in INVALID:
        stream.insert(rng.randrange(len(stream)), bad)
    base_ms = int(START.timestamp() * 1000)
    for offset, value in enumerate(stream):
        yield RawMessage(value, None, "cx.events", 0, offset, base_ms + offset * 1000)
