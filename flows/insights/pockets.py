"""Pockets (cells scoring low against their complement) and NPS by channel with its mix.

Pockets
    A cell (segment x touchpoint, or stage x channel) with at least
    ``min_answers`` answers, and a complement (every other answer of the
    window) as large, is tested one-sided for scoring lower *than its drivers
    explain*. The window's answers (0-10) are regressed on the driver vector
    (ordinary least squares from the window's co-moments, :class:`Adjustment`);
    each answer's residual is what the drivers do not explain, and the cell's
    mean residual is compared with the complement's: ``z = (r_cell - r_rest) /
    sqrt(s2_cell / n_cell + s2_rest / n_rest)`` (Welch, the residuals' sample
    variances in each group, from the cell's co-moments and the complement's,
    which are the window's minus the cell's), ``p = Phi(z)``. So a cell whose
    answers are low because its customers have open cases or breached SLAs (drivers
    of everyone's NPS) is no pocket; one that is low beyond that is. Without
    an adjustment (or with fewer answers than the regression needs) the test is
    the same on the +100/0/-100 scores (raw NPS). ``adjusted_gap`` is
    ``r_cell - r_rest`` in answer points; ``nps`` and ``complement_nps`` stay the
    raw NPS. The Benjamini-Hochberg step-up rule over every cell tested in the
    window controls the false discovery rate at ``fdr``: a cell is significant
    when its ``q`` (BH-adjusted p) is at most ``fdr`` and its gap is negative.

Channel mix
    Phone answers read higher than web answers for the same experience partly
    because the channels see different moments of the journey. For each channel
    ``mix_adjusted_nps = sum_s w_s NPS_{c,s} / sum_s w_s`` over the journey
    stages ``s`` the channel has answers in, ``w_s`` being the stage's share of
    ALL answers (direct standardisation); ``mix_effect = nps - mix_adjusted_nps``
    is what the channel's own stage mix adds to its NPS.

>>> cells = {("stage x channel", "service", "chat"): [0, 8, 20],
...          ("stage x channel", "usage", "web"): [10, 4, 30]}
>>> rows = find_pockets(cells, (30, 20, 100), 5, 0.05)
>>> [(r["cell"], r["nps"], r["significant"]) for r in rows]
[(['service', 'chat'], -40.0, True), (['usage', 'web'], 20.0, False)]
>>> mix = channel_mix({("web", "usage"): [6, 2, 10], ("web", "service"): [0, 5, 10],
...     ("call_center", "service"): [2, 4, 10]})
>>> [(m["channel"], m["nps"], m["mix_adjusted_nps"], m["mix_effect"]) for m in mix]
[('call_center', -20.0, -20.0, 0.0), ('web', -5.0, -20.0, 15.0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from flows.insights.moments import Comoments
from flows.insights.weights import FloatArray

Counts = list[int]
"""[promoters, detractors, answers]."""
Cell = tuple[str, str, str]
"""(kind, first level, second level): ("segment x touchpoint", "seg-1", "web.checkout")."""

_NORMAL = NormalDist()


def nps_of(p: int, d: int, n: int) -> float:
    """NPS in points of ``p`` promoters and ``d`` detractors among ``n`` answers."""
    return 100.0 * (p - d) / n


def _variance(p: int, d: int, n: int) -> float:
    """Sample variance of the +100/0/-100 scores."""
    if n < 2:  # noqa: PLR2004 (a sample variance needs two)
        return 0.0
    mean = (p - d) / n
    return 10_000.0 * ((p + d) / n - mean * mean) * n / (n - 1)


def bh_adjust(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q), in the order given.

    >>> bh_adjust([0.01, 0.04, 0.03, 0.5])
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.5]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = min(1.0, running)
    return q


@dataclass(frozen=True, slots=True)
class Adjustment:
    """The regression of the answer on the drivers, and each cell's co-moments.

    Rows are ``[drivers (k)..., answer, ...]`` as the engine folds them;
    ``overall`` holds every answer of the window, ``cells`` those of each cell.
    """

    overall: Comoments
    cells: Mapping[Cell, Comoments]
    drivers: tuple[str, ...]

    def weights(self) -> FloatArray | None:
        """``w`` with ``w . row`` = the answer minus the drivers' part (None: too few rows)."""
        k, n = len(self.drivers), self.overall.n
        if n <= k + 1:
            return None
        cov = self.overall.covariance()
        beta = np.linalg.lstsq(cov[:k, :k], cov[:k, k], rcond=None)[0]
        w: FloatArray = np.zeros(cov.shape[0])
        w[:k], w[k] = -beta, 1.0
        return w

    def residual_test(self, cell: Cell, w: FloatArray) -> tuple[float, float]:
        """(mean residual of the cell - of its complement, its standard error)."""
        c, o = self.cells[cell], self.overall
        c.covariance(), o.covariance()  # fold what is pending
        n_c, n = c.n, o.n
        n_r = n - n_c
        mean_r = (o.mean * n - c.mean * n_c) / n_r
        delta = c.mean - mean_r
        m2_r = o.m2 - c.m2 - np.outer(delta, delta) * (n_c * n_r / n)
        var_c = float(w @ c.m2 @ w) / max(1, n_c - 1)
        var_r = float(w @ m2_r @ w) / max(1, n_r - 1)
        return float(w @ delta), math.sqrt(max(0.0, var_c) / n_c + max(0.0, var_r) / n_r)


def find_pockets(
    cells: Mapping[Cell, Counts],
    total: tuple[int, int, int],
    min_answers: int,
    fdr: float,
    adjust: Adjustment | None = None,
) -> list[dict[str, Any]]:
    """Test every cell with enough answers against its complement; BH over them all."""
    tp, td, tn = total
    w = adjust.weights() if adjust is not None else None
    tested: list[dict[str, Any]] = []
    gaps: list[float] = []
    for cell, (p, d, n) in sorted(cells.items()):
        rp, rd, rn = tp - p, td - d, tn - n
        if n < min_answers or rn < min_answers:
            continue
        nps, rest = nps_of(p, d, n), nps_of(rp, rd, rn)
        if adjust is not None and w is not None:
            gap, se = adjust.residual_test(cell, w)
        else:
            gap, se = nps - rest, math.sqrt(_variance(p, d, n) / n + _variance(rp, rd, rn) / rn)
        if se > 0:
            z = gap / se
            p_value = _NORMAL.cdf(z)
        else:
            z, p_value = 0.0, 1.0 if gap >= 0 else 0.0
        row: dict[str, Any] = {
            "kind": cell[0],
            "cell": [cell[1], cell[2]],
            "answers": n,
            "nps": round(nps, 2),
            "complement_answers": rn,
            "complement_nps": round(rest, 2),
            "adjusted_gap": round(gap, 4) if w is not None else None,
            "z": round(z, 4),
            "p": p_value,
        }
        tested.append(row)
        gaps.append(gap)
    qs = bh_adjust([r["p"] for r in tested])
    for row, q, gap in zip(tested, qs, gaps, strict=True):
        row["p"] = round(row["p"], 8)
        row["q"] = round(q, 8)
        row["significant"] = q <= fdr and gap < 0
    return tested


def channel_mix(counts: Mapping[tuple[str, str], Counts]) -> list[dict[str, Any]]:
    """NPS per channel, standardised to the window's stage mix (see the module notes)."""
    total = sum(n for _, _, n in counts.values())
    stage_n: dict[str, int] = {}
    for (_, stage), (_, _, n) in counts.items():
        stage_n[stage] = stage_n.get(stage, 0) + n
    out: list[dict[str, Any]] = []
    for channel in sorted({c for c, _ in counts}):
        mine = {s: v for (c, s), v in counts.items() if c == channel and v[2] > 0}
        p = sum(v[0] for v in mine.values())
        d = sum(v[1] for v in mine.values())
        n = sum(v[2] for v in mine.values())
        if n == 0 or total == 0:
            continue
        weights = {s: stage_n[s] / total for s in mine}
        adjusted = sum(weights[s] * nps_of(*mine[s]) for s in mine) / sum(weights.values())
        nps = nps_of(p, d, n)
        out.append(
            {
                "channel": channel,
                "answers": n,
                "nps": round(nps, 2),
                "mix_adjusted_nps": round(adjusted, 2),
                "mix_effect": round(nps - adjusted, 2),
            }
        )
    return out
