"""The action board in Redis (:mod:`state.actions` has the rules), and the board of a store.

Keys (``prefix`` as the profile store's): ``board:<cid>`` hash (``n:<id>`` NBA,
``a:<id>`` alert, ``o:<id>`` outcomes recorded, comma-separated), ``board:<cid>:n`` and
``board:<cid>:a`` sorted sets (id by event time ms, for the bounds: ``lua/board.lua``),
``board:<cid>:t`` list (timeline), ``board:<cid>:m`` set (the ids merged into it),
``board:<cid>:x`` (erased: writes for it are dropped) and ``boardnba:<nba id>`` ->
customer id. A recorded batch is one pipelined round trip of one script call (one per slot on a
cluster) and the NBA pointers (two round trips when it wrote NBAs of
an erased customer: their pointers go again); a batch of merges is two (read the
merged ids' sets, then write); a read is one per customer id (two with merged ids).

On a Redis Cluster the keys carry a hash tag of one of :data:`BOARD_BUCKETS` buckets
picked by the customer id (``board:{b<n>}:<cid>``, ``board:{b<n>}:<cid>:n``, ...): one
customer's keys share a slot (its script and ``WATCH`` need that), the buckets spread
over the primaries, and a batch's writes are one script call per bucket (a tag per
customer made it one call per customer, each with its own script set-up); a pipeline
goes to every primary it names at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any, cast
from weakref import WeakKeyDictionary

import orjson
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from state.actions import (
    TERMINAL,
    ActionBoard,
    Actions,
    Answer,
    BoardItem,
    BoardRules,
    Held,
    MemoryActionBoard,
    expiry_ms,
    judge,
    merged_timeline,
    newest,
)
from state.memory import MemoryProfileStore
from state.redis_store import Client, RedisProfileStore, execute
from state.store import ProfileStore

_RECORD = (files("state") / "lua" / "board.lua").read_text(encoding="utf-8")
#: Hash-tag buckets of the board's keys on a cluster: at most this many record calls per
#: batch, spread over up to this many slots (so primaries).
BOARD_BUCKETS = 64


def board_bucket(customer_id: str) -> int:
    """Return the bucket of a customer's board keys on a cluster (CRC16, as Redis slots).

    >>> board_bucket("c1"), board_bucket("c1") == board_bucket("c1")
    (11, True)
    """
    return key_slot(customer_id.encode()) % BOARD_BUCKETS


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _outcomes(value: bytes | str | None) -> tuple[str, ...]:
    return tuple(_text(value).split(",")) if value else ()


class RedisActionBoard:
    """:class:`state.actions.ActionBoard` in Redis."""

    def __init__(self, client: Client, prefix: str, rules: BoardRules | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules or BoardRules()
        self._record = client.register_script(_RECORD)
        self._tagged = isinstance(client, RedisCluster)

    def _key(self, customer_id: str) -> str:
        if self._tagged:
            return f"{self.prefix}board:{{b{board_bucket(customer_id)}}}:{customer_id}"
        return f"{self.prefix}board:{customer_id}"

    def _ids(self, customer_id: str) -> list[str]:
        merged = self.client.smembers(f"{self._key(customer_id)}:m")
        return [customer_id, *sorted(map(_text, merged))]

    def record(self, items: Sequence[BoardItem]) -> None:
        if not items:
            return
        rules = self.rules
        by_customer: dict[str, list[str | int]] = {}
        for item in items:
            body = orjson.dumps(item.body).decode()
            by_customer.setdefault(item.customer_id, []).extend(
                (item.kind, item.item_id, item.time_ms, body)
            )
        # one call per slot (on one server, one call): a cluster call's keys share a slot
        calls: dict[int, tuple[list[str], list[str | int], list[str]]] = {}
        head: list[str | int] = [rules.max_nbas, rules.max_alerts, rules.timeline_length]
        head.append(rules.retention_seconds)
        for cid, added in by_customer.items():
            key = self._key(cid)
            slot = key_slot(key.encode()) if self._tagged else 0
            keys, args, owners = calls.setdefault(slot, ([], list(head), []))
            owners.append(cid)
            keys += (key, f"{key}:n", f"{key}:a", f"{key}:t", f"{key}:x")
            args += (len(added) // 4, *added)
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in calls.values():
            if self._tagged:  # by SHA: a node that does not know it answers NOSCRIPT
                pipe.execute_command("EVALSHA", self._record.sha, len(keys), *keys, *args)
            else:
                self._record(keys, args, client=pipe)
        # The NBA pointers live in other slots than their customer's board: set here,
        # taken back below for a customer whose script found it erased.
        nbas = [(item.item_id, item.customer_id) for item in items if item.kind == "n"]
        for nba_id, cid in nbas:
            pipe.set(self._pointer(nba_id), cid, ex=rules.retention_seconds)
        replies = execute(self.client, pipe, raise_on_error=not self._tagged)
        if self._tagged:
            replies = self._known_script(replies, list(calls.values()))
        replies = replies[: len(calls)]
        customers = [cid for _, _, owners in calls.values() for cid in owners]
        kept = [wrote for reply in replies for wrote in reply]
        erased = {cid for cid, wrote in zip(customers, kept, strict=True) if not wrote}
        if erased and any(cid in erased for _, cid in nbas):
            pipe = self.client.pipeline(transaction=False)
            for nba_id, cid in nbas:
                if cid in erased:
                    pipe.delete(self._pointer(nba_id))
            execute(self.client, pipe)

    def _known_script(
        self, replies: list[Any], calls: list[tuple[list[str], list[str | int], list[str]]]
    ) -> list[Any]:
        """Re-send the record calls of a cluster pipeline that met NOSCRIPT, the script loaded.

        A node that restarted or a replica promoted in a failover may not know the
        script; such a call did nothing, so sending it again after ``SCRIPT LOAD`` (on
        every primary) applies it once. Any other error goes up.
        """
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                raise reply
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self.client.script_load(self._record.script)
            pipe = self.client.pipeline(transaction=False)
            for i in missing:
                keys, args, _ = calls[i]
                pipe.execute_command("EVALSHA", self._record.sha, len(keys), *keys, *args)
            for i, reply in zip(missing, execute(self.client, pipe), strict=True):
                replies[i] = reply
        return replies

    def _pointer(self, nba_id: str) -> str:
        return f"{self.prefix}boardnba:{nba_id}"

    def actions(self, customer_id: str, now_ms: int) -> Actions:
        rules = self.rules
        pipe = self.client.pipeline(transaction=False)
        for cid in self._ids(customer_id):
            key = self._key(cid)
            pipe.hgetall(key)
            pipe.zrange(f"{key}:n", 0, -1, withscores=True)
            pipe.zrange(f"{key}:a", 0, -1, withscores=True)
        replies = execute(self.client, pipe)
        nbas: list[Held] = []
        alerts: list[Held] = []
        for at in range(0, len(replies), 3):
            fields, nba_order, alert_order = replies[at : at + 3]
            h = {_text(k): v for k, v in fields.items()}
            for seq, (raw_id, score) in enumerate(nba_order):
                nba_id = _text(raw_id)
                body, done = h.get(f"n:{nba_id}"), _outcomes(h.get(f"o:{nba_id}"))
                if body is None or TERMINAL.intersection(done):
                    continue
                nba = orjson.loads(body)
                if expiry_ms(nba, rules) > now_ms:
                    nbas.append((int(score), seq, {**nba, "outcomes": list(done)}))
            for seq, (raw_id, score) in enumerate(alert_order):
                body = h.get(f"a:{_text(raw_id)}")
                if body is not None and int(score) + rules.alert_ttl_ms > now_ms:
                    alerts.append((int(score), seq, orjson.loads(body)))
        return Actions(newest(nbas)[: rules.max_nbas], newest(alerts)[: rules.max_alerts])

    def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        for cid in self._ids(customer_id):
            pipe.lrange(f"{self._key(cid)}:t", 0, -1)
        lines = [[orjson.loads(e) for e in line] for line in execute(self.client, pipe)]
        return merged_timeline(lines, self.rules.timeline_length)

    def _owner(self, nba_id: str) -> str | None:
        owner = self.client.get(self._pointer(nba_id))
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
                    pipe.watch(key)
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
                    execute(self.client, pipe)
                    return Answer(verdict, nba, previous)
                except redis.WatchError:
                    continue  # another replica wrote this customer's board: judge again

    def merge(self, survivor: str, merged: str) -> None:
        self.merge_all([(survivor, merged)])

    def merge_all(self, merges: Sequence[tuple[str, str]]) -> None:
        """Apply merges in order, as :meth:`merge` one by one would, in two round trips.

        The merged ids' sets are read in one pipeline; the chain (c3 into c2, then c2
        into c1) is followed here; one pipeline writes each survivor's additions and
        deletes the merged-away sets.
        """
        sources = list(dict.fromkeys(m for s, m in merges if s != m))
        if not sources:
            return
        pipe = self.client.pipeline(transaction=False)
        for cid in sources:
            pipe.smembers(f"{self._key(cid)}:m")
        got_sets = execute(self.client, pipe)
        held = {c: set(map(_text, got)) for c, got in zip(sources, got_sets, strict=True)}
        added: dict[str, set[str]] = {}  # survivor -> ids its set gains
        dropped: set[str] = set()  # sets deleted (and not written again)
        for survivor, merged in merges:
            if survivor == merged:
                continue
            ids = {merged, *held.pop(merged, ()), *added.pop(merged, ())} - {survivor}
            dropped.add(merged)
            added.setdefault(survivor, set()).update(ids)
        pipe = self.client.pipeline(transaction=False)
        for cid in sorted(dropped - set(added)):
            pipe.delete(f"{self._key(cid)}:m")
        for cid, ids in added.items():
            into = f"{self._key(cid)}:m"
            if cid in dropped:  # merged away earlier in the batch, a survivor again
                pipe.delete(into)
            if ids:
                pipe.sadd(into, *sorted(ids))
                pipe.expire(into, self.rules.retention_seconds)
        execute(self.client, pipe)

    def forget(self, customer_ids: Sequence[str]) -> None:
        for cid in [c for customer in customer_ids for c in self._ids(customer)]:
            key = self._key(cid)
            ids = cast(list[bytes | str], self.client.zrange(f"{key}:n", 0, -1))
            pipe = self.client.pipeline(transaction=False)
            for name in (key, f"{key}:n", f"{key}:a", f"{key}:t", f"{key}:m"):
                pipe.delete(name)  # one key a DEL: a cluster pipeline takes no more
            pipe.set(f"{key}:x", "1", ex=self.rules.retention_seconds)  # later writes: none
            for raw in ids:
                pipe.delete(self._pointer(_text(raw)))
            execute(self.client, pipe)


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
