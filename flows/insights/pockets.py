"""Pockets (cells scoring low against their complement) and NPS by channel with its mix.

Pockets
    A cell (segment x touchpoint, or stage x channel) with at least
    ``min_answers`` answers, and a complement (every other answer of the
    window) as large, is tested one-sided for a lower NPS: each answer scores
    +100, 0 or -100, and ``z = (NPS_cell - NPS_rest) / sqrt(s2_cell / n_cell +
    s2_rest / n_rest)`` (Welch, sample variances), ``p = Phi(z)``. The
    Benjamini-Hochberg step-up rule over every cell tested in the window
    controls the false discovery rate at ``fdr``: a cell is significant when
    its ``q`` (BH-adjusted p) is at most ``fdr``.

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
from statistics import NormalDist
from typing import Any

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


def find_pockets(
    cells: Mapping[Cell, Counts], total: tuple[int, int, int], min_answers: int, fdr: float
) -> list[dict[str, Any]]:
    """Test every cell with enough answers against its complement; BH over them all."""
    tp, td, tn = total
    tested: list[dict[str, Any]] = []
    for (kind, first, second), (p, d, n) in sorted(cells.items()):
        rp, rd, rn = tp - p, td - d, tn - n
        if n < min_answers or rn < min_answers:
            continue
        nps, rest = nps_of(p, d, n), nps_of(rp, rd, rn)
        se = math.sqrt(_variance(p, d, n) / n + _variance(rp, rd, rn) / rn)
        if se > 0:
            z = (nps - rest) / se
            p_value = _NORMAL.cdf(z)
        else:
            z, p_value = 0.0, 1.0 if nps >= rest else 0.0
        tested.append(
            {
                "kind": kind,
                "cell": [first, second],
                "answers": n,
                "nps": round(nps, 2),
                "complement_answers": rn,
                "complement_nps": round(rest, 2),
                "z": round(z, 4),
                "p": p_value,
            }
        )
    for row, q in zip(tested, bh_adjust([r["p"] for r in tested]), strict=True):
        row["p"] = round(row["p"], 8)
        row["q"] = round(q, 8)
        row["significant"] = q <= fdr and row["nps"] < row["complement_nps"]
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
