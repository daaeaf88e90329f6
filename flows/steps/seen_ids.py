"""The event ids a lane remembers: 64-bit hashes in sorted numpy arrays, 16 bytes an id.

An id is remembered while it is among the last ``max_ids`` ids added **and** its event
time is no older than ``ttl_seconds`` before the watermark (the latest event time
added): the same rule the ordered dict of earlier versions applied when events come
in time order, now judged per id, so it does not depend on batching.

Each id is stored as its 64-bit BLAKE2b hash, its event time (int32 ms offset from
its bucket's base) and its insertion number (uint32 offset): 16 bytes, in buckets of
at most ``max_ids / 16`` ids and ``ttl / 16`` of event time, sorted by hash for a
vectorised lookup per batch. A bucket goes once none of its ids is remembered any
more, so the arrays hold at most 1/16 more than the ids remembered. New ids wait in
a dict until an eighth of a bucket has gathered (about 1 byte an id amortised).

Two ids collide with probability 2**-64: with ``n`` ids remembered, a fresh event
is taken for a duplicate with probability n / 2**64 (1e8 ids: 5.4e-12 an event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I32 = npt.NDArray[np.int32]
U32 = npt.NDArray[np.uint32]

BUCKETS = 16  # buckets per window (count and time): the arrays' slack is 1/BUCKETS
_SPAN_MAX_MS = 2**31 - 1  # an int32 ms offset
_NONE = -(2**62)
SNAPSHOT_TAG = "seen-v2"

BucketSnapshot = tuple[int, int, int, int, bytes, bytes, bytes]
"""(block, base ms, base number, max ms, hashes, ms offsets, number offsets), raw arrays."""
SeenSnapshot = tuple[str, int, int, list[BucketSnapshot]]
"""("seen-v2", watermark ms, next number, buckets): pending ids are flushed first."""


def id_hash(event_id: str) -> int:
    """Return the 64-bit hash an id is remembered by (stable across processes).

    >>> id_hash("e1") == id_hash("e1") != id_hash("e2")
    True
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass
class _Bucket:
    base_ms: int
    base_n: int
    max_ms: int
    max_n: int
    hashes: U64  # sorted, unique
    ms: I32  # event time - base_ms
    n: U32  # insertion number - base_n
    block: int  # which block of numbers and of watermark it holds (SeenIds._flush)

    @classmethod
    def build(
        cls, hashes: U64, ms: npt.NDArray[np.int64], n: npt.NDArray[np.int64], block: int
    ) -> _Bucket:
        """Build a bucket of entries (absolute ms and numbers); a hash twice keeps its later."""
        top_ms = int(ms.max())
        base_ms = max(int(ms.min()), top_ms - _SPAN_MAX_MS)  # older ones clamp up: kept longer
        base_n = int(n.min())
        order = np.lexsort((n, hashes))  # by hash, then number: the later copy last
        hashes, ms, n = hashes[order], ms[order], n[order]
        last = np.ones(len(hashes), bool)
        last[:-1] = hashes[1:] != hashes[:-1]
        return cls(
            base_ms,
            base_n,
            top_ms,
            int(n.max()),
            hashes[last],
            (np.maximum(ms[last], base_ms) - base_ms).astype(np.int32),
            (n[last] - base_n).astype(np.uint32),
            block,
        )

    def absolute(self) -> tuple[U64, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return (
            self.hashes,
            self.ms.astype(np.int64) + self.base_ms,
            self.n.astype(np.int64) + self.base_n,
        )

    def snapshot(self) -> BucketSnapshot:
        return (
            self.block,
            self.base_ms,
            self.base_n,
            self.max_ms,
            self.hashes.tobytes(),
            self.ms.tobytes(),
            self.n.tobytes(),
        )

    @classmethod
    def restore(cls, snap: BucketSnapshot) -> _Bucket:
        block, base_ms, base_n, max_ms, hashes, ms, n = snap
        offsets = np.frombuffer(n, np.uint32).copy()
        max_n = base_n + int(offsets.max()) if len(offsets) else base_n
        return cls(
            base_ms,
            base_n,
            max_ms,
            max_n,
            np.frombuffer(hashes, np.uint64).copy(),
            np.frombuffer(ms, np.int32).copy(),
            offsets,
            block,
        )


class SeenIds:
    """Event ids seen recently, bounded by event-time TTL and by count.

    >>> seen = SeenIds(ttl_seconds=60, max_ids=2)
    >>> seen.check_and_add("a", 0.0), seen.check_and_add("a", 1.0)
    (True, False)
    >>> seen.check_and_add("b", 100.0)  # "a" is older than 60 s now: forgotten
    True
    >>> seen.check_and_add("a", 100.0)
    True
    >>> seen.nbytes_per_id() <= 16.0
    True
    """

    def __init__(self, ttl_seconds: float, max_ids: int) -> None:
        self.ttl_ms = round(ttl_seconds * 1000)
        self.max_ids = max_ids
        self.wm_ms = _NONE
        self.next_n = 0
        self._buckets: list[_Bucket] = []  # oldest first
        self._pending: dict[int, tuple[int, int]] = {}  # hash -> (ms, number), newest
        self._per_bucket = max(1, -(-max_ids // BUCKETS))
        self._span_ms = min(max(1, self.ttl_ms // BUCKETS), _SPAN_MAX_MS)

    @property
    def watermark(self) -> float:
        """The latest event time added, in seconds (-inf before the first)."""
        return float("-inf") if self.wm_ms == _NONE else self.wm_ms / 1000

    def check_and_add(self, event_id: str, event_ts: float) -> bool:
        """Return True if ``event_id`` is new (and remember it), False for a duplicate."""
        return self.check_and_add_many([event_id], [round(event_ts * 1000)])[0]

    def check_and_add_many(self, event_ids: Sequence[str], ms: Sequence[int]) -> list[bool]:
        """For each id in order (with its event time, ms): True if new (then remembered)."""
        blake = hashlib.blake2b
        hashes = [
            int.from_bytes(blake(i.encode(), digest_size=8).digest(), "little") for i in event_ids
        ]
        known_ms, known_n = self._lookup(hashes)
        fresh = []
        pending, ttl, max_ids = self._pending, self.ttl_ms, self.max_ids
        wm, next_n = self.wm_ms, self.next_n
        for h, t, stored_ms, stored_n in zip(hashes, ms, known_ms, known_n, strict=True):
            hit = pending.get(h)
            seen_ms, seen_n = (stored_ms, stored_n) if hit is None else hit
            if seen_n >= 0 and seen_n >= next_n - max_ids and seen_ms >= wm - ttl:
                fresh.append(False)
                continue
            pending[h] = (t, next_n)
            next_n += 1
            wm = max(wm, t)
            fresh.append(True)
        self.wm_ms, self.next_n = wm, next_n
        if len(pending) >= max(4096, self._per_bucket // 8) or len(pending) >= self._per_bucket:
            self._flush()
        return fresh

    def _lookup(self, hashes: list[int]) -> tuple[list[int], list[int]]:
        """Per hash, the event time and number of its latest stored entry (-1: none)."""
        found_ms = np.full(len(hashes), -1, np.int64)
        found_n = np.full(len(hashes), -1, np.int64)
        if not self._buckets:
            return found_ms.tolist(), found_n.tolist()
        wanted = np.array(hashes, np.uint64)
        order = np.argsort(wanted, kind="stable")
        wanted = wanted[order]  # sorted queries: searchsorted walks each array once
        for bucket in self._buckets:  # oldest first: a later bucket's entry overrides
            if not len(bucket.hashes):
                continue
            at = np.searchsorted(bucket.hashes, wanted)
            at[at == len(bucket.hashes)] = 0
            hit = bucket.hashes[at] == wanted
            where = order[hit]
            found_ms[where] = bucket.ms[at[hit]].astype(np.int64) + bucket.base_ms
            found_n[where] = bucket.n[at[hit]].astype(np.int64) + bucket.base_n
        return found_ms.tolist(), found_n.tolist()

    def _flush(self) -> None:
        """Move the pending ids into buckets and drop the buckets nothing is remembered of.

        A bucket holds the ids of one block of ``max_ids / 16`` insertion numbers and of
        one block of ``ttl / 16`` of the watermark, so it can go as a whole.
        """
        pending, self._pending = self._pending, {}
        if pending:
            size = len(pending)
            hashes = np.fromiter(pending.keys(), np.uint64, size)
            ms = np.fromiter((v[0] for v in pending.values()), np.int64, size)
            n = np.fromiter((v[1] for v in pending.values()), np.int64, size)
            order = np.argsort(n, kind="stable")
            hashes, ms, n = hashes[order], ms[order], n[order]
            marks = np.maximum.accumulate(ms)  # the watermark as each id came
            block = (n // self._per_bucket) * (2**31) + marks // self._span_ms
            cuts = np.flatnonzero(block[1:] != block[:-1]) + 1
            for i, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, size], strict=True)):
                h, m, k = hashes[lo:hi], ms[lo:hi], n[lo:hi]
                last = self._buckets[-1] if self._buckets else None
                if i == 0 and last is not None and last.block == int(block[0]):
                    old_h, old_ms, old_n = self._buckets.pop().absolute()
                    h, m, k = (
                        np.concatenate((old_h, h)),
                        np.concatenate((old_ms, m)),
                        np.concatenate((old_n, k)),
                    )
                self._buckets.append(_Bucket.build(h, m, k, int(block[lo])))
        cut_n, horizon = self.next_n - self.max_ids, self.wm_ms - self.ttl_ms
        self._buckets = [b for b in self._buckets if b.max_n >= cut_n and b.max_ms >= horizon]

    def __len__(self) -> int:
        """Return how many event ids are remembered."""
        cut_n, horizon = self.next_n - self.max_ids, self.wm_ms - self.ttl_ms
        live = sum(1 for ms, n in self._pending.values() if n >= cut_n and ms >= horizon)
        for b in self._buckets:
            ms = b.ms.astype(np.int64) + b.base_ms
            n = b.n.astype(np.int64) + b.base_n
            live += int(np.count_nonzero((ms >= horizon) & (n >= cut_n)))
        return live

    def nbytes_per_id(self) -> float:
        """Bytes of array per stored id (16: hash, time and number)."""
        stored = sum(len(b.hashes) for b in self._buckets)
        nbytes = sum(b.hashes.nbytes + b.ms.nbytes + b.n.nbytes for b in self._buckets)
        return nbytes / stored if stored else 16.0

    def snapshot(self) -> SeenSnapshot:
        self._flush()
        return (SNAPSHOT_TAG, self.wm_ms, self.next_n, [b.snapshot() for b in self._buckets])

    @classmethod
    def restore(
        cls,
        ttl_seconds: float,
        max_ids: int,
        snap: SeenSnapshot | tuple[float, list[tuple[str, float]]] | None,
    ) -> SeenIds:
        """Rebuild from :meth:`snapshot` (or from an earlier version's list of ids)."""
        seen = cls(ttl_seconds, max_ids)
        if snap is None:
            return seen
        if snap[0] != SNAPSHOT_TAG:  # the (watermark, [(id, ts)]) of earlier versions
            ids = cast("list[tuple[str, float]]", snap[1])
            seen.check_and_add_many([i for i, _ in ids], [round(ts * 1000) for _, ts in ids])
            return seen
        _, seen.wm_ms, seen.next_n, buckets = snap
        seen._buckets = [_Bucket.restore(b) for b in buckets]
        return seen
