"""Household rules shared by both household stores: evidence, limits, ids, addresses.

A *household* links customers without merging them (issue #21). Two customers who
presented the same piece of household *evidence* belong to one household; evidence
is an identifier of a configured type (by default the postal ``address``, which
identity resolution never sees, and ``device_id``: a family tablet the identity
guards keep from merging its users). A value presented by more distinct customers
than its type's member limit (a store kiosk, not a home) links nobody, and blocked
placeholder values never link: the same vocabulary as the identity guards
(:class:`state.policy.IdentityPolicy`).

Households are the connected components of customers and the evidence within its
limit, of at least ``min_members`` customers. A household's id is derived from its
smallest piece of evidence (stored form), never from arrival order, so every
process, batch size and replay names it alike.

>>> normalise_address("12 High Street, Flat 3")
'12 high st unit 3'
>>> normalise_address("FLAT 3   12 HIGH ST.") == normalise_address("12 high st apt #3")
True
>>> household_id(["device_id:tab-1", "address:1 main st"])
'hh-0c09597a93a1542d234d981c'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from hashlib import sha1
from types import MappingProxyType

from schemas.identifiers import HOUSEHOLD_ONLY_TYPES
from state.hashing import Hasher
from state.policy import DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES, IdentityPolicy

_HOUSEHOLD_ONLY = frozenset(HOUSEHOLD_ONLY_TYPES)
DEFAULT_EVIDENCE: tuple[str, ...] = ("address", "device_id")
DEFAULT_MEMBER_LIMITS: Mapping[str, int] = MappingProxyType(
    {"address": 8, "device_id": 5, "payment_token": 4}
)
#: Customers kept per evidence value past its limit: beyond, it stays over for good
#: (a kiosk's thousands of users are not all remembered).
OVER_LIMIT_KEPT = 4

_PUNCT = re.compile(r"[^\w#]+")
_HASH_NUMBER = re.compile(r"#\s*(\w+)")
_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "street": "st",
        "str": "st",
        "road": "rd",
        "avenue": "ave",
        "av": "ave",
        "boulevard": "blvd",
        "drive": "dr",
        "lane": "ln",
        "court": "ct",
        "place": "pl",
        "square": "sq",
        "terrace": "ter",
        "highway": "hwy",
        "parkway": "pkwy",
        "crescent": "cres",
        "close": "cl",
        "north": "n",
        "south": "s",
        "east": "e",
        "west": "w",
        "first": "1st",
        "second": "2nd",
        "third": "3rd",
    }
)
_UNIT_WORDS = frozenset({"apt", "apartment", "unit", "flat", "suite", "ste", "#"})


def normalise_address(raw: str) -> str:
    """Fold a postal address: case, punctuation, spaces, abbreviations, the unit last.

    ``Flat 3``, ``Apt 3``, ``Unit 3``, ``Suite 3`` and ``#3`` all become ``unit 3``,
    moved to the end, so "Flat 3, 12 High Street" and "12 high st #3" agree.

    >>> normalise_address("  221B  Baker   Street ")
    '221b baker st'
    >>> normalise_address("500 W. 5th Avenue, Suite 200")
    '500 w 5th ave unit 200'
    """
    text = _HASH_NUMBER.sub(r" # \1 ", raw.lower().replace("'", "").replace("\u2019", ""))
    tokens = [t for t in _PUNCT.sub(" ", text).split() if t]
    units: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _UNIT_WORDS:
            while i + 1 < len(tokens) and tokens[i + 1] in _UNIT_WORDS:
                i += 1  # "apt #3", "flat # 3"
            if i + 1 < len(tokens):
                units.append(tokens[i + 1])
                i += 2
                continue
        kept.append(_ABBREVIATIONS.get(token, token))
        i += 1
    return " ".join(kept + [w for u in units for w in ("unit", u)])


def household_id(evidence: Iterable[str]) -> str:
    """Return the id of the household whose smallest linking evidence (stored form) is given.

    SHA-1 because Redis's Lua has it (``redis.sha1hex``): both stores name households
    alike. It only has to spread ids; the evidence is already hashed when hashing is on.
    """
    return "hh-" + sha1(min(evidence).encode(), usedforsecurity=False).hexdigest()[:24]


@dataclass(frozen=True)
class HouseholdPolicy:
    """Which identifiers are household evidence, and how far each may link.

    Parameters
    ----------
    evidence
        Identifier types that link customers into households.
    limits
        Most distinct customers one value of a type may link (``default_limit``
        otherwise): a value presented by more links none of them.
    blocked_values, blocked_patterns
        Placeholders never linked (compared case-insensitively), as for identity.
    min_members
        A component of fewer customers is no household (a person living alone).
    """

    evidence: tuple[str, ...] = DEFAULT_EVIDENCE
    limits: Mapping[str, int] = field(default_factory=lambda: DEFAULT_MEMBER_LIMITS)
    default_limit: int = 5
    blocked_values: frozenset[str] = DEFAULT_BLOCKED_VALUES
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED_PATTERNS
    min_members: int = 2

    def __post_init__(self) -> None:
        """Refuse a limit below 1 or a household of fewer than 2 (check the patterns)."""
        bad = {t: n for t, n in self.limits.items() if n < 1}
        if bad or self.default_limit < 1 or self.min_members < 2:  # noqa: PLR2004
            msg = f"household limits must be at least 1 and min_members 2, got {bad or self}"
            raise ValueError(msg)
        _ = self._guard

    @cached_property
    def _guard(self) -> IdentityPolicy:
        return IdentityPolicy(
            blocked_values=self.blocked_values, blocked_patterns=self.blocked_patterns
        )

    def limit(self, id_type: str) -> int:
        """Most distinct customers one value of ``id_type`` links."""
        return self.limits.get(id_type, self.default_limit)

    def evidence_of(self, identifiers: Mapping[str, str], hasher: Hasher) -> list[str]:
        """Return the event's household evidence, ``"type:value"`` in stored form, sorted.

        >>> from state.hashing import PlainIdentifiers
        >>> ids = {"address": "1 Main Street", "device_id": "n/a", "email": "a@b.co"}
        >>> HouseholdPolicy().evidence_of(ids, PlainIdentifiers())
        ['address:1 main st']
        """
        out = []
        for id_type in self.evidence:
            value = identifiers.get(id_type)
            if value is None:
                continue
            if id_type == "address":
                value = normalise_address(value)
            if not value or self._guard.is_blocked(id_type, value):
                continue
            out.append(f"{id_type}:{hasher.hash(id_type, value)}")
        return sorted(out)

    def limits_json(self) -> dict[str, int]:
        """Every evidence type's limit (what the Lua script is given)."""
        return {t: self.limit(t) for t in self.evidence}


def identity_identifiers(identifiers: dict[str, str]) -> dict[str, str]:
    """Return the identifiers identity resolution uses: household-only types left out.

    >>> identity_identifiers({"email": "a@b.co", "address": "1 Main St"})
    {'email': 'a@b.co'}
    """
    if identifiers.keys().isdisjoint(_HOUSEHOLD_ONLY):  # most events: no copy
        return identifiers
    return {t: v for t, v in identifiers.items() if t not in HOUSEHOLD_ONLY_TYPES}
