"""Household settings (``CX_HOUSEHOLDS__*``): which evidence links customers, how far.

The names follow the identity guards' (``CX_IDENTITY__LIMITS``, ``..._BLOCKED_VALUES``,
``..._BLOCKED_PATTERNS``); the rules are :mod:`state.household_rules`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from state.household_rules import DEFAULT_EVIDENCE, DEFAULT_MEMBER_LIMITS, HouseholdPolicy
from state.policy import DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES


class HouseholdSettings(BaseModel):
    """Households: customers linked by shared evidence, never merged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # identifier types that link customers into households (e.g. add "payment_token")
    evidence: tuple[str, ...] = DEFAULT_EVIDENCE
    # most distinct customers one value of a type links (a kiosk's device links nobody)
    limits: dict[str, PositiveInt] = Field(default_factory=lambda: dict(DEFAULT_MEMBER_LIMITS))
    default_limit: int = Field(default=5, ge=1)
    blocked_values: tuple[str, ...] = tuple(sorted(DEFAULT_BLOCKED_VALUES))
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED_PATTERNS
    # fewer customers linked are no household (someone living alone)
    min_members: int = Field(default=2, ge=2)

    def policy(self) -> HouseholdPolicy:
        """Return the rules both household stores follow."""
        return HouseholdPolicy(
            evidence=self.evidence,
            limits=dict(self.limits),
            default_limit=self.default_limit,
            blocked_values=frozenset(self.blocked_values),
            blocked_patterns=self.blocked_patterns,
            min_members=self.min_members,
        )
