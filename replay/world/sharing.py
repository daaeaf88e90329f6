"""Identifier values that are not one person's: family tablets, store kiosks, junk.

Decided before anyone is simulated (:func:`plan_sharing`), from the world's
seeded generator, so the same seed gives the same groups:

* **Family tablets**: a household of 2-4 people shares one tablet; each member
  has their own email and crm_id and picks the tablet up for some app sessions
  (``tablet_use``), logging in with their own email or ordering with their own
  crm_id; screen views on it carry only the tablet's device id.
* **Store kiosks**: a self-service kiosk (an Android device id) in one store,
  used by many people (``kiosk_sizes``, 10-40 by default) who live near that
  store; each signs in with their own crm_id and orders there, on some of
  their store visits (``kiosk_use``) and on their first day.
* **Junk**: placeholder emails and phone numbers a till or a phone system
  types when it has nothing better (:data:`replay.world.identity.JUNK_IDENTIFIERS`).

No resolver should link two people through any of them. The ground truth lists
every such value that two or more people really used (``shared_identifiers``,
kinds ``household_device``, ``store_kiosk`` and ``junk``) and, per person,
their ``household`` and ``kiosk`` group ids (see :mod:`replay.synthetic`).

>>> import random
>>> plan = plan_sharing(random.Random(4), 1000, Registry(), SharingRates())
>>> sizes = {}
>>> for group in plan.kiosks.values():
...     sizes[group.group_id] = sizes.get(group.group_id, 0) + 1
>>> sum(sizes.values()), all(2 <= n <= 40 for n in sizes.values())
(30, True)
>>> len({g.group_id for g in plan.households.values()}) > 10
True
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from replay.world.catalog import STORES
from replay.world.identity import JUNK_IDENTIFIERS, Registry, SharedDevice, new_device
from replay.world.truth import SharedValue
from schemas.identifiers import normalise_identifier


@dataclass(frozen=True, slots=True)
class SharingRates:
    """How many people share devices, and how often they use them.

    ``family_people`` and ``kiosk_people`` are shares of all people; group sizes
    are drawn from ``family_sizes`` (with ``family_size_weights``) and uniformly
    from ``kiosk_sizes`` (inclusive); the last group takes what is left and is
    dropped if that is a single person. A share above 0 gives at least one
    group of 2, even in a small world. ``junk_share`` is the share of people
    who get each junk value typed once.
    """

    family_people: float = 0.05
    family_sizes: tuple[int, ...] = (2, 3, 4)
    family_size_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    tablet_use: float = 0.3  # of a family member's app sessions
    kiosk_people: float = 0.03
    kiosk_sizes: tuple[int, int] = (10, 40)
    kiosk_use: float = 0.5  # of a kiosk user's store visits
    junk_share: float = 0.004

    def as_json(self) -> dict[str, Any]:
        """Return the rates as the truth file holds them (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __post_init__(self) -> None:
        """Refuse rates outside [0, 1], groups under 2 people and mismatched size weights."""
        shares = (self.family_people, self.tablet_use, self.kiosk_people, self.kiosk_use)
        if not all(0.0 <= s <= 1.0 for s in (*shares, self.junk_share)):
            msg = f"sharing rates must be between 0 and 1: {self}"
            raise ValueError(msg)
        low, high = self.kiosk_sizes
        if min(self.family_sizes) < 2 or low < 2 or high < low:
            msg = f"a shared device needs groups of at least 2 people: {self}"
            raise ValueError(msg)
        if len(self.family_size_weights) != len(self.family_sizes):
            msg = "family_size_weights needs one weight per family size"
            raise ValueError(msg)


@dataclass(slots=True)
class SharingPlan:
    """Person index -> the family tablet / kiosk they use, junk typed for them."""

    households: dict[int, SharedDevice] = field(default_factory=dict)
    kiosks: dict[int, SharedDevice] = field(default_factory=dict)
    junk: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # i -> [(type, raw)]
    shared: dict[tuple[str, str], SharedValue] = field(default_factory=dict)


def _split(people: list[int], sizes: list[int]) -> list[list[int]]:
    """``people`` cut into groups of ``sizes``; a trailing group of one is dropped."""
    groups, rest = [], people
    for size in sizes:
        group, rest = rest[:size], rest[size:]
        if len(group) >= 2:
            groups.append(group)
        if not rest:
            break
    return groups


def _sizes(total: int, draw: list[int]) -> list[int]:
    out, left = [], total
    for size in draw:
        if left <= 0:
            break
        out.append(min(size, left))
        left -= size
    return out


def _people(customers: int, share: float) -> int:
    """How many people share: ``share`` of them, at least one group of 2 unless 0."""
    return 0 if share <= 0 else max(2, round(customers * share))


def plan_sharing(
    rng: random.Random, customers: int, registry: Registry, rates: SharingRates
) -> SharingPlan:
    """Who shares a family tablet, who uses which store kiosk, who gets junk typed."""
    plan = SharingPlan()
    if customers < 6:  # too few people to share anything believably
        return plan
    family = _people(customers, rates.family_people)
    draws = rng.choices(rates.family_sizes, rates.family_size_weights, k=max(1, family // 2))
    members = rng.sample(range(customers), family)
    for n, group in enumerate(_split(members, _sizes(family, draws))):
        device, _platform = new_device(rng, registry)
        plan.shared[("device_id", device)] = SharedValue("device_id", device, "household_device")
        for i in group:
            plan.households[i] = SharedDevice(f"h{n:05d}", device, rates.tablet_use)
    kiosk = _people(customers, rates.kiosk_people)
    low, high = rates.kiosk_sizes
    draws = [rng.randint(low, high) for _ in range(max(1, kiosk // low))]
    members = rng.sample(range(customers), kiosk)
    for n, group in enumerate(_split(members, _sizes(kiosk, draws))):
        device = registry.unique("device_id", rng, lambda r: f"{r.getrandbits(64):016x}")
        store = rng.choice(STORES)
        plan.shared[("device_id", device)] = SharedValue("device_id", device, "store_kiosk")
        for i in group:
            plan.kiosks[i] = SharedDevice(
                f"k{n:04d}", device, rates.kiosk_use, store.touchpoint, store.country
            )
    for id_type, raw in JUNK_IDENTIFIERS:
        norm = normalise_identifier(id_type, raw)
        plan.shared[(id_type, norm)] = SharedValue(id_type, norm, "junk")
        for i in rng.sample(range(customers), max(2, round(customers * rates.junk_share))):
            plan.junk.setdefault(i, []).append((id_type, raw))
    return plan
