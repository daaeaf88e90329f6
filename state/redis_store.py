"""The identity graph in Redis: one EVALSHA per batch, atomic per batch.

The graph walk is ``state/lua/identity.lua`` (key layout in its header); this
module prepares requests (block, hash, order, new ids: Redis Lua has no BLAKE2b),
ships a batch as the script's arguments and turns the reply into results with the
same code the in-memory twin uses.

The script is called by its SHA1, computed locally; a server that does not know it
(restart, SCRIPT FLUSH, failover) answers NOSCRIPT and gets it loaded once. So a
batch costs exactly one round trip once the script is cached.

On a Redis Cluster (a ``redis.cluster.RedisCluster`` client, or a
``redis+cluster://`` URL) every key of the store carries one hash tag, the prefix's
(``cx:{cx:}id:...``): the identity graph and the profiles it merges stay in one slot,
so each call stays one atomic script on one primary (docs/SCALING.md, "Redis
Cluster", says why and where that ceiling lies). The call names that slot by its one
declared key.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any, cast

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, NoScriptError

from schemas.outputs import ProfileSnapshot
from schemas.vocabulary import ScriptOp
from state.hashing import Hasher, PlainIdentifiers
from state.outcomes import Entries, wall_ms
from state.profile_hash import ProfileDelta, ProfileRules, parse_withdrawn
from state.profile_snapshot import snapshot_from_hash
from state.store import (
    ErasedReport,
    IdentityPolicy,
    Outcome,
    ResolveRequest,
    ResolveResult,
    assemble,
    group_members,
    prepare,
)

_IDENTITY = (files("state") / "lua" / "identity.lua").read_text(encoding="utf-8")
_PROFILE = (files("state") / "lua" / "profile.lua").read_text(encoding="utf-8")
# One script: the "#!lua" line first, then the profile library the walk folds with.
_SHEBANG, _, _BODY = _IDENTITY.partition("\n")
SCRIPT = f"{_SHEBANG}\n{_PROFILE}\n{_BODY}"
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
SCAN_COUNT = 1000
#: Most customers whose identifiers a store keeps for its snapshots (see ``_ids``).
IDS_CACHE_MAX = 200_000
#: URL schemes of a Redis Cluster (``CX_REDIS__CLUSTER=true`` selects it for any URL).
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")

Client = redis.Redis | RedisCluster


def cluster_url(url: str) -> str | None:
    """Return the node URL of a ``redis+cluster://`` URL (None: not a cluster URL).

    >>> cluster_url("redis+cluster://127.0.0.1:7001/0"), cluster_url("redis://db:6379/0")
    ('redis://127.0.0.1:7001/0', None)
    """
    for scheme in CLUSTER_SCHEMES:
        if url.startswith(scheme):
            return scheme.replace("+cluster", "") + url[len(scheme) :]
    return None


def connect(url: str, **kwargs: Any) -> Client:
    """Return a client for ``url``: a cluster client for a ``redis+cluster://`` URL."""
    node = cluster_url(url)
    if node is not None:
        return RedisCluster.from_url(node, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def execute(client: Client, pipe: Any, *, raise_on_error: bool = True) -> list[Any]:
    """Run the pipeline ``pipe`` of ``client``; on a cluster, a lost node re-reads the slot map.

    ``raise_on_error=False`` returns a command's error in its place (a connection
    error still raises).

    A cluster pipeline that meets a dead primary raises ``ConnectionError`` and keeps
    its old slot map, so the flow's retries (:mod:`flows.app.retry`) would send every
    attempt to the dead node even after a replica took its slots over. Re-reading the
    map before the error goes up lets the next attempt reach the new primary. (Single
    commands need none of this: the cluster client re-reads the map for them itself.)
    """
    try:
        return cast(list[Any], pipe.execute(raise_on_error=raise_on_error))
    except (redis.ConnectionError, redis.TimeoutError, ClusterDownError):
        if isinstance(client, RedisCluster):
            with contextlib.suppress(redis.RedisError):
                client.nodes_manager.initialize()
        raise


def graph_prefix(prefix: str, cluster: bool) -> str:
    """Return the prefix of the store's keys: on a cluster, one hash tag for all of them.

    >>> graph_prefix("cx:", False), graph_prefix("cx:", True)
    ('cx:', 'cx:{cx:}')
    """
    return f"{prefix}{{{prefix}}}" if cluster else prefix


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json_array(items: list[bytes] | list[str]) -> bytes | str:
    """JSON texts joined into one array text (bytes or str, as the client decodes).

    >>> _json_array([b'{"a":1}', b'{"b":2}']), _json_array([])
    (b'[{"a":1},{"b":2}]', b'[]')
    """
    if items and isinstance(items[0], str):
        return "[" + ",".join(items) + "]"
    return b"[" + b",".join(cast(list[bytes], items)) + b"]"


def _grouped(members: list[str]) -> dict[str, list[str]]:
    """Group ``"type:value"`` members as ``{type: values}``, as a snapshot needs them.

    A snapshot orders types by name (no policy ranking, unlike :func:`group_members`).
    """
    grouped: dict[str, list[str]] = {}
    for member in members:
        id_type, _, value = member.partition(":")
        grouped.setdefault(id_type, []).append(value)
    return grouped


def _escape_glob(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisProfileStore:
    """:class:`state.store.ProfileStore` on a Redis primary.

    Parameters
    ----------
    client
        A ``redis.Redis`` or ``redis.cluster.RedisCluster`` (credentials, TLS and
        timeouts are set on it) or a URL (``redis+cluster://``: a cluster). A client
        made from a URL is closed by :meth:`close`; a given one is not.
    prefix
        Every key starts with it, so stores (and test runs) can share a server.
        On a cluster the keys start with :attr:`key_prefix`, the prefix and its tag.
    policy, hasher, rules
        As for :class:`state.memory.MemoryProfileStore`.
    clock
        None (production): outcomes and applied-event marks are stamped with the
        server's ``TIME``, one clock for every process of a flow. Tests pass a clock
        (seconds, like ``time.time``), sent with each call, to control retention.

    Attributes
    ----------
    round_trips
        Network calls made so far: one per ``resolve_batch`` with anything to link.
    """

    def __init__(  # noqa: PLR0913 (the store's rules and injectables, keyword-only)
        self,
        client: Client | str,
        prefix: str = "cx:",
        *,
        policy: IdentityPolicy | None = None,
        hasher: Hasher | None = None,
        rules: ProfileRules | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._owns_client = isinstance(client, str)
        self._client = connect(client) if isinstance(client, str) else client
        self.cluster = isinstance(self._client, RedisCluster)
        self.prefix = prefix
        self.key_prefix = graph_prefix(prefix, self.cluster)
        # the one declared key of each call: routes it to the graph's slot on a cluster
        self._keys: tuple[str, ...] = (self.key_prefix,) if self.cluster else ()
        self.policy = policy or IdentityPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self.rules = rules or ProfileRules()
        self.clock = clock
        self.round_trips = 0
        # Identifiers of published customers, with the version the script gave them:
        # the profile call sends the versions of its customers and gets identifiers
        # back only where they changed (SMEMBERS and their parsing per snapshot cost
        # more than the rest of a snapshot's reply). Insertion order is age: when full,
        # the older half goes.
        self._ids: dict[str, tuple[str, dict[str, list[str]]]] = {}
        self._policy_json = orjson.dumps(
            {
                "priority": self.policy.priority,
                "limits": dict(self.policy.limits),
                "default_limit": self.policy.default_limit,
                "recent_limit": self.rules.recent_limit,
                "weak": self.policy.weak_types,
                "shared": dict(self.policy.shared_after),
                "retention": self.rules.outcome_retention_ms,
            }
        )

    def resolve_batch(self, requests: Sequence[ResolveRequest]) -> list[ResolveResult]:
        prepared = [prepare(request, self.policy, self.hasher) for request in requests]
        arguments: list[str | int] = []
        for p in prepared:
            if p.members:
                arguments += (p.event_id, p.event_time_ms, p.new_id, len(p.members), *p.members)
                arguments.append(len(p.consent))
                for purpose, granted in p.consent:
                    arguments += (purpose, granted)
        replies: list[Any] = (
            self._call("resolve", self._policy_json, self._now(), *arguments) if arguments else []
        )
        outcomes = iter(replies)
        results = []
        for p in prepared:
            if not p.members:
                results.append(assemble(p, Outcome(None), self.policy))
                continue
            reply = _text(next(outcomes))
            if reply[:1] == "[":
                results.append(assemble(p, _outcome(reply), self.policy))
            else:  # most replies: a customer id ("+" created), nothing else to report
                created = reply[:1] == "+"
                cid = reply[1:] if created else reply
                results.append(ResolveResult(cid, created, (), (), p.blocked))
        return results

    def lookup(self, id_type: str, value: str) -> str | None:
        member = f"{id_type}:{self.hasher.hash(id_type, value)}"
        owner = self._call("lookup", member)
        return None if owner is None else _text(owner)

    def canonical(self, customer_id: str) -> str:
        return _text(self._call("canonical", customer_id))

    def identifiers(self, customer_id: str) -> dict[str, list[str]]:
        members = [_text(m) for m in self._call("identifiers", customer_id)]
        return group_members(members, self.policy)

    def customers(self) -> list[str]:
        # SCAN rather than a registry set: a set every batch writes would be the
        # one hot key that stops the graph from ever being sharded.
        head = f"{self.key_prefix}cust:"
        pattern = _escape_glob(head) + "*"
        found: list[str] = []
        if isinstance(self._client, RedisCluster):  # every primary, each to its end
            self.round_trips += 1
            for key in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
                customer_id = _text(key)[len(head) :]
                if ":" not in customer_id:
                    found.append(customer_id)
            return sorted(found)
        cursor = 0
        while True:
            self.round_trips += 1
            cursor, keys = self._client.scan(cursor, match=pattern, count=SCAN_COUNT)
            for key in keys:
                customer_id = _text(key)[len(head) :]
                if ":" not in customer_id:
                    found.append(customer_id)
            if cursor == 0:
                return sorted(found)

    def erase(self, customer_id: str) -> ErasedReport:
        retention = self.rules.outcome_retention_ms
        cid, existed, members, aliases = self._call("erase", customer_id, retention, self._now())
        return ErasedReport(
            _text(cid),
            bool(existed),
            tuple(sorted(_text(m) for m in members)),
            tuple(sorted(_text(a) for a in aliases)),
        )

    def apply_profiles(self, deltas: Sequence[ProfileDelta]) -> list[ProfileSnapshot]:
        if not deltas:
            return []
        rules = self.rules
        arguments: list[str | int] = [
            rules.emit_interval_ms,
            1 if rules.publish else 0,
            rules.recent_limit,
            rules.idempotence_window_ms,
            rules.outcome_retention_ms,
            self._now(),
        ]
        held = self._ids
        versions: list[str] = []
        for cid in dict.fromkeys(delta.customer_id for delta in deltas):
            known = held.get(cid)
            if known is not None:
                versions += (cid, known[0])
        arguments.append(len(versions) // 2)
        arguments += versions
        for delta in deltas:
            arguments += delta.to_args()
        return self._snapshots(self._call("profile", *arguments))

    def profile(self, customer_id: str) -> ProfileSnapshot | None:
        row = self._call("profile_get", customer_id)
        return None if row is None else self._snapshots([row])[0]

    def flush_pending(self) -> list[ProfileSnapshot]:
        return self._snapshots(self._call("flush"))

    def _snapshots(self, rows: list[list[Any]]) -> list[ProfileSnapshot]:
        # rows as read_profiles in identity.lua sends them: members None when the
        # version sent for the customer is current (then held has them)
        held = self._ids
        snapshots = []
        for raw_cid, fields, recent, members, raw_version in rows:
            cid = _text(raw_cid)
            if members is None:
                identifiers = held[cid][1]
            else:
                identifiers = _grouped([_text(m) for m in members])
                version = _text(raw_version)
                if version:
                    held.pop(cid, None)  # re-inserted: the newest
                    held[cid] = (version, identifiers)
            snapshots.append(
                snapshot_from_hash(
                    cid, orjson.loads(fields), identifiers, orjson.loads(_json_array(recent))
                )
            )
        if len(held) > IDS_CACHE_MAX:  # after the rows: each may need what it was sent
            for old in list(held)[: IDS_CACHE_MAX // 2]:
                del held[old]
        return snapshots

    def _now(self) -> str | int:
        """Return the wall-clock ms to stamp records with: '' lets the script read TIME."""
        return "" if self.clock is None else wall_ms(self.clock)

    @property
    def client(self) -> Client:
        """The Redis client (the action board, :mod:`state.actions`, shares it)."""
        return self._client

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _call(self, op: ScriptOp, *arguments: str | bytes | int) -> Any:
        self.round_trips += 1
        keys, prefix = self._keys, self.key_prefix
        try:
            return self._client.evalsha(SCRIPT_SHA, len(keys), *keys, prefix, op, *arguments)
        except NoScriptError:
            self.round_trips += 2
            self._client.script_load(SCRIPT)  # a cluster client loads it on every primary
            return self._client.evalsha(SCRIPT_SHA, len(keys), *keys, prefix, op, *arguments)


def _outcome(reply: bytes | str) -> Outcome:
    text = _text(reply)
    if text.startswith("+"):
        return Outcome(text[1:], created=True)
    if not text.startswith("["):
        return Outcome(text)
    # [customer ("" none), created, merged, refused, limited, optout, shared]
    # (cjson writes an empty array as {}, which iterates as nothing here too)
    customer_id, created, merged, refused, limited, optout, shared = orjson.loads(text)
    entries = Entries(
        tuple((s_id, m_id, tuple(linking)) for s_id, m_id, linking in merged),
        tuple(
            (s_id, r_id, tuple(over), tuple(linking), tuple(unlinked))
            for s_id, r_id, over, linking, unlinked in refused
        ),
        tuple((s_id, member) for s_id, member in limited),
    )
    withdrawn = parse_withdrawn(optout) if optout else ()
    return Outcome(customer_id or None, bool(created), entries, withdrawn, tuple(shared))
