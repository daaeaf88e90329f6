"""Identity policy: which identifiers link customers, and how far.

Kept apart from :mod:`state.store` (which re-exports every name here) so the
rules read in one place; both stores receive one :class:`IdentityPolicy`.

>>> policy = IdentityPolicy()
>>> policy.shared_limit("device_id"), policy.shared_limit("crm_id")
(3, None)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from schemas.identifiers import KNOWN_IDENTIFIER_TYPES

DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "crm_id": 1,
        "loyalty_id": 1,
        "email": 5,
        "phone": 5,
        "social_handle": 5,
        "device_id": 20,
        "cookie_id": 50,
    }
)

# Placeholders that forms, POS tills and test scripts type when the real value is
# unknown. Linking on them would merge everyone who ever typed "n/a".
DEFAULT_BLOCKED_VALUES = frozenset(
    {
        "",
        "-",
        "0",
        "na",
        "n/a",
        "nan",
        "nil",
        "none",
        "null",
        "undefined",
        "unknown",
        "anonymous",
        "test",
        "test@test.com",
        "test@example.com",
        "email@example.com",
        "noemail@example.com",
        "+10000000000",
        "0000000000",
        "+11111111111",
        "+15555555555",
        "+11234567890",
    }
)

# Off by default: on the synthetic world (cxstream generate), treating devices and
# cookies as weak cut pairwise recall from 0.64 to 0.60 for +0.007 precision, since
# most device links join fragments of one person. Households may want ("device_id",).
DEFAULT_WEAK_TYPES: tuple[str, ...] = ()

# A device or cookie value presented by more than this many distinct customers
# that could not be merged (a kiosk, a family tablet, a shop's till) is *shared*:
# it is detached from its holder and never resolves an event again. Types not
# listed never become shared (they keep resolving to their one holder).
DEFAULT_SHARED_AFTER: Mapping[str, int] = MappingProxyType({"device_id": 3, "cookie_id": 3})

DEFAULT_BLOCKED_PATTERNS: tuple[str, ...] = (
    r"^\+?0+$",  # all zeros, with or without the E.164 plus
    r"^\+?(\d)\1{6,}$",  # one digit repeated: 1111111, +99999999999
    r"^(test|noreply|no-reply|donotreply|do-not-reply|nobody|null|none|noemail|no-email)@",
)


@dataclass(frozen=True)
class IdentityPolicy:
    """Which identifiers may link customers, and how many of each a customer may hold.

    Parameters
    ----------
    priority
        Identifier types, strongest first. A merge keeps the customer holding the
        strongest type; types not listed rank after all listed ones, by name.
    limits
        Most values of a type one customer may hold; ``default_limit`` otherwise.
        A merge that would exceed one is refused (a :class:`Conflict`), so two
        customers with different crm_ids never become one.
    blocked_values, blocked_patterns
        Placeholder values never linked, compared case-insensitively.
    weak_types
        Identifiers a household shares (a family tablet, a shared browser): they
        stitch anonymous activity to a customer, but a link made only of weak
        identifiers never merges two customers that both hold a stronger type.
    shared_after
        Per identifier type, how many distinct customers may present one value
        before it counts as shared (see :mod:`state.store`, "Shared
        identifiers"); types not listed never become shared.
    """

    priority: tuple[str, ...] = KNOWN_IDENTIFIER_TYPES
    limits: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS)
    default_limit: int = 20
    blocked_values: frozenset[str] = DEFAULT_BLOCKED_VALUES
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED_PATTERNS
    weak_types: tuple[str, ...] = DEFAULT_WEAK_TYPES
    shared_after: Mapping[str, int] = field(default_factory=lambda: DEFAULT_SHARED_AFTER)

    def is_weak(self, id_type: str) -> bool:
        """Whether ``id_type`` may attach to a customer but never merge two known ones."""
        return id_type in self.weak_types

    def __post_init__(self) -> None:
        """Refuse a type listed twice, a limit below 1 and a bad blocked pattern."""
        if len(set(self.priority)) != len(self.priority):
            msg = f"priority lists a type twice: {self.priority}"
            raise ValueError(msg)
        # A limit of 0 would let a request create a customer with no identifier.
        bad = {t: n for t, n in self.limits.items() if n < 1}
        bad |= {t: n for t, n in self.shared_after.items() if n < 1}
        if bad or self.default_limit < 1:
            msg = f"identifier limits must be at least 1, got {bad or self.default_limit}"
            raise ValueError(msg)
        _ = self._blocked_re  # fail at construction on a bad pattern

    @cached_property
    def _ranks(self) -> dict[str, int]:
        return {id_type: rank for rank, id_type in enumerate(self.priority)}

    @cached_property
    def _blocked_lower(self) -> frozenset[str]:
        return frozenset(value.strip().lower() for value in self.blocked_values)

    @cached_property
    def _blocked_re(self) -> re.Pattern[str] | None:
        if not self.blocked_patterns:
            return None
        joined = "|".join(f"(?:{pattern})" for pattern in self.blocked_patterns)
        return re.compile(joined, re.IGNORECASE)

    def is_blocked(self, id_type: str, value: str) -> bool:
        """Whether ``value`` is a placeholder that must never link anyone.

        >>> policy = IdentityPolicy()
        >>> policy.is_blocked("crm_id", " N/A "), policy.is_blocked("crm_id", "C-1")
        (True, False)
        """
        folded = value.strip().lower()
        if folded in self._blocked_lower:
            return True
        pattern = self._blocked_re
        return pattern is not None and pattern.search(folded) is not None

    def shared_limit(self, id_type: str) -> int | None:
        """How many customers may present one value of ``id_type`` (None: no limit)."""
        return self.shared_after.get(id_type)

    def limit(self, id_type: str) -> int:
        """Most values of ``id_type`` one customer may hold."""
        return self.limits.get(id_type, self.default_limit)

    def type_key(self, id_type: str) -> tuple[int, str]:
        """Sort key, strongest type first: listed types by priority, then others by name."""
        return self._ranks.get(id_type, len(self.priority)), id_type
