"""Household figures: what each member adds, the household's running totals, its view.

The household store keeps its own copy of the few figures of each member that the
household sums (issue #21), folded from the events as the lane-ordered household
step hands them over (:mod:`flows.steps.households`), never read from the stored
profiles: so a household's figures do not depend on how far the profile step has
got, and the household keys need no profile key (which may live in another slot of
a Redis Cluster).

Per member, a small hash: ``ltv`` (cents) and ``orders`` (sums), ``nps`` and
``churn`` (latest by event-time stamp, each with its ``<name>@`` stamp),
``case:<id>`` (``1`` open, ``0`` closed, latest by stamp) and ``open`` (how many are
open), ``last`` (latest event time, ms). Per household, running totals of its
members' figures: ``ltv``, ``orders``, ``nps_sum`` and ``nps_n`` (latest answers),
``det`` (detractors among them) and ``open``; recomputed from the members when
membership changes, moved by the difference when one member's figures change.
The Lua script (``state/lua/households.lua``) mirrors these functions.

>>> h: dict[str, str] = {}
>>> before = contribution(h)
>>> fold_figures(h, MemberFigures("5|e1", 5, amount_cents=250, order=True, nps=4))
>>> before, contribution(h)
((0, 0, None, 0), (250, 1, 4, 0))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.outputs import HouseholdSnapshot

#: a member's figures: ltv cents, orders, latest NPS, churn score, open cases, last ms
Figures = tuple[int, int, int | None, float | None, int, int]
#: what a member adds to the household's totals: ltv cents, orders, NPS, open cases
Contribution = tuple[int, int, int | None, int]
DETRACTOR_MAX = 6
TOTALS = ("ltv", "orders", "nps_sum", "nps_n", "det", "open")


@dataclass(slots=True)  # not frozen: one is made per event, and frozen init is slow
class MemberFigures:
    """What one event adds to its customer's household figures."""

    stamp: str  # the event's stamp (state.profile_hash.stamp): latest-wins order
    ms: int
    amount_cents: int = 0
    order: bool = False
    nps: int | None = None
    churn: str | None = None  # the score as the profile stores it (figure_text)
    case: tuple[str, str] | None = None  # (case id, "1" open / "0" closed)


def _latest(h: MutableMapping[str, str], name: str, st: str, value: str) -> bool:
    current = h.get(name + "@")
    if current is not None and current >= st:
        return False
    h[name + "@"] = st
    h[name] = value
    return True


def _add(h: MutableMapping[str, str], name: str, by: int) -> None:
    if by:
        h[name] = str(int(h.get(name, "0")) + by)


def fold_figures(h: MutableMapping[str, str], f: MemberFigures) -> None:
    """Fold one event's figures into a member's hash."""
    _add(h, "ltv", f.amount_cents)
    _add(h, "orders", 1 if f.order else 0)
    if f.nps is not None:
        _latest(h, "nps", f.stamp, str(f.nps))
    if f.churn is not None:
        _latest(h, "churn", f.stamp, f.churn)
    if f.case is not None:
        name = "case:" + f.case[0]
        was = h.get(name) == "1"
        if _latest(h, name, f.stamp, f.case[1]):
            _add(h, "open", (f.case[1] == "1") - was)
    if f.ms > int(h.get("last", "0")):
        h["last"] = str(f.ms)


def merge_figures(dst: MutableMapping[str, str], src: Mapping[str, str]) -> None:
    """Fold a merged-away member's hash into the survivor's (as profiles merge)."""
    _add(dst, "ltv", int(src.get("ltv", "0")))
    _add(dst, "orders", int(src.get("orders", "0")))
    for name in sorted(src):
        if name[-1] == "@":
            field = name[:-1]
            was = dst.get(field) == "1"
            if _latest(dst, field, src[name], src[field]) and field[:5] == "case:":
                _add(dst, "open", (src[field] == "1") - was)
    if int(src.get("last", "0")) > int(dst.get("last", "0")):
        dst["last"] = src["last"]


def contribution(h: Mapping[str, str]) -> Contribution:
    """Return what a member's hash adds to its household's totals."""
    nps = h.get("nps")
    return (
        int(h.get("ltv", "0")),
        int(h.get("orders", "0")),
        int(nps) if nps is not None else None,
        int(h.get("open", "0")),
    )


def add_to_totals(totals: MutableMapping[str, str], c: Contribution, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) one member's contribution."""
    ltv, orders, nps, open_cases = c
    _add(totals, "ltv", sign * ltv)
    _add(totals, "orders", sign * orders)
    if nps is not None:
        _add(totals, "nps_sum", sign * nps)
        _add(totals, "nps_n", sign)
        _add(totals, "det", sign * (nps <= DETRACTOR_MAX))
    _add(totals, "open", sign * open_cases)


def totals_of(members: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Return the totals of a household, from its members' hashes."""
    totals: dict[str, str] = {}
    for h in members:
        add_to_totals(totals, contribution(h), 1)
    return totals


def figures_of(h: Mapping[str, str]) -> Figures:
    """Return a member's figures for the published snapshot."""
    nps, churn = h.get("nps"), h.get("churn")
    return (
        int(h.get("ltv", "0")),
        int(h.get("orders", "0")),
        int(nps) if nps is not None else None,
        float(churn) if churn is not None else None,
        int(h.get("open", "0")),
        int(h.get("last", "0")),
    )


@dataclass(slots=True)  # one per event (treat as a value: never changed)
class HouseholdView:
    """A customer's household as one event leaves it: what decisions and profiles read.

    ``household_id`` empty: the customer is in no household (:data:`NO_HOUSEHOLD`).
    """

    household_id: str
    members: int = 0
    ltv_cents: int = 0
    orders: int = 0
    nps_sum: int = 0
    nps_n: int = 0
    detractors: int = 0
    open_cases: int = 0

    @classmethod
    def of(cls, household_id: str, members: int, totals: Mapping[str, str]) -> HouseholdView:
        """Return the view of a household from its member count and totals."""
        n = [int(totals.get(k, "0")) for k in TOTALS]
        return cls(household_id, members, *n)

    def text(self) -> str:
        """How the stores record it for a re-processed event (:meth:`parse`)."""
        if not self.household_id:
            return ""
        figures = (self.members, self.ltv_cents, self.orders, self.nps_sum, self.nps_n)
        return " ".join(map(str, (self.household_id, *figures, self.detractors, self.open_cases)))

    @classmethod
    def parse(cls, text: str) -> HouseholdView:
        """Read what :meth:`text` wrote (``""``: :data:`NO_HOUSEHOLD`).

        >>> v = HouseholdView("hh-1", 2, 750, 1, 13, 2, 1, 0)
        >>> HouseholdView.parse(v.text()) == v, HouseholdView.parse("") == NO_HOUSEHOLD
        (True, True)
        """
        if not text:
            return NO_HOUSEHOLD
        hid, *n = text.split(" ")
        return cls(hid, *(int(x) for x in n))

    @property
    def mean_nps(self) -> float | None:
        """The members' mean latest NPS (None: no answer)."""
        return round(self.nps_sum / self.nps_n, 4) if self.nps_n else None

    def excerpt(self) -> dict[str, Any] | None:
        """Return the few fields a profile shows (as :meth:`HouseholdSnapshot.excerpt`)."""
        if not self.household_id:
            return None
        return {
            "members": self.members,
            "lifetime_value": self.ltv_cents / 100,
            "orders": self.orders,
            "mean_nps": self.mean_nps,
            "open_cases": self.open_cases,
        }


NO_HOUSEHOLD = HouseholdView("")
#: The profile's latest-wins fields of its household (state.profile_hash ``latest``).
HOUSEHOLD_ID_FIELD, HOUSEHOLD_EXCERPT_FIELD = "hh", "hh_x"


def household_fields(view: HouseholdView) -> dict[str, str]:
    """Return the profile fields of the customer's household as one event leaves it."""
    excerpt = view.excerpt()
    text = orjson.dumps(excerpt).decode() if excerpt is not None else ""
    return {HOUSEHOLD_ID_FIELD: view.household_id, HOUSEHOLD_EXCERPT_FIELD: text}


def profile_household(h: Mapping[str, str]) -> tuple[str | None, dict[str, Any] | None]:
    """Return a stored profile's household id and excerpt (None: none, or households off).

    >>> profile_household(household_fields(HouseholdView("hh-1", 2, 150)))
    ('hh-1', {'members': 2, 'lifetime_value': 1.5, 'orders': 0, 'mean_nps': None, 'open_cases': 0})
    """
    hid = h.get(HOUSEHOLD_ID_FIELD)
    if not hid:
        return None, None
    excerpt: dict[str, Any] = orjson.loads(h[HOUSEHOLD_EXCERPT_FIELD])
    return hid, excerpt


def build_snapshot(
    hid: str, types: Iterable[str], members: Mapping[str, Figures]
) -> HouseholdSnapshot:
    """Return the published view of one household (both stores build it here)."""
    ids = sorted(members)
    nps = {c: n for c in ids if (n := members[c][2]) is not None}
    answers = list(nps.values())
    churns = [f[3] for f in members.values() if f[3] is not None]
    last = max((f[5] for f in members.values()), default=0)
    return HouseholdSnapshot(
        household_id=hid,
        members=ids,
        member_count=len(ids),
        evidence_types=sorted(set(types)),
        lifetime_value=sum(f[0] for f in members.values()) / 100,
        orders=sum(f[1] for f in members.values()),
        last_nps=nps,
        mean_nps=round(sum(answers) / len(answers), 4) if answers else None,
        detractors=sum(1 for n in answers if n <= DETRACTOR_MAX),
        max_churn=max(churns) if churns else None,
        open_cases=sum(f[4] for f in members.values()),
        last_seen=datetime.fromtimestamp(last / 1000, tz=UTC),
    )
