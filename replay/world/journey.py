"""One person's weeks: sessions across channels, service cases, surveys, and churn.

Every interaction passes through a touchpoint and is *felt*: its experience is
``x = experience + touchpoint quality + noise``. Felt experiences move three
hidden counters that decay day by day: ``bad`` and ``good`` (how it has been
going lately) and ``detractor`` (recent NPS answers of 0-6). Open and breached
service cases count too. At the end of each day the churn hazard is

    h = sigmoid(H0 - HE*experience + HB*bad + HD*detractor + HO*open + HX*breached - HG*good)

and the person closes their account the next day with probability ``h``. Before
that, a person at risk visibly looks for the exit (the close-account page, the
cancellations queue, a marketing opt-out) on a day with probability
``INTENT * h``, so churn can be predicted from behaviour, not only explained. The
person's ``churn_probability`` in the truth is ``1 - prod(1 - h)`` over the
horizon along their simulated path; the path goes on after a churn (as if they
had stayed) so the figure is defined for churners too, but nothing a churner
would have done after closing is emitted.

Things that happen later (a delivery that goes wrong, an SLA that runs out, a
survey answered the next day) are scheduled on a small heap and take effect on
the day they happen, so the hazard never sees the future.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replay.world.cases import Case
from replay.world.catalog import (
    AGENTS,
    HOUR_WEIGHTS,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    PRODUCTS,
    SOURCES,
    STORES,
    TOUCHPOINTS,
)
from replay.world.drafts import DAY_MS, HOUR_MS, MINUTE_MS, Draft, EventIds
from replay.world.identity import Identity, Registry, raw_email, raw_phone

# Hazard weights (see the module docstring); chosen so that about one person in
# six churns over 90 days and the hidden factors explain most of who does.
H0, HE, HB, HD, HO, HX, HG = -7.5, 3.0, 0.6, 0.6, 0.25, 0.9, 0.2
INTENT = 30.0  # daily chance of a visible step towards the exit, per unit of hazard
DECAY = 0.95  # per day: a bad experience is half forgotten after two weeks
FELT_NOISE = 0.35
SESSION_CHANNELS: tuple[str, ...] = (
    "web", "app", "email", "store", "call_center", "chat", "social",
)  # fmt: skip
BASE_WEIGHTS: tuple[float, ...] = (0.32, 0.22, 0.16, 0.12, 0.07, 0.07, 0.04)
_STORE_NAMES = {s.touchpoint: s.name for s in STORES}
_HOURS = tuple(range(24))
_CUM_HOURS = tuple(sum(HOUR_WEIGHTS[: h + 1]) for h in range(24))


@dataclass(frozen=True, slots=True)
class WorldClock:
    """The horizon every journey runs in, and the world-wide allocators."""

    start_ms: int
    days: int
    ids: EventIds
    registry: Registry

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS


@dataclass(slots=True)
class Latent:
    """What the generator knows about a person and the data only shows indirectly."""

    experience: float
    activity: float  # sessions per day
    weights: list[float]  # over SESSION_CHANNELS
    existing: bool  # a customer before the horizon (registered from day 0)
    first_day: int
    uses_app: bool


@dataclass(slots=True)
class Outcome:
    """A simulated journey, cut at the churn and the horizon."""

    drafts: list[Draft]
    churn_ms: int | None
    churn_probability: float
    cases: list[Case]


def poisson(rng: random.Random, lam: float) -> int:
    """Draw from a Poisson distribution (Knuth's method; ``lam`` is small here)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass(slots=True)
class Journey:
    """The state of one person while their journey is simulated."""

    rng: random.Random
    who: Identity
    latent: Latent
    clock: WorldClock
    drafts: list[Draft] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    bad: float = 0.0
    good: float = 0.0
    detractor: float = 0.0
    open_cases: int = 0
    breached_open: int = 0
    registered: bool = False
    consent: bool = False
    cookie: str | None = None
    sessions: int = 0
    orders: int = 0
    # What their words refer to: the last thing they bought, their usual store.
    product: tuple[str, str, float] = PRODUCTS[0]
    order_id: str | None = None
    store: str = STORES[0].touchpoint
    _pending: list[tuple[int, int, Callable[[], None]]] = field(default_factory=list)
    _seq: int = 0

    # -- building blocks used by the channel sessions -----------------------------------

    def add(
        self,
        t: int,
        etype: str,
        touchpoint: str,
        identifiers: dict[str, str],
        fields: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
        stage: str | None = None,
        tz: str = "Z",
        channel: str | None = None,
        source: str | None = None,
    ) -> Draft:
        """Record one event at ``t``; sources that write offsets keep whole seconds."""
        channel = channel or TOUCHPOINTS[touchpoint].channel
        default_source, prefix = SOURCES[channel]
        if tz != "Z":
            t -= t % 1000
        draft = Draft(
            t=t,
            event_id=self.clock.ids.next(prefix),
            type=etype,
            channel=channel,
            touchpoint=touchpoint,
            source=source or default_source,
            identifiers=identifiers,
            fields=fields or {},
            attributes=attributes or {},
            stage=stage,
            tz=tz,
        )
        self.drafts.append(draft)
        return draft

    def later(self, t: int, action: Callable[[], None]) -> None:
        """Run ``action`` on the day ``t`` falls in (after that day's sessions)."""
        self._seq += 1
        heapq.heappush(self._pending, (t, self._seq, action))

    def feel(self, t: int, touchpoint: str, shift: float = 0.0) -> float:
        """Return the experience of one interaction, moving the hidden counters."""
        x = (
            self.latent.experience
            + TOUCHPOINTS[touchpoint].quality
            + shift
            + self.rng.gauss(0.0, FELT_NOISE)
        )
        self.absorb(x)
        if x < -0.7 and self.consent and self.rng.random() < 0.06:
            self.set_consent(t + self.rng.randrange(1, 30) * MINUTE_MS, granted=False)
        elif x > 0.6 and self.registered and not self.consent and self.rng.random() < 0.02:
            self.set_consent(t + self.rng.randrange(1, 30) * MINUTE_MS, granted=True)
        return x

    def absorb(self, x: float) -> None:
        if x < -0.3:
            self.bad += -x
        elif x > 0.3:
            self.good += 0.5 * x

    def set_consent(self, t: int, granted: bool) -> None:
        self.consent = granted
        self.add(
            t,
            "cx.email.consent.updated",
            "email.newsletter",
            {"email": self.email()},
            fields={"consent": {"marketing_email": granted}},
            attributes={"via": self.rng.choice(("preference_centre", "unsubscribe_link"))},
        )

    def valence(self, x: float) -> str:
        v = x + self.rng.gauss(0.0, 0.2)
        return "negative" if v < -0.25 else "positive" if v > 0.3 else "neutral"

    def say(self, x: float, valence: str | None = None) -> str:
        """Return a sentence whose tone follows the experience ``x``."""
        bank = {"positive": POSITIVE, "neutral": NEUTRAL, "negative": NEGATIVE}[
            valence or self.valence(x)
        ]
        return self.fill(self.rng.choice(bank))

    def fill(self, template: str) -> str:
        rng = self.rng
        return template.format(
            product=self.product[1],
            store=_STORE_NAMES[self.store],
            order=self.order_id or self.order_number(),
            days=rng.randint(3, 21),
            minutes=rng.choice((25, 40, 55, 70, 90)),
            agent=rng.choice(AGENTS),
        )

    def order_number(self) -> str:
        return f"{self.rng.randrange(10**7, 10**8)}"

    def email(self) -> str:
        emails = self.who.emails
        pick = emails[0] if len(emails) == 1 or self.rng.random() < 0.7 else emails[1]
        return raw_email(self.rng, pick)

    def phone(self) -> str:
        junk = [v for t, v in self.who.junk if t == "phone"]
        if junk and self.rng.random() < 0.2:
            return junk[0]
        return raw_phone(self.rng, self.who.phone)

    def account_ids(self) -> dict[str, str]:
        """Return the ids a back-office system knows the person by."""
        ids = {"crm_id": self.who.crm_id}
        if self.registered:
            ids["email"] = self.email()
        return ids

    # -- used by the day loop (replay.world.life) ---------------------------------------

    def session_time(self, day_ms: int) -> int:
        hour = self.rng.choices(_HOURS, cum_weights=_CUM_HOURS)[0]
        return day_ms + hour * HOUR_MS + self.rng.randrange(HOUR_MS)

    def channel(self) -> str:
        if not self.registered:  # before sign-up: browsing and app installs only
            return "web" if not self.latent.uses_app or self.rng.random() < 0.7 else "app"
        return self.rng.choices(SESSION_CHANNELS, weights=self.latent.weights)[0]

    def settle(self, until: int) -> None:
        while self._pending and self._pending[0][0] < until:
            heapq.heappop(self._pending)[2]()

    def hazard(self) -> float:
        z = (
            H0
            - HE * self.latent.experience
            + HB * min(self.bad, 8.0)
            + HD * self.detractor
            + HO * self.open_cases
            + HX * self.breached_open
            - HG * min(self.good, 5.0)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def outcome(self, churn_ms: int | None, probability: float) -> Outcome:
        cut = self.clock.end_ms if churn_ms is None else churn_ms + 1
        kept = [d for d in self.drafts if d.t < cut]
        kept.sort(key=lambda d: d.t)
        for case in self.cases:
            if case.resolved_ms is not None and case.resolved_ms >= cut:
                case.resolved_ms = None
        cases = [c for c in self.cases if c.opened_ms < cut]
        return Outcome(kept, churn_ms, probability, cases)
