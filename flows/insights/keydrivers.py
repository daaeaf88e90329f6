"""Key drivers of one series: point weights from co-moments, seeded bootstrap intervals.

Point estimates are Johnson's relative weights (:mod:`flows.insights.weights`)
from the series' running covariance (every answer of the window). The
intervals resample the series' reservoir ``bootstrap`` times with a NumPy
generator seeded from the settings' seed and the record's id, so the same
window always gives the same intervals. Significance follows Tonidandel,
LeBreton and Johnson (2009): each resample also carries a column of standard
normal noise, and a driver is significant when the lower bound of the
interval of (its weight - the noise column's weight) is above 0. The same is
done for the detractor indicator (1 for an answer of 0-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import numpy as np

from flows.insights.moments import Comoments, Reservoir
from flows.insights.settings import DriverName
from flows.insights.weights import FloatArray, relative_weights, relative_weights_stack
from flows.insights.weights import sample_covariances as _covariances

DIGITS = 10  # weights as written: far below any sampling error, stable across BLAS builds


@dataclass(frozen=True, slots=True)
class Estimate:
    """Weights of the drivers for one outcome, with their bootstrap figures."""

    weights: FloatArray
    low: FloatArray | None
    high: FloatArray | None
    significant: list[bool] | None

    @property
    def r2(self) -> float:
        return float(self.weights.sum())


def point_weights(moments: Comoments, k: int, outcome: int) -> FloatArray:
    """Relative weights of the first ``k`` columns for column ``outcome``, from co-moments."""
    idx = [*range(k), outcome]
    return relative_weights(moments.covariance()[np.ix_(idx, idx)])


def seed_of(seed: int, record_id: str) -> int:
    """Return the bootstrap seed of a record: the settings' seed and the record's id, hashed."""
    return int.from_bytes(blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest(), "big")


def estimate(  # noqa: PLR0913 (the series, its shape and the bootstrap's parameters)
    moments: Comoments,
    reservoir: Reservoir,
    k: int,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[Estimate, Estimate]:
    """Estimates for NPS (column k) and the detractor indicator (column k + 1)."""
    both = relative_weights_stack(moments.covariance()[np.newaxis, : k + 2, : k + 2], outcomes=2)
    points = [both[0, 0], both[0, 1]]
    m = len(reservoir.rows)
    if m < 3:  # noqa: PLR2004 (a covariance needs rows to vary over)
        return Estimate(points[0], None, None, None), Estimate(points[1], None, None, None)
    rows = reservoir.rows
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, m, size=(resamples, m))
    noise = rng.standard_normal((resamples, m, 1))
    covs = _covariances(np.concatenate([rows[picks], noise], axis=2))
    tail = (1.0 - confidence) / 2.0
    # both outcomes at once (one eigen-decomposition), then with the noise column
    plains = relative_weights_stack(covs[:, : k + 2, : k + 2], outcomes=2)
    idx = [*range(k), k + 2, k, k + 1]
    noisies = relative_weights_stack(covs[:, idx][:, :, idx], outcomes=2)
    out: list[Estimate] = []
    for o, point in enumerate(points):
        plain, noisy = plains[:, o], noisies[:, o]
        lead = np.quantile(noisy[:, :k] - noisy[:, k : k + 1], tail, axis=0)
        out.append(
            Estimate(
                point,
                np.quantile(plain, tail, axis=0),
                np.quantile(plain, 1.0 - tail, axis=0),
                [bool(v > 0.0) for v in lead],
            )
        )
    return out[0], out[1]


def _r(value: float) -> float:
    return round(float(value), DIGITS)


def driver_rows(
    names: tuple[DriverName, ...], moments: Comoments, nps: Estimate, detractor: Estimate
) -> list[dict[str, Any]]:
    """Return the ``drivers`` list of a record: one dict per driver, in the settings' order."""
    k = len(names)
    cov = moments.covariance()
    out: list[dict[str, Any]] = []
    for j, name in enumerate(names):
        row: dict[str, Any] = {"driver": name}
        for prefix, est, outcome in (("", nps, k), ("detractor_", detractor, k + 1)):
            r2 = est.r2
            row[f"{prefix}weight"] = _r(est.weights[j])
            row[f"{prefix}share"] = _r(100.0 * est.weights[j] / r2) if r2 > 0 else 0.0
            row[f"{prefix}low"] = _r(est.low[j]) if est.low is not None else None
            row[f"{prefix}high"] = _r(est.high[j]) if est.high is not None else None
            row[f"{prefix}significant"] = (
                est.significant[j] if est.significant is not None else False
            )
            row[f"{prefix}sign"] = int(np.sign(cov[j, outcome]))
        out.append(row)
    return out
