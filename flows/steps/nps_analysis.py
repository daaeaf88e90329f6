"""Cross-touchpoint analysis of one closed window boundary: leaderboard, quintiles, impact.

See :func:`analyse_boundary` for the definitions; the windowing itself is
:mod:`flows.steps.windowed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Ranking touchpoints against each other needs at least two of them.
MIN_TOUCHPOINTS = 2


def nps_score(promoters: int, detractors: int, responses: int) -> float | None:
    """NPS in points (-100..100), unrounded; None without answers.

    >>> nps_score(5, 2, 10), nps_score(0, 0, 0)
    (30.0, None)
    """
    return 100.0 * (promoters - detractors) / responses if responses else None


@dataclass(frozen=True, slots=True)
class Standing:
    """One ranked touchpoint of a boundary."""

    touchpoint: str
    nps: float
    responses: int
    rank: int
    impact: float


@dataclass(frozen=True, slots=True)
class BoundaryAnalysis:
    """Leaderboard, quintiles and impact across the touchpoints of one window boundary."""

    overall_nps: float | None
    overall_responses: int
    leaderboard: tuple[Standing, ...]
    quintile_size: int | None
    top_quintile_nps: float | None
    bottom_quintile_nps: float | None

    def for_touchpoint(self, touchpoint: str) -> dict[str, Any]:
        """Return the ``analysis`` dict of one touchpoint's window (the same keys for every one)."""
        standing = next((s for s in self.leaderboard if s.touchpoint == touchpoint), None)
        quintile: Literal["top", "bottom"] | None = None
        if standing is not None and self.quintile_size is not None:
            if standing.rank <= self.quintile_size:
                quintile = "top"
            elif standing.rank > len(self.leaderboard) - self.quintile_size:
                quintile = "bottom"
        gap = None
        if self.top_quintile_nps is not None and self.bottom_quintile_nps is not None:
            gap = round(self.top_quintile_nps - self.bottom_quintile_nps, 1)
        return {
            "overall_nps": _round(self.overall_nps, 1),
            "overall_responses": self.overall_responses,
            "rank": standing.rank if standing else None,
            "of": len(self.leaderboard),
            "quintile": quintile,
            "quintile_size": self.quintile_size,
            "top_quintile_nps": _round(self.top_quintile_nps, 1),
            "bottom_quintile_nps": _round(self.bottom_quintile_nps, 1),
            "quintile_gap": gap,
            "impact": round(standing.impact, 2) if standing else None,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def analyse_boundary(
    figures: Mapping[str, tuple[int, int, int]], min_responses: int
) -> BoundaryAnalysis:
    """Rank touchpoints of one boundary from ``{touchpoint: (promoters, detractors, responses)}``.

    Examples
    --------
    >>> a = analyse_boundary({"web": (6, 2, 10), "app": (2, 6, 10), "tiny": (1, 0, 1)}, 5)
    >>> [(s.touchpoint, s.rank, s.nps, round(s.impact, 2)) for s in a.leaderboard]
    [('web', 1, 40.0, 16.78), ('app', 2, -40.0, -21.32)]
    >>> round(a.overall_nps, 2), a.top_quintile_nps, a.bottom_quintile_nps
    (4.76, 40.0, -40.0)
    >>> a.for_touchpoint("tiny")["rank"], a.for_touchpoint("app")["quintile"]
    (None, 'bottom')
    """
    promoters = sum(p for p, _, _ in figures.values())
    detractors = sum(d for _, d, _ in figures.values())
    total = sum(n for _, _, n in figures.values())
    overall = nps_score(promoters, detractors, total)
    ranked: list[tuple[float, str, int]] = []
    for touchpoint, (p, d, n) in figures.items():
        score = nps_score(p, d, n)
        if n >= min_responses and score is not None:
            ranked.append((-score, touchpoint, n))
    ranked.sort()  # best NPS first, ties by name
    board = tuple(
        Standing(tp, -neg, n, rank, n / total * (-neg - (overall or 0.0)))
        for rank, (neg, tp, n) in enumerate(ranked, start=1)
    )
    if len(board) < MIN_TOUCHPOINTS:
        return BoundaryAnalysis(overall, total, board, None, None, None)
    size = max(1, round(len(board) / 5))
    top = sum(s.nps for s in board[:size]) / size
    bottom = sum(s.nps for s in board[-size:]) / size
    return BoundaryAnalysis(overall, total, board, size, top, bottom)
