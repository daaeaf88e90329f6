"""The day loop: one person's whole horizon, day by day (sessions, service, churn).

:class:`~replay.world.journey.Journey` is the person's state and the verbs the
sessions (:mod:`replay.world.sessions`) and the service desk
(:mod:`replay.world.service`) use on it; :func:`live` runs the days over them,
so neither of those imports the loop.
"""

from __future__ import annotations

import math

from replay.world import service, sessions
from replay.world.catalog import STORES
from replay.world.drafts import DAY_MS, HOUR_MS
from replay.world.journey import DECAY, INTENT, Journey, Outcome, poisson


def live(j: Journey) -> Outcome:
    """Simulate the whole horizon; return what was emitted before the churn."""
    rng, latent, clock = j.rng, j.latent, j.clock
    j.registered = latent.existing
    j.consent = latent.existing and rng.random() < 0.55
    j.store = rng.choice([s.touchpoint for s in STORES if s.country == j.who.country])
    if j.who.kiosk is not None and j.who.kiosk.touchpoint is not None:
        j.store = j.who.kiosk.touchpoint  # they live near the kiosk's store
    survive, churn_ms = 1.0, None
    weekday0 = (clock.start_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    for day in range(latent.first_day, clock.days):
        day_ms = clock.start_ms + day * DAY_MS
        if day == latent.first_day:
            # Early enough in the day that nothing (a churn included) can precede it.
            sessions.first_visit(j, day_ms + rng.randrange(6 * HOUR_MS, 14 * HOUR_MS))
        weekend = (weekday0 + day) % 7 >= 5
        rate = latent.activity * (1.25 if weekend else 1.0) * math.exp(-0.2 * j.bad)
        for t in sorted(j.session_time(day_ms) for _ in range(poisson(rng, rate))):
            sessions.SESSIONS[j.channel()](j, t)
            j.sessions += 1
        j.settle(day_ms + DAY_MS)
        if j.registered and day + 1 < clock.days:
            h = j.hazard()
            if rng.random() < min(0.3, INTENT * h):  # shows tomorrow, unless they are gone
                service.thinking_of_leaving(j, j.session_time(day_ms + DAY_MS))
            survive *= 1.0 - h
            if churn_ms is None and rng.random() < h:
                churn_ms = day_ms + DAY_MS + rng.randrange(7 * HOUR_MS, 21 * HOUR_MS)
                churn_ms -= churn_ms % 1000  # as stamped by systems that keep seconds
                service.close_account(j, churn_ms)
        j.bad *= DECAY
        j.good *= DECAY
        j.detractor *= DECAY
    return j.outcome(churn_ms, 1.0 - survive)
