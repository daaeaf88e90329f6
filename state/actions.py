"""The action board: each customer's current NBAs, open alerts and journey timeline.

The flow writes it as it emits NBAs and alerts (and as its profile step sees each
interaction); the Experience API (``cxstream serve``) reads it, so any replica can
answer ``GET /v1/customers/{id}/actions`` and ``/timeline``, and records the agents'
responses on it. Two implementations keep the same rules, held together by the
contract tests (``tests/state/test_actions.py``): :class:`MemoryActionBoard` (dicts,
one process: the demo) and :class:`RedisActionBoard`.

Rules
    Items are JSON objects (the outputs as published). Per customer the board keeps
    the newest ``max_nbas`` NBAs and ``max_alerts`` alerts (by event time, then
    arrival) and the last ``timeline_length`` interactions; a customer's keys expire
    ``retention_seconds`` after the last write (Redis ``EXPIRE``), so a quiet customer
    costs nothing forever. An NBA is *current* while ``now`` is before its
    ``expires_at`` (or ``nba_ttl_ms`` after its time, when it has none) and no
    terminal outcome (accepted, rejected, dismissed) was recorded for it; an
    impression keeps it current. An alert is *open* for ``alert_ttl_ms`` after its
    time. ``now`` is the caller's: wall clock in the API, the demo's last event time
    in ``cxstream demo --serve``.

Responses (:func:`judge`)
    The same outcome twice is a duplicate (idempotent); a second, different terminal
    outcome is a conflict; an outcome for an expired NBA is refused. Recording is
    atomic (Redis ``WATCH``/``MULTI``), so two replicas cannot record two terminal
    outcomes for one NBA.

Redis keys (``prefix`` as the profile store's): ``board:<cid>`` hash (``n:<id>`` NBA,
``a:<id>`` alert, ``o:<id>`` outcomes recorded, comma-separated), ``board:<cid>:n`` and
``board:<cid>:a`` sorted sets (id by event time ms, for the bounds),
``board:<cid>:t`` list (timeline) and ``boardnba:<nba id>`` -> customer id.

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
from importlib.resources import files
from typing import Any, Literal, Protocol, cast
from weakref import WeakKeyDictionary

import orjson
import redis

from state.memory import MemoryProfileStore
from state.redis_store import RedisProfileStore
from state.store import ProfileStore

TERMINAL = frozenset({"accepted", "rejected", "dismissed"})
Verdict = Literal["recorded", "duplicate", "conflict", "expired", "missing"]
_RECORD = (files("state") / "lua" / "board.lua").read_text(encoding="utf-8")


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


def _newest(items: Iterable[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
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
        """Drop everything the board holds of these customers (erasure)."""
        ...

    def merge(self, survivor: str, merged: str) -> None:
        """Move what the board holds of ``merged`` to ``survivor`` (an identity merge)."""
        ...


class MemoryActionBoard:
    """:class:`ActionBoard` in dicts, behind one lock (the API's threads share it)."""

    def __init__(self, rules: BoardRules | None = None) -> None:
        self.rules = rules or BoardRules()
        self._lock = threading.Lock()
        self._seq = 0
        # cid -> kind -> id -> (time ms, arrival, body)
        self._items: dict[str, dict[str, dict[str, tuple[int, int, dict[str, Any]]]]] = {}
        self._outcomes: dict[str, tuple[str, ...]] = {}
        self._owner: dict[str, str] = {}
        self._timeline: dict[str, deque[dict[str, Any]]] = {}

    def record(self, items: Sequence[BoardItem]) -> None:
        with self._lock:
            for item in items:
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
                self._trim(kinds, item.kind)

    def _trim(
        self, kinds: dict[str, dict[str, tuple[int, int, dict[str, Any]]]], kind: str
    ) -> None:
        limit = self.rules.max_nbas if kind == "n" else self.rules.max_alerts
        held = kinds[kind]
        while len(held) > limit:
            oldest = min(held, key=lambda i: (held[i][0], held[i][1]))
            del held[oldest]
            if kind == "n":
                self._outcomes.pop(oldest, None)
                self._owner.pop(oldest, None)

    def actions(self, customer_id: str, now_ms: int) -> Actions:
        with self._lock:
            kinds = self._items.get(customer_id, {"n": {}, "a": {}})
            nbas = [
                (t, s, {**body, "outcomes": list(self._outcomes.get(i, ()))})
                for i, (t, s, body) in kinds["n"].items()
                if expiry_ms(body, self.rules) > now_ms
                and not TERMINAL.intersection(self._outcomes.get(i, ()))
            ]
            alerts = [
                entry
                for entry in kinds["a"].values()
                if entry[0] + self.rules.alert_ttl_ms > now_ms
            ]
        return Actions(_newest(nbas), _newest(alerts))

    def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._timeline.get(customer_id, ()))

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
            moved = self._items.pop(merged, None)
            if moved is not None:
                kinds = self._items.setdefault(survivor, {"n": {}, "a": {}})
                for kind in ("n", "a"):
                    kinds[kind].update(moved[kind])
                    self._trim(kinds, kind)
                for nba_id in kinds["n"]:
                    self._owner[nba_id] = survivor
            line = self._timeline.pop(merged, None)
            if line:
                both = merged_timeline(self._timeline.get(survivor, ()), line)
                self._timeline[survivor] = deque(both, maxlen=self.rules.timeline_length)

    def forget(self, customer_ids: Sequence[str]) -> None:
        with self._lock:
            for cid in customer_ids:
                for nba_id in self._items.pop(cid, {"n": {}})["n"]:
                    self._outcomes.pop(nba_id, None)
                    self._owner.pop(nba_id, None)
                self._timeline.pop(cid, None)


class RedisActionBoard:
    """:class:`ActionBoard` in Redis: one pipelined round trip per recorded batch."""

    def __init__(self, client: redis.Redis, prefix: str, rules: BoardRules | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules or BoardRules()
        self._record = client.register_script(_RECORD)

    def _key(self, customer_id: str) -> str:
        return f"{self.prefix}board:{customer_id}"

    def record(self, items: Sequence[BoardItem]) -> None:
        if not items:
            return
        rules, ttl = self.rules, self.rules.retention_seconds
        by_customer: dict[str, list[str | int]] = {}
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            body = orjson.dumps(item.body)
            if item.kind == "t":
                line = f"{self._key(item.customer_id)}:t"
                pipe.rpush(line, body)
                pipe.ltrim(line, -rules.timeline_length, -1)
                pipe.expire(line, ttl)
                continue
            args = by_customer.setdefault(item.customer_id, [])
            args.extend((item.kind, item.item_id, item.time_ms, body.decode()))
            if item.kind == "n":
                pipe.set(f"{self.prefix}boardnba:{item.item_id}", item.customer_id, ex=ttl)
        for cid, args in by_customer.items():
            key = self._key(cid)
            keys = [key, f"{key}:n", f"{key}:a"]
            self._record(keys, [rules.max_nbas, rules.max_alerts, ttl, *args], client=pipe)
        pipe.execute()

    def actions(self, customer_id: str, now_ms: int) -> Actions:
        key = self._key(customer_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.zrange(f"{key}:n", 0, -1, withscores=True)
        pipe.zrange(f"{key}:a", 0, -1, withscores=True)
        fields, nba_order, alert_order = pipe.execute()
        h = {_text(k): v for k, v in fields.items()}
        nbas = []
        for seq, (raw_id, score) in enumerate(nba_order):
            nba_id = _text(raw_id)
            body, outcomes = h.get(f"n:{nba_id}"), _outcomes(h.get(f"o:{nba_id}"))
            if body is None or TERMINAL.intersection(outcomes):
                continue
            nba = orjson.loads(body)
            if expiry_ms(nba, self.rules) > now_ms:
                nbas.append((int(score), seq, {**nba, "outcomes": list(outcomes)}))
        alerts = [
            (int(score), seq, orjson.loads(h[f"a:{_text(raw)}"]))
            for seq, (raw, score) in enumerate(alert_order)
            if f"a:{_text(raw)}" in h and int(score) + self.rules.alert_ttl_ms > now_ms
        ]
        return Actions(_newest(nbas), _newest(alerts))

    def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        return [orjson.loads(e) for e in self.client.lrange(f"{self._key(customer_id)}:t", 0, -1)]

    def _owner(self, nba_id: str) -> str | None:
        owner = self.client.get(f"{self.prefix}boardnba:{nba_id}")
        return None if owner is None else _text(owner)

    def nba(self, nba_id: str) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        owner = self._owner(nba_id)
        if owner is None:
            return None
        body, done = self.client.hmget(self._key(owner), [f"n:{nba_id}", f"o:{nba_id}"])
        return None if body is None else (orjson.loads(body), _outcomes(done))

    def answer(self, nba_id: str, outcome: str, now_ms: int) -> Answer:
        owner = self._owner(nba_id)
        if owner is None:
            return Answer("missing")
        key = self._key(owner)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    body, done = pipe.hmget(key, [f"n:{nba_id}", f"o:{nba_id}"])
                    if body is None:
                        return Answer("missing")
                    nba, previous = orjson.loads(body), _outcomes(done)
                    expired = expiry_ms(nba, self.rules) <= now_ms
                    verdict = judge(previous, outcome, expired=expired)
                    if verdict != "recorded":
                        return Answer(verdict, nba, previous)
                    previous = (*previous, outcome)
                    pipe.multi()
                    pipe.hset(key, f"o:{nba_id}", ",".join(previous))
                    pipe.execute()
                    return Answer(verdict, nba, previous)
                except redis.WatchError:
                    continue  # another replica wrote this customer's board: judge again

    def merge(self, survivor: str, merged: str) -> None:
        key, to = self._key(merged), self._key(survivor)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.zrange(f"{key}:n", 0, -1, withscores=True)
        pipe.zrange(f"{key}:a", 0, -1, withscores=True)
        pipe.lrange(f"{key}:t", 0, -1)
        pipe.lrange(f"{to}:t", 0, -1)
        fields, nbas, alerts, line, kept = pipe.execute()
        h = {_text(k): v for k, v in fields.items()}
        kinds: tuple[tuple[Literal["n", "a"], Any], ...] = (("n", nbas), ("a", alerts))
        items = [
            BoardItem(
                kind, survivor, _text(raw), int(score), orjson.loads(h[f"{kind}:{_text(raw)}"])
            )
            for kind, order in kinds
            for raw, score in order
            if f"{kind}:{_text(raw)}" in h
        ]
        self.record(items)
        pipe = self.client.pipeline(transaction=False)
        done = {name: value for name, value in h.items() if name.startswith("o:")}
        if done:
            pipe.hset(to, mapping=cast(Any, done))
        if line:
            both = merged_timeline(map(orjson.loads, kept), map(orjson.loads, line))
            pipe.delete(f"{to}:t")
            pipe.rpush(f"{to}:t", *map(orjson.dumps, both[-self.rules.timeline_length :]))
            pipe.expire(f"{to}:t", self.rules.retention_seconds)
        pipe.delete(key, f"{key}:n", f"{key}:a", f"{key}:t")
        pipe.execute()

    def forget(self, customer_ids: Sequence[str]) -> None:
        for cid in customer_ids:
            key = self._key(cid)
            ids = cast(list[bytes | str], self.client.zrange(f"{key}:n", 0, -1))
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(key, f"{key}:n", f"{key}:a", f"{key}:t")
            for raw in ids:
                pipe.delete(f"{self.prefix}boardnba:{_text(raw)}")
            pipe.execute()


def merged_timeline(
    kept: Iterable[dict[str, Any]], moved: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Two customers' timelines as one, in time order (then event id).

    >>> merged_timeline([{"time": "2026-03-02T10:00:00+00:00", "id": "b"}],
    ...                 [{"time": "2026-03-01T10:00:00+00:00", "id": "a"}])[0]["id"]
    'a'
    """
    return sorted([*kept, *moved], key=lambda e: (iso_ms(str(e["time"])), str(e["id"])))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _outcomes(value: bytes | str | None) -> tuple[str, ...]:
    return tuple(_text(value).split(",")) if value else ()


_MEMORY_BOARDS: WeakKeyDictionary[MemoryProfileStore, MemoryActionBoard] = WeakKeyDictionary()


def board_for(store: ProfileStore, rules: BoardRules | None = None) -> ActionBoard:
    """Return the board kept next to ``store``: the same Redis and prefix, or one per memory store.

    The flow and the API of one process (``cxstream demo --serve``) so share a
    memory store's board. A wrapper holding its store as ``store`` (the flow's
    retrying store) is looked through.
    """
    while not isinstance(store, RedisProfileStore | MemoryProfileStore) and hasattr(store, "store"):
        store = store.store
    if isinstance(store, RedisProfileStore):
        return RedisActionBoard(store.client, store.prefix, rules)
    if isinstance(store, MemoryProfileStore):
        board = _MEMORY_BOARDS.get(store)
        if board is None:
            board = _MEMORY_BOARDS[store] = MemoryActionBoard(rules)
        return board
    msg = f"no action board for a {type(store).__name__}"
    raise TypeError(msg)
