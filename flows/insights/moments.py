"""Running co-moments (bounded sufficient statistics) and a seeded reservoir of rows.

:class:`Comoments` keeps ``n``, the mean vector and the matrix of co-moments
``sum (z - mean)(z - mean)'`` of the rows folded in (Welford's update, one row
at a time, in the order given): ``v + v^2`` numbers, whatever ``n``.
The point estimates of the key drivers come from them.

The bootstrap needs rows, so :class:`Reservoir` keeps a uniform sample of at
most ``size`` of them (Vitter's algorithm R) drawn with its own
``random.Random`` seeded from the window it belongs to; its state is pickled
with the engine, so a restored run draws what the first run drew. Up to
``size`` answers the reservoir holds every row and the bootstrap is the plain
one; beyond, it resamples the reservoir (the intervals are those of a sample of
``size`` answers: a little wider than the full window's, never narrower).

>>> import numpy as np
>>> m = Comoments(2)
>>> for row in ([1.0, 2.0], [2.0, 4.0], [3.0, 6.0]):
...     m.add(np.array(row))
>>> m.n, m.covariance().tolist()
(3, [[1.0, 2.0], [2.0, 4.0]])
>>> r = Reservoir(2, seed=5)
>>> for i in range(10):
...     r.add((float(i),))
>>> r.seen, len(r.rows)
(10, 2)
"""

from __future__ import annotations

import random

import numpy as np

from flows.insights.weights import FloatArray


class Comoments:
    """Welford's running mean and co-moment matrix of fixed-width rows."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean: FloatArray = np.zeros(width)
        self.m2: FloatArray = np.zeros((width, width))

    def add(self, row: FloatArray) -> None:
        self.n += 1
        delta = row - self.mean
        self.mean += delta / self.n
        self.m2 += np.outer(delta, row - self.mean)

    def covariance(self) -> FloatArray:
        """Return the sample covariance matrix (n - 1 in the denominator)."""
        cov: FloatArray = self.m2 / max(1, self.n - 1)
        return cov

    def __getstate__(self) -> tuple[int, FloatArray, FloatArray]:
        """Pickle as a plain tuple (a class with slots and no dict)."""
        return self.n, self.mean, self.m2

    def __setstate__(self, state: tuple[int, FloatArray, FloatArray]) -> None:
        """Restore from :meth:`__getstate__`."""
        self.n, self.mean, self.m2 = state


class Reservoir:
    """A seeded uniform sample of at most ``size`` rows (algorithm R)."""

    __slots__ = ("rng", "rows", "seen", "size")

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seen = 0
        self.rows: list[tuple[float, ...]] = []
        self.rng = random.Random(seed)  # noqa: S311 (a statistical sample, not a secret)

    def add(self, row: tuple[float, ...]) -> None:
        self.seen += 1
        if len(self.rows) < self.size:
            self.rows.append(row)
            return
        slot = self.rng.randrange(self.seen)
        if slot < self.size:
            self.rows[slot] = row

    def __getstate__(self) -> tuple[int, int, list[tuple[float, ...]], random.Random]:
        """Pickle as a plain tuple (a class with slots and no dict)."""
        return self.size, self.seen, self.rows, self.rng

    def __setstate__(self, state: tuple[int, int, list[tuple[float, ...]], random.Random]) -> None:
        """Restore from :meth:`__getstate__`."""
        self.size, self.seen, self.rows, self.rng = state
