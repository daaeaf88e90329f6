"""Where people live: postal addresses, shared by families, typed many ways.

Decided after the sharing plan (:mod:`replay.world.sharing`), from a generator of
its own seeded by the world's seed, so worlds made before homes existed keep every
other event as it was. Every family that shares a tablet also shares a home; a
share of the other people live in pairs (``couple_people``: a household with no
shared device, found only by its address); everyone else lives alone. Kiosk users
live apart, near their store: the kiosk is the trap that must join nobody.

Orders carry the home's address (``order_address`` of them), spelt as a person
types it: case, abbreviations (Street / St.), the unit before or after the street,
extra spaces. The ground truth names each person's household (``household``: the
family tablet's group id, or ``c<n>`` for a couple) and lists the addresses people
share in ``shared_identifiers`` (kind ``household_address``).

>>> home = Home("c00001", 12, "High", "Street", 3)
>>> [spell(home, random.Random(seed)) for seed in (1, 4)]
['Flat 3, 12 High St', 'Unit 3, 12 High St']
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from replay.world.drafts import Draft

_STREETS = (
    "High", "Church", "Mill", "Station", "Park", "Oak", "Elm", "Maple", "Cedar", "Lake",
    "Hill", "Queen's", "King", "Victoria", "Green", "Bridge", "Market", "North", "West", "River",
)  # fmt: skip
_SUFFIXES = {
    "Street": ("Street", "St", "St.", "STREET", "street"),
    "Road": ("Road", "Rd", "Rd.", "ROAD", "road"),
    "Avenue": ("Avenue", "Ave", "Ave.", "Av", "avenue"),
    "Lane": ("Lane", "Ln", "LANE"),
    "Drive": ("Drive", "Dr", "Dr."),
}
_UNITS = ("Flat {}", "Apt {}", "Apt. {}", "Unit {}", "#{}", "Apartment {}")


@dataclass(frozen=True, slots=True)
class HomeRates:
    """Who lives together: ``couple_people`` of the others live in pairs."""

    couple_people: float = 0.06
    order_address: float = 0.9  # of orders carry the home address
    unit_share: float = 0.3  # of homes are flats with a unit number


@dataclass(frozen=True, slots=True)
class Home:
    """One postal address; ``household`` is its truth group (None: a person alone)."""

    household: str | None
    number: int
    street: str
    suffix: str
    unit: int | None = None


def spell(home: Home, rng: random.Random) -> str:
    """Return the address as one person types it once."""
    suffix = rng.choice(_SUFFIXES[home.suffix])
    street = f"{home.number} {home.street} {suffix}"
    if rng.random() < 0.2:
        street = street.upper() if rng.random() < 0.5 else street.lower()
    if rng.random() < 0.2:
        street = street.replace(" ", "  ", 1) + " "
    if home.unit is None:
        return street
    unit = rng.choice(_UNITS).format(home.unit)
    return f"{unit}, {street}" if rng.random() < 0.4 else f"{street}, {unit}"


def plan_homes(
    seed: int, customers: int, families: dict[int, str], kiosk_users: set[int], rates: HomeRates
) -> dict[int, Home]:
    """Person index -> home: families share one, couples one, everyone else their own."""
    rng = random.Random(f"homes-{seed}")  # noqa: S311 (a simulation)
    used: set[tuple[int, str, str, int | None]] = set()

    def new_home(household: str | None) -> Home:
        while True:
            unit = rng.randint(1, 30) if rng.random() < rates.unit_share else None
            home = Home(
                household,
                rng.randint(1, 400),
                rng.choice(_STREETS),
                rng.choice(list(_SUFFIXES)),
                unit,
            )
            key = (home.number, home.street, home.suffix, home.unit)
            if key not in used:
                used.add(key)
                return home

    homes: dict[int, Home] = {}
    for group in sorted(set(families.values())):
        home = new_home(group)
        for i in sorted(i for i, g in families.items() if g == group):
            homes[i] = home
    others = [i for i in range(customers) if i not in families and i not in kiosk_users]
    paired = rng.sample(others, min(len(others), round(customers * rates.couple_people)) // 2 * 2)
    for n in range(0, len(paired), 2):
        home = new_home(f"c{n // 2:05d}")
        homes[paired[n]] = homes[paired[n + 1]] = home
    for i in range(customers):
        if i not in homes:
            homes[i] = new_home(None)
    return homes


def add_addresses(drafts: list[Draft], home: Home, rng: random.Random, rates: HomeRates) -> None:
    """Put the home's address on the person's orders (most of them)."""
    for draft in drafts:
        if draft.type.endswith(".order.placed") and rng.random() < rates.order_address:
            draft.identifiers["address"] = spell(home, rng)


def true_households(customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the truth file's ``households``: each group of two or more living together."""
    groups: dict[str, list[str]] = {}
    for person in customers:
        if person["household"] is not None:
            groups.setdefault(person["household"], []).append(person["person_id"])
    return [
        {"household": h, "kind": "couple" if h[0] == "c" else "family", "person_ids": people}
        for h, people in sorted(groups.items())
        if len(people) >= 2
    ]
