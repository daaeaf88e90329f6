"""The shared CX vocabularies, in a fixed order (feature vectors and reports rely on it)."""

from __future__ import annotations

from typing import Literal, get_args

CHANNELS: tuple[str, ...] = (
    "web",
    "app",
    "call_center",
    "email",
    "chat",
    "social",
    "store",
    "survey",
    "service_desk",
)

STAGES: tuple[str, ...] = (
    "awareness",
    "consideration",
    "purchase",
    "onboarding",
    "usage",
    "service",
    "loyalty",
    "churned",
)

# The NPS bands of a 0-10 survey score: promoters 9-10, passives 7-8, detractors 0-6.
NPS_PROMOTER_MIN = 9
NPS_PASSIVE_MIN = 7
NPS_DETRACTOR_MAX = NPS_PASSIVE_MIN - 1

CASE_OPENED = "case.opened"
CASE_FINISHED: frozenset[str] = frozenset({"case.resolved", "case.closed"})


def action_of(event_type: str) -> str:
    """Return the action of ``cx.<channel>.<action>``: the type's last two dot-separated parts.

    >>> action_of("cx.web.order.placed"), action_of("cx.service_desk.case.opened")
    ('order.placed', 'case.opened')
    """
    return ".".join(event_type.rsplit(".", 2)[-2:])


ScriptOp = Literal[
    "resolve", "lookup", "canonical", "identifiers", "erase", "profile", "profile_get", "flush"
]
"""The operations of the store's Redis script (its ARGV[2]; the ``op`` label of cx_redis_*)."""
SCRIPT_OPS: frozenset[str] = frozenset(get_args(ScriptOp))
