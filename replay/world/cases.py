"""A service case as the desk sees it (opened by :mod:`replay.world.service`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Case:
    """A service case as the desk sees it."""

    case_id: str
    priority: str
    category: str
    opened_ms: int
    due_ms: int
    resolved_ms: int | None = None
    breached: bool = False
