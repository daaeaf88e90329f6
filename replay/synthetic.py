"""A synthetic customer-experience world with ground truth.

:func:`generate_world` simulates ``customers`` people over ``days`` days: their
journeys across web, app, call centre, email, chat, social, stores, surveys and
the service desk; fragmented identities (cookies and devices before login, an
email here, a phone number there, a family tablet, a store kiosk many people
sign in on, junk typed by tills: see :mod:`replay.world.sharing`); cases
that meet or breach their SLA; text whose tone follows how things are going;
and churn driven by hidden experience. :func:`write_world` writes what Kafka
would carry and the answer key::

    out_dir/events.jsonl.gz   replay log (replay.log): topic cx.events, partition 0,
                              offsets 0.., timestamp = arrival time in ms
    out_dir/truth.json        ground truth, below

The same arguments give byte-identical files: everything random comes from
``random.Random(seed)``; nothing reads the clock.

>>> world = generate_world(customers=8, days=5, seed=1)
>>> truth = world.truth()
>>> len(truth["customers"]), truth["params"]["seed"]
(8, 1)
>>> messages = list(world.messages())
>>> len(messages) == truth["stats"]["messages"]
True
>>> [m.offset for m in messages[:3]], messages[0].topic
([0, 1, 2], 'cx.events')

The truth file is one JSON object:

``params``
    ``customers, days, seed, start, end`` (RFC 3339), ``topic``, ``partition``,
    ``phone_country_code`` (the default the identifiers were normalised with),
    ``noise`` (the rates used) and ``sharing`` (the family-tablet, store-kiosk
    and junk rates, :class:`replay.world.sharing.SharingRates`).
``stats``
    counts: ``messages, events`` (distinct valid events), ``duplicates,
    invalid, late, delayed`` (minutes late), ``customers, churned, cases,
    breached_cases``.
``touchpoints``
    touchpoint -> ``{"channel", "quality"}``: the hidden effect a touchpoint
    has on every experience through it (so on its NPS).
``sla_hours``
    priority -> hours the service desk has to resolve a case.
``customers``
    one object per true person: ``person_id``; ``identifiers`` (type -> the
    normalised values, as ``schemas.identifiers.normalise_identifier`` gives
    them, that this person's events carry and nobody else's); ``churned``,
    ``churn_time`` (RFC 3339 or null; the time of their ``cx.account.closed``,
    after which they have no events); ``churn_probability`` (``1 - prod(1 -
    daily hazard)`` over the horizon, see :mod:`replay.world.journey`; 0 for
    people who never opened an account, as they have none to close);
    ``experience`` (the latent quality, about -1..1); ``existing_customer``
    (registered before the horizon); ``household`` (id of the family whose
    tablet and home they share, ``c<n>`` for a couple sharing only a home, or
    null: living alone, :mod:`replay.world.homes`); ``kiosk`` (id of the store kiosk they sign
    in on with their own crm_id, or null); ``first_seen``; ``event_ids`` (the ids of all
    their valid events, in event-time order; duplicates share the id).
``households``
    ``{"household", "kind", "person_ids"}`` for each true household of two or
    more: ``kind`` ``family`` (a shared home and tablet) or ``couple`` (a home).
``shared_identifiers``
    ``{"type", "value", "kind", "person_ids"}`` for each value that two or
    more people used: ``kind`` is ``household_device`` (a family tablet, 2-4
    people), ``store_kiosk`` (a kiosk in one store, 10-40 people by default) or
    ``junk``. These must not link the people.
``cases``
    ``{"case_id", "person_id", "priority", "category", "opened", "due",
    "resolved", "sla_hours", "breached"}``; ``resolved`` is null when the
    stream never shows a resolution; ``breached`` means no resolution by
    ``due`` (a case due after the horizon is not breached).
``invalid_offsets`` / ``invalid_kinds``
    offsets of the injected invalid messages, and what is wrong with each.
``duplicate_offsets`` / ``duplicate_of``
    offsets of re-delivered copies, and the offset of the first delivery of each.
``late_offsets``
    offsets of (first deliveries of) events arriving hours after their event time.
``nps_drivers`` / ``nps_pockets``
    the planted drivers of NPS answers (points of the 0-10 answer) and the planted
    low cells (:mod:`replay.world.insights`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from replay.log import write_log
from replay.world.catalog import SLA_HOURS, TOUCHPOINTS
from replay.world.drafts import DAY_MS, EventIds, rfc3339
from replay.world.homes import HomeRates, add_addresses, plan_homes, true_households
from replay.world.identity import Registry, make_identity
from replay.world.insights import insights_truth
from replay.world.journey import (
    BASE_WEIGHTS,
    SESSION_CHANNELS,
    Journey,
    Latent,
    Outcome,
    WorldClock,
)
from replay.world.life import live
from replay.world.noise import Courier, NoiseRates
from replay.world.sharing import SharingPlan, SharingRates, plan_sharing
from replay.world.stream import Stream
from replay.world.truth import Ledger
from schemas.records import RawMessage

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)
TOPIC = "cx.events"
EVENTS_FILE = "events.jsonl.gz"
TRUTH_FILE = "truth.json"


@dataclass(frozen=True, slots=True)
class WorldParams:
    """The arguments a world was generated with."""

    customers: int
    days: int
    seed: int
    start: datetime


@dataclass(slots=True)
class World:
    """A generated world: its messages (in offset order) and its ground truth."""

    params: WorldParams
    rates: NoiseRates
    sharing: SharingRates
    stream: Stream
    ledger: Ledger

    def messages(self) -> Iterator[RawMessage]:
        """Yield the messages as Kafka would deliver them on ``cx.events`` partition 0."""
        for offset, (arrival, value) in enumerate(self.stream.messages()):
            yield RawMessage(value, None, TOPIC, 0, offset, arrival)

    def truth(self) -> dict[str, Any]:
        """Return the ground truth (the content of ``truth.json``)."""
        start_ms = _ms(self.params.start)
        ledger = self.ledger
        return {
            "params": {
                "customers": self.params.customers,
                "days": self.params.days,
                "seed": self.params.seed,
                "start": rfc3339(start_ms),
                "end": rfc3339(start_ms + self.params.days * DAY_MS),
                "topic": TOPIC,
                "partition": 0,
                "phone_country_code": "1",
                "noise": asdict(self.rates),
                "sharing": self.sharing.as_json(),
            },
            "stats": ledger.stats,
            "touchpoints": {
                name: {"channel": tp.channel, "quality": tp.quality}
                for name, tp in TOUCHPOINTS.items()
            },
            "sla_hours": SLA_HOURS,
            "customers": ledger.customers,
            "shared_identifiers": ledger.shared_identifiers(),
            "households": true_households(ledger.customers),
            "cases": ledger.cases,
            **ledger.noise,
            **insights_truth(),
        }


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def generate_world(  # noqa: PLR0913 (the world's size and seed; its rates are keyword-only)
    customers: int,
    days: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    *,
    start: datetime = DEFAULT_START,
    rates: NoiseRates | None = None,
    sharing: SharingRates | None = None,
) -> World:
    """Simulate the world; ``progress`` gets the number of customers done (about 100 calls).

    ``rates`` are the noise rates, ``sharing`` the family tablets, store kiosks and
    junk identifiers (:mod:`replay.world.sharing`); both have sensible defaults.
    """
    if customers < 1 or days < 1:
        msg = f"need at least 1 customer and 1 day, got customers={customers}, days={days}"
        raise ValueError(msg)
    if start.tzinfo is None:
        msg = "start must be timezone-aware, e.g. datetime(2026, 3, 2, tzinfo=UTC)"
        raise ValueError(msg)
    rates = rates or NoiseRates()
    sharing = sharing or SharingRates()
    master = random.Random(seed)
    registry = Registry()
    ids = EventIds(master.getrandbits(48))
    clock = WorldClock(_ms(start), days, ids, registry)
    courier = Courier(random.Random(master.getrandbits(64)), ids, rates)
    plan = plan_sharing(master, customers, registry, sharing)
    families = {i: group.group_id for i, group in plan.households.items()}
    homes = plan_homes(seed, customers, families, set(plan.kiosks), HomeRates())
    ledger = Ledger(plan.shared, clock.end_ms)
    stream = Stream()
    step = -(-customers // 100)  # at most 100 reports, and one at the end
    for i in range(customers):
        household, kiosk = plan.households.get(i), plan.kiosks.get(i)
        latent, outcome = _live(random.Random(master.getrandbits(64)), i, plan, clock)
        # a generator of its own: the homes change no other draw of the world
        add_addresses(outcome.drafts, homes[i], random.Random(f"address-{seed}-{i}"), HomeRates())
        ledger.record(
            f"p{i:06d}",
            latent,
            outcome,
            household.group_id if household else homes[i].household,
            kiosk.group_id if kiosk else None,
        )
        for draft in outcome.drafts:
            courier.deliver(draft, orjson.dumps(draft.cloud_event()), stream)
        if progress is not None and ((i + 1) % step == 0 or i + 1 == customers):
            progress(i + 1)
    ledger.index_noise(stream)
    return World(WorldParams(customers, days, seed, start), rates, sharing, stream, ledger)


def _live(
    rng: random.Random, i: int, plan: SharingPlan, clock: WorldClock
) -> tuple[Latent, Outcome]:
    """Make person ``i`` and simulate their journey."""
    household, kiosk = plan.households.get(i), plan.kiosks.get(i)
    planned = household is not None or kiosk is not None or i in plan.junk
    uses_app = household is not None or rng.random() < 0.6
    country = kiosk.country if kiosk else None  # they live near the kiosk's store
    who = make_identity(rng, clock.registry, clock.start_ms, clock.end_ms, uses_app, country)
    who.household, who.kiosk = household, kiosk
    who.junk = plan.junk.get(i, [])
    existing = planned or rng.random() < 0.65  # the planned first visit needs an account
    latent = Latent(
        experience=max(-1.0, min(1.0, rng.gauss(0.05, 0.4))),
        activity=rng.lognormvariate(math.log(0.2), 0.6),
        weights=_weights(rng, uses_app, who.handle is not None),
        existing=existing,
        first_day=0 if existing else rng.randrange(max(1, int(clock.days * 0.8))),
        uses_app=uses_app,
    )
    return latent, live(Journey(rng, who, latent, clock))


def _weights(rng: random.Random, uses_app: bool, on_social: bool) -> list[float]:
    weights = [w * rng.lognormvariate(0.0, 0.5) for w in BASE_WEIGHTS]
    if not uses_app:
        weights[SESSION_CHANNELS.index("app")] = 0.0
    if not on_social:
        weights[SESSION_CHANNELS.index("social")] = 0.0
    return weights


def write_world(world: World, out_dir: Path) -> tuple[Path, Path]:
    """Write ``events.jsonl.gz`` and ``truth.json`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events, truth = out_dir / EVENTS_FILE, out_dir / TRUTH_FILE
    write_log(events, world.messages())
    truth.write_bytes(world.ledger.render(world.truth()))
    return events, truth
