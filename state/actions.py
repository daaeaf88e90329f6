"""The action board: each customer's current NBAs, open alerts and journey timeline.

The flow writes it as it emits NBAs and alerts (and as its profile step sees each
interaction); the Experience API (``cxstream serve``) reads it, so any replica can
answer ``GET /v1/customers/{id}/actions`` and ``/timeline``, and records the agents'
responses on it. Two implementations keep the same rules, held together by the
contract tests (``tests/state/test_actions.py``): :class:`MemoryActionBoard` (dicts,
one process: the demo) and :class:`state.redis_actions.RedisActionBoard`
(``state.redis_actions.board_for`` gives the one kept next to a profile store).

Rules
    Items are JSON objects (the outputs as published). Per customer the board keeps
    the newest ``max_nbas`` NBAs and ``max_alerts`` alerts (by event time, then
    arrival) and the last ``timeline_length`` interactions; a customer's keys expire
    ``retention_seconds`` after the last write (Redis ``EXPIRE``), so a quiet customer
    costs nothing forever. A merge makes the survivor's reads include the merged-away
    ids' items (within the same bounds); an erasure drops the customer and every id
    merged into it, and any write for them that comes later. An NBA is *current*
    while ``now`` is before its ``expires_at`` (or ``nba_ttl_ms`` after its time,
    when it has none) and no terminal outcome (accepted, rejected, dismissed) was
    recorded for it; an impression keeps it current. An alert is *open* for
    ``alert_ttl_ms`` after its time. ``now`` is the caller's: wall clock in the API,
    each customer's last event time in ``cxstream demo --serve``.

Responses (:func:`judge`)
    The same outcome twice is a duplicate (idempotent); a second, different terminal
    outcome is a conflict; an outcome for an expired NBA is refused. Recording is
    atomic (Redis ``WATCH``/``MULTI``), so two replicas cannot record two terminal
    outcomes for one NBA.

>>> judge((), "impression", expired=False), judge(("impression",), "accepted", expired=False)
('recorded', 'recorded')
>>> judge(("accepted",), "accepted", expired=True), judge(("accepted",), "rejected", expired=False)
('duplicate', 'conflict')
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

TERMINAL = frozenset({"accepted", "rejected", "dismissed"})
Verdict = Literal["recorded", "duplicate", "conflict", "expired", "missing"]


@dataclass(frozen=True, slots=True)
class BoardRules:
    """Bounds and lifetimes of the board (``CX_API__BOARD_*``)."""

    max_nbas: int = 20
    max_alerts: int = 20
    timeline_length: int = 100
    nba_ttl_ms: int = 86_400_000
    alert_ttl_ms: int = 7 * 86_400_000
    retention_seconds: int = 7 * 86_400


@dataclass(frozen=True, slots=True)
class BoardItem:
    """One write: ``kind`` "n" (NBA), "a" (alert) or "t" (timeline entry)."""

    kind: Literal["n", "a", "t"]
    customer_id: str
    item_id: str
    time_ms: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Actions:
    """A customer's current NBAs (newest first, each with its ``outcomes``) and open alerts."""

    nbas: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Answer:
    """What :meth:`ActionBoard.answer` did; ``nba`` is the NBA answered (None: missing)."""

    verdict: Verdict
    nba: dict[str, Any] | None = None
    outcomes: tuple[str, ...] = ()


def judge(previous: Sequence[str], outcome: str, *, expired: bool) -> Verdict:
    """Decide what a response does given the outcomes recorded before it."""
    if outcome in previous:
        return "duplicate"
    if TERMINAL.intersection(previous):
        return "conflict"
    return "expired" if expired else "recorded"


def iso_ms(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time.

    >>> iso_ms("2026-03-02T10:00:00Z")
    1772445600000
    """
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def expiry_ms(nba: dict[str, Any], rules: BoardRules) -> int:
    """When an NBA stops being current: its ``expires_at``, else ``nba_ttl_ms`` after its time."""
    expires = nba.get("expires_at")
    return iso_ms(expires) if expires else iso_ms(nba["time"]) + rules.nba_ttl_ms


Held = tuple[int, int, dict[str, Any]]
"""An NBA or alert held: (event time ms, arrival, body)."""


def newest(items: Iterable[Held]) -> list[dict[str, Any]]:
    """Return the bodies of ``items``, newest (event time, then arrival) first."""
    return [body for _, _, body in sorted(items, key=lambda t: (t[0], t[1]), reverse=True)]


class ActionBoard(Protocol):
    """Each customer's current NBAs, open alerts and timeline (see the module docstring)."""

    rules: BoardRules

    def record(self, items: Sequence[BoardItem]) -> None:
        """Add NBAs, alerts and timeline entries, in order, within the bounds."""
        ...

    def actions(self, customer_id: str, now_ms: int) -> Actions:
        """Return the customer's current NBAs and open alerts at ``now_ms``."""
        ...

    def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        """Return the customer's last interactions, oldest first."""
        ...

    def nba(self, nba_id: str) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        """Return an NBA on the board and its recorded outcomes (None: not on it)."""
        ...

    def answer(self, nba_id: str, outcome: str, now_ms: int) -> Answer:
        """Record ``outcome`` for ``nba_id`` unless :func:`judge` refuses it."""
        ...

    def forget(self, customer_ids: Sequence[str]) -> None:
        """Drop everything the board holds of these customers and ignore their later writes.

        The customers and every id merged into them are erased: an NBA still in flight
        in the flow when the erasure passes is never written.
        """
        ...

    def merge(self, survivor: str, merged: str) -> None:
        """Read ``merged`` (and what was merged into it) as part of ``survivor`` from now on.

        Nothing moves: an item of the merged-away id still in flight in the flow when
        the merge passes lands under that id and is read with the survivor's.
        """
        ...

    def merge_all(self, merges: Sequence[tuple[str, str]]) -> None:
        """:meth:`merge` each ``(survivor, merged)`` in order (a batch's, in one go)."""
        ...


class MemoryActionBoard:
    """:class:`ActionBoard` in dicts, behind one lock (the API's threads share it)."""

    def __init__(self, rules: BoardRules | None = None) -> None:
        self.rules = rules or BoardRules()
        self._lock = threading.Lock()
        self._seq = 0
        # cid -> kind ("n", "a") -> id -> (time ms, arrival, body)
        self._items: dict[str, dict[str, dict[str, Held]]] = {}
        self._outcomes: dict[str, tuple[str, ...]] = {}
        self._owner: dict[str, str] = {}
        self._timeline: dict[str, deque[dict[str, Any]]] = {}
        self._merged: dict[str, set[str]] = {}  # survivor -> every id merged into it
        self._erased: set[str] = set()  # writes for these are dropped

    def record(self, items: Sequence[BoardItem]) -> None:
        with self._lock:
            for item in items:
                if item.customer_id in self._erased:
                    continue
                if item.kind == "t":
                    line = self._timeline.setdefault(
                        item.customer_id, deque(maxlen=self.rules.timeline_length)
                    )
                    line.append(item.body)
                    continue
                self._seq += 1
                kinds = self._items.setdefault(item.customer_id, {"n": {}, "a": {}})
                kinds[item.kind][item.item_id] = (item.time_ms, self._seq, item.body)
                if item.kind == "n":
                    self._owner[item.item_id] = item.customer_id
                self._trim(kinds[item.kind], self.rules.max_nbas if item.kind == "n" else 0)

    def _trim(self, held: dict[str, Held], nba_limit: int) -> None:
        limit = nba_limit or self.rules.max_alerts
        while len(held) > limit:
            oldest = min(held, key=lambda i: (held[i][0], held[i][1]))
            del held[oldest]
            if nba_limit:
                self._outcomes.pop(oldest, None)
                self._owner.pop(oldest, None)

    def _ids(self, customer_id: str) -> list[str]:
        return [customer_id, *sorted(self._merged.get(customer_id, ()))]

    def actions(self, customer_id: str, now_ms: int) -> Actions:
        rules = self.rules
        with self._lock:
            nbas, alerts = [], []
            for cid in self._ids(customer_id):
                kinds = self._items.get(cid, {"n": {}, "a": {}})
                for nba_id, (t, seq, body) in kinds["n"].items():
                    done = self._outcomes.get(nba_id, ())
                    if expiry_ms(body, rules) > now_ms and not TERMINAL.intersection(done):
                        nbas.append((t, seq, {**body, "outcomes": list(done)}))
                alerts += [e for e in kinds["a"].values() if e[0] + rules.alert_ttl_ms > now_ms]
        return Actions(newest(nbas)[: rules.max_nbas], newest(alerts)[: rules.max_alerts])

    def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            lines = [list(self._timeline.get(cid, ())) for cid in self._ids(customer_id)]
        return merged_timeline(lines, self.rules.timeline_length)

    def nba(self, nba_id: str) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        with self._lock:
            owner = self._owner.get(nba_id)
            if owner is None:
                return None
            return self._items[owner]["n"][nba_id][2], self._outcomes.get(nba_id, ())

    def answer(self, nba_id: str, outcome: str, now_ms: int) -> Answer:
        with self._lock:
            owner = self._owner.get(nba_id)
            if owner is None:
                return Answer("missing")
            body = self._items[owner]["n"][nba_id][2]
            previous = self._outcomes.get(nba_id, ())
            verdict = judge(previous, outcome, expired=expiry_ms(body, self.rules) <= now_ms)
            if verdict == "recorded":
                previous = (*previous, outcome)
                self._outcomes[nba_id] = previous
            return Answer(verdict, body, previous)

    def merge(self, survivor: str, merged: str) -> None:
        with self._lock:
            into = self._merged.setdefault(survivor, set())
            into.update({merged, *self._merged.pop(merged, set())})
            into.discard(survivor)

    def merge_all(self, merges: Sequence[tuple[str, str]]) -> None:
        for survivor, merged in merges:
            self.merge(survivor, merged)

    def forget(self, customer_ids: Sequence[str]) -> None:
        with self._lock:
            for cid in [c for customer in customer_ids for c in self._ids(customer)]:
                for nba_id in self._items.pop(cid, {"n": {}})["n"]:
                    self._outcomes.pop(nba_id, None)
                    self._owner.pop(nba_id, None)
                self._timeline.pop(cid, None)
                self._merged.pop(cid, None)
                self._erased.add(cid)


def merged_timeline(lines: Sequence[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Timelines of one customer's ids as one: the last ``limit`` entries, by time then id.

    >>> merged_timeline([[{"time": "2026-03-02T10:00:00+00:00", "id": "b"}],
    ...                  [{"time": "2026-03-01T10:00:00Z", "id": "a"}]], 5)[0]["id"]
    'a'
    """
    if len(lines) == 1:
        return lines[0][-limit:]
    entries = [e for line in lines for e in line]
    return sorted(entries, key=lambda e: (iso_ms(str(e["time"])), str(e["id"])))[-limit:]
