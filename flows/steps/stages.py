"""Journey stages: the vocabulary, the default mapping of event actions, the machine."""

from __future__ import annotations

from schemas.vocabulary import STAGES, action_of

_PROGRESS = ("awareness", "consideration", "purchase", "onboarding", "usage", "loyalty")
STAGE_ALIASES = {"churn": "churned", "advocacy": "loyalty", "retention": "loyalty"}


def mapped_stage(event_type: str, hint: str | None, stage_map: dict[str, str]) -> str | None:
    """Return the stage (or ``"resolved"``) an event points to, before the machine applies it.

    >>> from flows.step_settings import DEFAULT_STAGE_MAP
    >>> mapped_stage("cx.web.order.placed", None, DEFAULT_STAGE_MAP)
    'purchase'
    >>> mapped_stage("cx.account.closed", "churn", DEFAULT_STAGE_MAP)
    'churned'
    """
    if hint is not None:
        stage = STAGE_ALIASES.get(hint.lower(), hint.lower())
        if stage in STAGES:
            return stage
    return stage_map.get(event_type) or stage_map.get(action_of(event_type))


def next_stage(  # noqa: PLR0911 (one return per rule of the stage machine)
    current: str | None, before_service: str | None, target: str | None
) -> str | None:
    """Apply the stage machine (see the module docstring).

    >>> next_stage("usage", None, "awareness"), next_stage("usage", None, "service")
    ('usage', 'service')
    >>> next_stage("churned", None, "usage"), next_stage("churned", None, "purchase")
    ('churned', 'purchase')
    """
    if target is None:
        return current
    if target == "resolved":
        return (before_service or "usage") if current == "service" else current
    if current is None or target in ("service", "churned"):
        return target
    if current == "churned":
        return target if target in ("purchase", "onboarding") else current
    if current == "service":
        return current
    if _PROGRESS.index(target) <= _PROGRESS.index(current):
        return current
    return target
