"""Profile-store fixtures: both implementations, a real Redis, and a graph checker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import cast

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from state.hashing import Hasher
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from state.store import IdentityPolicy, ProfileStore

REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = "start Redis with `bash scripts/services.sh start`"
#: The local Redis Cluster of scripts/redis_cluster.sh (3 primaries, 3 replicas).
CLUSTER_URL = "redis://127.0.0.1:7001/0"
START_CLUSTER = "start it with `bash scripts/redis_cluster.sh start` (make services does)"

StoreFactory = Callable[..., ProfileStore]


class FakeClock:
    """A wall clock for stores (seconds, as ``time.time``) that moves only when told."""

    def __init__(self, at: float = 1_750_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis; fails (never skips) when it does not answer."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    problem = None
    try:
        client.ping()
    except redis.RedisError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except: no chained traceback in the report
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({problem}): {START_REDIS}", pytrace=False
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def cluster_client() -> Iterator[RedisCluster]:
    """The local Redis Cluster; fails (never skips) when it does not answer."""
    problem = None
    try:
        client = RedisCluster.from_url(CLUSTER_URL, socket_connect_timeout=2)
        client.ping()
    except (redis.RedisError, RedisClusterException) as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(
            f"no Redis Cluster at {CLUSTER_URL} ({problem}): {START_CLUSTER}", pytrace=False
        )
    yield client
    client.close()


def delete_prefix(client: redis.Redis | RedisCluster, prefix: str) -> None:
    # The prefix is a fresh uuid, so it needs no glob escaping.
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if isinstance(client, RedisCluster):  # keys of many slots: one UNLINK each, pipelined
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for key in keys:
            pipe.unlink(key)
        pipe.execute()
        return
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_client, prefix)


@pytest.fixture(params=["memory", "redis", "cluster"])
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Makes stores of one kind: ``factory(policy=None, hasher=None, rules=None,
    clock=None)`` (a clock in seconds, as ``time.time``: the real one when None, the
    server's ``TIME`` for Redis).

    Each Redis store gets its own prefix, so two stores of one test are as
    independent as two memory stores.
    """
    made: list[tuple[ProfileStore, str | None]] = []
    client: redis.Redis | RedisCluster | None = None
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
    elif request.param == "cluster":
        client = request.getfixturevalue("cluster_client")

    def factory(
        policy: IdentityPolicy | None = None,
        hasher: Hasher | None = None,
        rules: ProfileRules | None = None,
        clock: Callable[[], float] | None = None,
    ) -> ProfileStore:
        store: ProfileStore
        if client is None:
            store = MemoryProfileStore(policy, hasher, rules, clock or time.time)
            made.append((store, None))
        else:
            prefix = f"test:{uuid.uuid4().hex[:12]}:"
            store = RedisProfileStore(
                client, prefix, policy=policy, hasher=hasher, rules=rules, clock=clock
            )
            made.append((store, prefix))
        return store

    yield factory
    # Every Redis contract test doubles as a consistency check of the graph it left.
    problems: list[str] = []
    for store, prefix in made:
        store.close()
        if client is not None and prefix is not None:
            problems += _graph_problems(client, getattr(store, "key_prefix", prefix))
            delete_prefix(client, prefix)
    if problems:
        pytest.fail("inconsistent identity graph:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def store(store_factory: StoreFactory) -> ProfileStore:
    """A store with the default policy, memory or Redis."""
    return store_factory()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _members(client: redis.Redis | RedisCluster, key: bytes | str) -> list[bytes | str]:
    """A sorted set's members (without scores, so never tuples)."""
    return cast(list[bytes | str], client.zrange(key, 0, -1))


def _graph_problems(client: redis.Redis | RedisCluster, prefix: str) -> list[str]:
    """Everything wrong with the identity graph under ``prefix`` (empty: consistent).

    Checks that links and member sets agree both ways, that the per-type counters
    match the sets, that no customer is empty, and that every alias reaches a
    live customer in one hop (merges keep them flat), so there are no cycles.
    """
    ids: dict[str, str] = {}
    customers: dict[str, dict[str, str]] = {}
    members: dict[str, set[str]] = {}
    merged: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    profiles: set[str] = set()
    outcomes: dict[str, str] = {}
    marks: dict[str, str] = {}
    buckets: dict[str, list[int]] = {"outcomes": [], "marks": []}
    newest: dict[str, int] = {}
    problems: list[str] = []
    shared: set[str] = set()
    for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
        key = _text(raw_key)[len(prefix) :]
        kind, _, rest = key.partition(":")
        if kind == "id":
            ids[rest] = _text(client.get(raw_key) or b"")
        elif kind == "alias":
            aliases[rest] = _text(client.get(raw_key) or b"")
        elif kind == "cust" and rest.endswith(":ids"):
            members[rest[: -len(":ids")]] = {_text(m) for m in client.smembers(raw_key)}
        elif kind == "cust" and rest.endswith(":merged"):
            merged[rest[: -len(":merged")]] = {_text(m) for m in client.smembers(raw_key)}
        elif kind == "cust":
            customers[rest] = {_text(f): _text(v) for f, v in client.hgetall(raw_key).items()}
        elif kind == "prof" and rest == "pending":
            profiles.update(_text(m) for m in _members(client, raw_key))
        elif kind == "prof":
            profiles.add(rest.removesuffix(":recent").removesuffix(":applied"))
        elif kind in ("outcomes", "marks") and rest == "at":
            newest[kind] = int(_text(client.get(raw_key) or b""))
        elif kind in ("outcomes", "marks") and rest.lstrip("-").isdigit():
            # a wall-clock log bucket: event id -> "<wall ms>|<value>"
            buckets[kind].append(int(rest))
            log = outcomes if kind == "outcomes" else marks
            for e, v in client.hgetall(raw_key).items():
                ms, bar, value = _text(v).partition("|")
                if not (bar and ms.isdigit()):
                    problems.append(f"{kind} record of {_text(e)} without its time: {_text(v)}")
                log[_text(e)] = value
        elif kind == "erased" and rest == "":
            pass  # customer ids erased within the retention (any id: they are gone)
        elif kind == "park":
            pass  # parked journeys (state/parking.py): the journey step's, not the graph's
        elif kind in ("board", "boardnba"):
            pass  # the action board (state/redis_actions.py): the API's, not the graph's
        elif kind == "iv" and rest == "":
            pass  # the counter of identifier versions (a customer's 'iv' field)
        elif kind == "shared":
            shared.add(rest)
            if int(_text(client.get(raw_key) or b"0")) < 2:
                msg = f"shared {rest} counts fewer than 2 customers"
                raise AssertionError(msg)
        elif kind == "claims":
            if client.exists(f"{prefix}shared:{rest}"):
                msg = f"claims of {rest}, which is already shared"
                raise AssertionError(msg)
        else:
            msg = f"unexpected key {key}"
            raise AssertionError(msg)

    problems.extend(
        f"profile data of {cid}, which is not a live customer"
        for cid in sorted(profiles - set(customers))
    )
    # wall-clock logs: at most the three buckets a current record can be in, below the
    # newest one written
    for kind, numbers in buckets.items():
        if numbers and (kind not in newest or min(numbers) < newest[kind] - 2):
            problems.append(f"{kind} buckets {sorted(numbers)}, the newest at {newest.get(kind)}")
    # recorded outcomes: every record is a reply as the script sends it (a customer id,
    # "+" one, or a 7-element array); entries and customers may name erased customers
    # (dropped when the event is seen again); applied-event marks name a customer id
    problems.extend(
        f"applied mark of {e} names no customer id: {c}"
        for e, c in sorted(marks.items())
        if not c.startswith("cust-")
    )
    for event_id, text in outcomes.items():
        if not text.startswith("["):
            if not text.removeprefix("+").startswith("cust-"):
                problems.append(f"recorded outcome of {event_id} is not a customer: {text}")
        elif len(json.loads(text)) != 7:
            problems.append(f"recorded outcome of {event_id} is not a 7-element reply: {text}")
    # a shared identifier is linked only when it was its holder's last identifier
    for member in sorted(shared & set(ids)):
        if len(members.get(ids[member], set())) != 1:
            problems.append(f"shared {member} is still linked to {ids[member]}")
    for member, cid in ids.items():
        if cid not in customers:
            problems.append(f"id:{member} -> {cid}, which has no customer record")
        elif member not in members.get(cid, set()):
            problems.append(f"id:{member} -> {cid}, which does not list it")
    for cid, held in members.items():
        if cid not in customers:
            problems.append(f"identifier set of {cid}, which has no customer record")
        problems.extend(
            f"{cid} lists {m}, which links to {ids.get(m)}" for m in held if ids.get(m) != cid
        )
    for cid, record in customers.items():
        held = members.get(cid, set())
        if not held:
            problems.append(f"customer {cid} has no identifiers")
        if "created_ms" not in record or "created_by" not in record:
            problems.append(f"customer {cid} lacks created_ms/created_by")
        counts: dict[str, int] = {}
        for m in held:
            counts[m.partition(":")[0]] = counts.get(m.partition(":")[0], 0) + 1
        recorded = {f[2:]: int(v) for f, v in record.items() if f.startswith("n:")}
        if recorded != counts:
            problems.append(f"customer {cid} counters {recorded} != identifiers {counts}")
    for alias, target in aliases.items():
        if alias in customers:
            problems.append(f"alias {alias} is also a live customer")
        if target not in customers:
            problems.append(f"alias {alias} -> {target}, not a live customer (chain or orphan)")
        elif alias not in merged.get(target, set()):
            problems.append(f"alias {alias} -> {target}, which does not list it as merged")
    for cid, held_aliases in merged.items():
        if cid not in customers:
            problems.append(f"merged set of {cid}, which has no customer record")
        problems.extend(
            f"{cid} lists merged {a}, whose alias is {aliases.get(a)}"
            for a in held_aliases
            if aliases.get(a) != cid
        )
    return problems


@pytest.fixture
def graph_problems(redis_client: redis.Redis) -> Callable[[str], list[str]]:
    """``graph_problems(prefix)``: what is inconsistent in the Redis graph under a prefix."""

    def check(prefix: str) -> list[str]:
        return _graph_problems(redis_client, prefix)

    return check
