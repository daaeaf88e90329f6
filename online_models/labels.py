"""Delayed churn labels without leakage.

When a customer is scored, :meth:`DelayedLabels.add` may keep the feature
snapshot *as it was at scoring time* (copied into a compact array: later
changes to the customer's features cannot reach it), with its due time
``scored + horizon``. Its label arrives later, in event time:

positive
    a churn event of that customer at ``c`` with ``scored <= c <= due``
    (:meth:`DelayedLabels.churn` returns it at once, to learn from);
negative
    the watermark (the latest event time seen) passing ``due + grace`` with no
    such churn. The grace waits for churn events that arrive late; once a
    label is given it is final.

:meth:`DelayedLabels.advance` moves the watermark and returns every snapshot
whose ``due + grace`` it passed, with its final label: the negatives (new)
and the positives (already returned by :meth:`churn`). That is the stream to
*evaluate* on: each snapshot enters it exactly one horizon after it was taken,
whatever its label, so the evaluation never sees more positives than the
period it covers has (a positive is known early, a negative only at the end).

Bounds and out-of-order events
    - at most one snapshot per customer per ``interval`` of event time (the
      first event of the interval is kept); at most ``max_per_customer``
      unlabelled per customer and ``max_pending`` awaiting ``advance`` in all:
      beyond either the oldest is dropped (counted in ``dropped``);
    - an event older than ``watermark - grace`` is scored but never kept (it
      could not be labelled fairly; :meth:`late` tells);
    - a kept snapshot stamped *after* a churn that arrives later (the
      customer had already left when it was taken) is discarded, not learnt
      (counted in ``discarded``);
    - a churn is remembered for ``grace`` of event time, so a snapshot that
      arrives late but within the grace and precedes it is labelled positive
      at once.

Memory
    a pending snapshot is one slotted object, one int (its due time and sequence
    number, by which the due heap orders the snapshots themselves) and one bytes
    object: scored time, score, warm, event id, a bit mask of the features equal to
    1.0 and one of those that are not +0.0, then those floats as they were (about
    300 bytes with 46 features, against ~800 for a dataclass with an array of every
    float and a heap tuple). ``max_pending`` x that is the book's memory bound.

>>> labels = DelayedLabels(horizon_ms=10, grace_ms=0, interval_ms=1)
>>> x = {"a": 1.0}
>>> labels.add("ann", "e1", 0, x, score=0.2, warm=True) is None
True
>>> x["a"] = 99.0  # what happens to the features later does not matter
>>> [(d.snapshot.features(), d.label) for d in labels.churn("ann", 5)]
[({'a': 1.0}, True)]
>>> _ = labels.add("bob", "e2", 3, {"a": 2.0}, score=0.1, warm=True)
>>> labels.advance(10), [(d.snapshot.customer_id, d.label) for d in labels.advance(14)]
([], [('ann', True), ('bob', False)])
"""

from __future__ import annotations

import heapq
import math
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

# Snapshot states: unlabelled; labelled positive, awaiting its horizon; final; dropped.
PENDING, POSITIVE, DONE, DROPPED = 0, 1, 2, 3
MAX_KEY_SETS = 64  # distinct feature-name tuples shared between snapshots


_HEAD = struct.Struct("<qd?H")  # scored_ms, score, warm, len(event_id)
_SEQ_BITS = 40  # Snapshot.order = due_ms * 2**40 + the book's sequence number
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_OLD_FIELDS = 9  # the fields of the Snapshot dataclass of earlier versions (its pickles)


def _pack(values: Iterable[float]) -> tuple[int, int, array[float]]:
    """Split ``values`` into a bit mask of 1.0s, one of the others, and the others.

    +0.0 is neither (-0.0, NaN and every other value are kept as they are), so
    :meth:`Snapshot.features` gives back the same floats, bit for bit.
    """
    ones = others = 0
    kept = array("d")
    bit = 1
    for v in values:
        if v == 1.0:
            ones |= bit
        elif v != 0.0 or math.copysign(1.0, v) < 0 or math.isnan(v):
            others |= bit
            kept.append(v)
        bit <<= 1
    return ones, others, kept


def _encode(  # noqa: PLR0913, PLR0917 (a snapshot's fields)
    event_id: str, scored_ms: int, n_keys: int, values: Iterable[float], score: float, warm: bool
) -> bytes:
    """Return a snapshot's bytes: head, event id, the two masks of :func:`_pack`, the others."""
    ones, others, kept = _pack(values)
    width = (n_keys + 7) // 8
    name = event_id.encode()
    return b"".join(
        (
            _HEAD.pack(scored_ms, score, warm, len(name)),
            name,
            ones.to_bytes(width, "little"),
            others.to_bytes(width, "little"),
            kept.tobytes(),
        )
    )


class Snapshot:
    """The features of one customer as they were when scored, and that score.

    Compact (see the module docstring): one object, one int and one bytes object a
    snapshot. Snapshots order by (due time, the order they were taken): the book's heap.
    """

    __slots__ = ("_blob", "customer_id", "keys", "order", "state")

    def __init__(  # noqa: PLR0913, PLR0917 (what a snapshot holds)
        self,
        customer_id: str,
        event_id: str,
        scored_ms: int,
        order: int,
        keys: tuple[str, ...],
        values: Iterable[float],
        score: float,
        warm: bool,
    ) -> None:
        self.customer_id = customer_id
        self.order = order
        self.keys = keys
        self.state = PENDING
        self._blob = _encode(event_id, scored_ms, len(keys), values, score, warm)

    def __lt__(self, other: Snapshot) -> bool:
        """Order by due time, then by the order taken (the book's heap)."""
        return self.order < other.order

    def __getstate__(self) -> tuple[str, int, tuple[str, ...], int, bytes]:
        """Return the slots, for pickle."""
        return (self.customer_id, self.order, self.keys, self.state, self._blob)

    def __setstate__(self, state: Sequence[Any]) -> None:
        """Restore the slots (or the fields of an earlier version's dataclass)."""
        if len(state) == _OLD_FIELDS:  # a dataclass of earlier versions: every field
            customer, event, scored, due, keys, values, score, warm, st = state
            self.customer_id, self.order, self.keys, self.state = (
                customer,
                due << _SEQ_BITS,
                keys,
                st,
            )
            self._blob = _encode(event, scored, len(keys), values, score, warm)
            return
        self.customer_id, self.order, self.keys, self.state, self._blob = state

    def _head(self) -> tuple[int, float, bool, int]:
        scored_ms, score, warm, n = _HEAD.unpack_from(self._blob)
        return scored_ms, score, warm, n

    @property
    def scored_ms(self) -> int:
        return self._head()[0]

    @property
    def due_ms(self) -> int:
        return self.order >> _SEQ_BITS

    @property
    def score(self) -> float:
        return self._head()[1]

    @property
    def warm(self) -> bool:
        """The engine was past its warm-up when it made ``score``."""
        return self._head()[2]

    @property
    def event_id(self) -> str:
        n = self._head()[3]
        return self._blob[_HEAD.size : _HEAD.size + n].decode()

    def features(self) -> dict[str, float]:
        """Return the feature dict as it was at scoring time (a fresh copy)."""
        blob, keys = self._blob, self.keys
        at = _HEAD.size + self._head()[3]
        width = (len(keys) + 7) // 8
        ones = int.from_bytes(blob[at : at + width], "little")
        others = int.from_bytes(blob[at + width : at + 2 * width], "little")
        kept = array("d")
        kept.frombytes(blob[at + 2 * width :])
        out: dict[str, float] = {}
        i = 0
        for bit, key in enumerate(keys):
            if (others >> bit) & 1:
                out[key] = kept[i]
                i += 1
            else:
                out[key] = 1.0 if (ones >> bit) & 1 else 0.0
        return out

    def clear(self) -> None:
        """Drop the features (an erased customer's snapshot that lingers in the heap)."""
        self._blob = _HEAD.pack(0, 0.0, False, 0) + bytes(2 * ((len(self.keys) + 7) // 8))


@dataclass(frozen=True, slots=True)
class Labelled:
    """A snapshot with its label, and the event time at which the label became known."""

    snapshot: Snapshot
    label: bool
    known_ms: int


class DelayedLabels:
    """Pending snapshots of many customers, labelled as event time goes by."""

    def __init__(
        self,
        horizon_ms: int,
        grace_ms: int = 0,
        interval_ms: int = 86_400_000,
        max_per_customer: int = 64,
        max_pending: int = 1_000_000,
    ) -> None:
        self.horizon_ms = horizon_ms
        self.grace_ms = grace_ms
        self.interval_ms = interval_ms
        self.max_per_customer = max_per_customer
        self.max_pending = max_pending
        self.watermark_ms: int | None = None
        self.pending = 0  # unlabelled
        self.awaiting = 0  # labelled positive, horizon not yet passed
        self.dropped = 0
        self.discarded = 0
        # Unlabelled, by customer, oldest first. A list: most customers have one or two, and
        # an empty deque alone takes 760 bytes (a list of one, 64).
        self._by_customer: dict[str, list[Snapshot]] = {}
        self._due: list[Snapshot] = []  # heap (by due time, then seq); finished ones linger
        self._seq = 0
        self._churns: dict[str, int] = {}  # customer -> latest churn time, kept for the grace
        self._churn_heap: list[tuple[int, str]] = []
        self._key_sets: dict[tuple[str, ...], tuple[str, ...]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled book (one of earlier versions: a heap of (due, seq, snapshot))."""
        self.__dict__.update(state)
        if self._due and isinstance(self._due[0], tuple):
            old = cast("list[tuple[int, int, Snapshot]]", self._due)
            for due, seq, snap in old:
                snap.order = (due << _SEQ_BITS) + (seq & _SEQ_MASK)
            self._due = [snap for _, _, snap in old]
            heapq.heapify(self._due)

    def late(self, t_ms: int) -> bool:
        """Tell whether an event at ``t_ms`` is too far behind the watermark to be kept."""
        wm = self.watermark_ms
        return wm is not None and t_ms < wm - self.grace_ms

    def wants(self, customer_id: str, t_ms: int) -> bool:
        """Tell whether a snapshot of ``customer_id`` at ``t_ms`` would be kept."""
        if self.late(t_ms):
            return False
        queue = self._by_customer.get(customer_id)
        if not queue:
            return True
        last_ms = (queue[-1].order >> _SEQ_BITS) - self.horizon_ms  # its scored_ms
        return t_ms - last_ms >= self.interval_ms

    def add(  # noqa: PLR0913 (the snapshot's key and features; score and warm keyword-only)
        self,
        customer_id: str,
        event_id: str,
        t_ms: int,
        x: dict[str, float],
        *,
        score: float,
        warm: bool,
    ) -> Labelled | None:
        """Keep a snapshot of ``x`` (if :meth:`wants` it); its label if already known."""
        if not self.wants(customer_id, t_ms):
            return None
        keys = tuple(x)
        if len(self._key_sets) < MAX_KEY_SETS:
            keys = self._key_sets.setdefault(keys, keys)
        self._seq += 1
        order = ((t_ms + self.horizon_ms) << _SEQ_BITS) + (self._seq & _SEQ_MASK)
        snap = Snapshot(customer_id, event_id, t_ms, order, keys, x.values(), score, warm)
        heapq.heappush(self._due, snap)
        churned = self._churns.get(customer_id)
        if churned is not None and t_ms <= churned <= snap.due_ms:
            snap.state = POSITIVE  # a late event before a churn already seen
            self.awaiting += 1
            known = Labelled(snap, True, max(churned, self.watermark_ms or churned))
        else:
            queue = self._by_customer.get(customer_id)
            if queue is None:
                queue = self._by_customer[customer_id] = []
            queue.append(snap)
            self.pending += 1
            if len(queue) > self.max_per_customer:
                self._drop(queue[0])
            known = None
        while self.pending + self.awaiting > self.max_pending:
            self._drop(heapq.heappop(self._due))
        return known

    def churn(self, customer_id: str, t_ms: int) -> list[Labelled]:
        """Label positive the customer's snapshots whose horizon holds ``t_ms``."""
        if self._churns.get(customer_id, t_ms - 1) < t_ms:
            self._churns[customer_id] = t_ms
            heapq.heappush(self._churn_heap, (t_ms, customer_id))
        out: list[Labelled] = []
        for snap in list(self._by_customer.get(customer_id, ())):
            if snap.scored_ms > t_ms:  # taken after the customer had left
                self._unqueue(snap, DROPPED)
                self.discarded += 1
            elif t_ms <= snap.due_ms:
                self._unqueue(snap, POSITIVE)
                self.awaiting += 1
                out.append(Labelled(snap, True, t_ms))
            # else: the churn came after the horizon; advance() labels it negative
        return out

    def advance(self, t_ms: int) -> list[Labelled]:
        """Move the watermark to ``t_ms`` (never back); return the snapshots it finished."""
        if self.watermark_ms is not None and t_ms <= self.watermark_ms:
            return []
        self.watermark_ms = t_ms
        limit = t_ms - self.grace_ms
        out: list[Labelled] = []
        due = self._due
        limit_order = limit << _SEQ_BITS  # due_ms < limit, whatever the seq
        while due and due[0].order < limit_order:
            snap = heapq.heappop(due)
            if snap.state == PENDING:
                self._unqueue(snap, DONE)
                out.append(Labelled(snap, False, t_ms))
            elif snap.state == POSITIVE:
                snap.state = DONE
                self.awaiting -= 1
                out.append(Labelled(snap, True, t_ms))
        churns = self._churn_heap
        while churns and churns[0][0] < limit:
            churned, customer = heapq.heappop(churns)
            if self._churns.get(customer) == churned:
                del self._churns[customer]
        if len(due) > 2 * (self.pending + self.awaiting) + 1024:  # finished entries: compact
            self._due = [snap for snap in due if snap.state in (PENDING, POSITIVE)]
            heapq.heapify(self._due)
        return out

    def forget(self, customer_id: str) -> int:
        """Drop every snapshot of a customer (erasure); return how many."""
        n = 0
        for snap in list(self._by_customer.get(customer_id, ())):
            self._unqueue(snap, DROPPED)
            n += 1
        for snap in self._due:
            if snap.customer_id == customer_id and snap.state == POSITIVE:
                snap.state = DROPPED
                snap.clear()
                self.awaiting -= 1
                n += 1
        self._churns.pop(customer_id, None)
        return n

    def customers(self) -> int:
        """How many customers have unlabelled snapshots."""
        return len(self._by_customer)

    def _drop(self, snap: Snapshot) -> None:
        if snap.state == PENDING:
            self._unqueue(snap, DROPPED)
        elif snap.state == POSITIVE:
            snap.state = DROPPED
            self.awaiting -= 1
        else:
            return
        self.dropped += 1

    def _unqueue(self, snap: Snapshot, state: int) -> None:
        snap.state = state
        queue = self._by_customer[snap.customer_id]
        queue.remove(snap)
        if not queue:
            del self._by_customer[snap.customer_id]
        self.pending -= 1
