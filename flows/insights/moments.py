"""Running co-moments (bounded sufficient statistics) and a seeded reservoir of rows.

:class:`Comoments` keeps ``n``, the mean vector and the matrix of co-moments
``sum (z - mean)(z - mean)'`` of the rows folded in (a pairwise update per group
of at most :data:`GROUP` rows): ``v + v^2`` numbers and a bounded buffer, whatever
``n``.
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
>>> for row in ((1.0, 2.0), (2.0, 4.0), (3.0, 6.0)):
...     m.add(row)
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

GROUP = 64
"""Rows a :class:`Comoments` buffers before folding them in at once."""


class Comoments:
    """Running mean and co-moment matrix of fixed-width rows.

    Rows wait in a buffer of at most :data:`GROUP` and are folded in a group at a
    time (Chan, Golub and LeVeque's pairwise update): one NumPy call per group,
    not per row. Groups are cut by count only, so the same rows in the same order
    give the same figures however they arrive.
    """

    __slots__ = ("folded", "m2", "mean", "pending")

    def __init__(self, width: int) -> None:
        self.folded = 0
        self.mean: FloatArray = np.zeros(width)
        self.m2: FloatArray = np.zeros((width, width))
        self.pending: list[tuple[float, ...]] = []

    @property
    def n(self) -> int:
        """Rows added."""
        return self.folded + len(self.pending)

    def add(self, row: tuple[float, ...]) -> None:
        self.pending.append(row)
        if len(self.pending) >= GROUP:
            self._fold()

    def _fold(self) -> None:
        if not self.pending:
            return
        group: FloatArray = np.array(self.pending, dtype=np.float64)
        self.pending = []
        n_b = group.shape[0]
        mean_b = group.mean(axis=0)
        centred = group - mean_b
        m2_b = centred.T @ centred
        n_a, n = self.folded, self.folded + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.folded = n

    def covariance(self) -> FloatArray:
        """Return the sample covariance matrix (n - 1 in the denominator)."""
        self._fold()
        cov: FloatArray = self.m2 / max(1, self.n - 1)
        return cov

    def __getstate__(self) -> tuple[int, FloatArray, FloatArray, list[tuple[float, ...]]]:
        """Pickle as a plain tuple (a class with slots and no dict)."""
        return self.folded, self.mean, self.m2, self.pending

    def __setstate__(
        self, state: tuple[int, FloatArray, FloatArray, list[tuple[float, ...]]]
    ) -> None:
        """Restore from :meth:`__getstate__`."""
        self.folded, self.mean, self.m2, self.pending = state


class Reservoir:
    """A seeded uniform sample of at most ``size`` rows (algorithm R), in one array.

    One NumPy array rather than a list of tuples: a snapshot pickles it as bytes and
    the garbage collector has one object to look at, not thousands.
    """

    __slots__ = ("data", "rng", "seen", "size")

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seen = 0
        self.data: FloatArray | None = None  # (size, width) once the first row came
        self.rng = random.Random(seed)  # noqa: S311 (a statistical sample, not a secret)

    @property
    def rows(self) -> FloatArray:
        """The rows held, (min(seen, size), width)."""
        if self.data is None:
            return np.zeros((0, 0))
        return self.data[: min(self.seen, self.size)]

    def add(self, row: tuple[float, ...]) -> None:
        if self.data is None:
            self.data = np.zeros((self.size, len(row)))
        self.seen += 1
        if self.seen <= self.size:
            self.data[self.seen - 1] = row
            return
        slot = self.rng.randrange(self.seen)
        if slot < self.size:
            self.data[slot] = row

    def __getstate__(self) -> tuple[int, int, FloatArray | None, random.Random]:
        """Pickle as a plain tuple (a class with slots and no dict)."""
        return self.size, self.seen, self.rows.copy() if self.data is not None else None, self.rng

    def __setstate__(self, state: tuple[int, int, FloatArray | None, random.Random]) -> None:
        """Restore from :meth:`__getstate__`."""
        self.size, self.seen, held, self.rng = state
        self.data = None
        if held is not None:
            self.data = np.zeros((self.size, held.shape[1]))
            self.data[: held.shape[0]] = held
