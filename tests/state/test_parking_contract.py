"""One contract for every ParkingStore: the in-memory twin and Redis behave alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from state.parking import MemoryParkingStore, ParkingStore, RedisParkingStore
from tests.state.conftest import delete_prefix


@pytest.fixture(params=["memory", "redis", "cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[ParkingStore]:
    if request.param == "memory":
        yield MemoryParkingStore()
        return
    client: redis.Redis | RedisCluster = request.getfixturevalue(
        "cluster_client" if request.param == "cluster" else "redis_client"
    )
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisParkingStore(client, prefix, "lineage-a", ttl_seconds=600)
    delete_prefix(client, prefix)


def test_versions_are_kept_oldest_first_and_dropped_from_the_front(store: ParkingStore) -> None:
    assert store.versions("c1") == []
    store.append("c1", b"v1", drop=0)
    store.append("c1", b"v2", drop=0)
    store.append("c1", b"v3", drop=1)
    assert store.versions("c1") == [b"v2", b"v3"]
    store.append("c1", b"v4", drop=5)  # more than there are: only the new one stays
    assert store.versions("c1") == [b"v4"]
    assert store.versions("c2") == []


def test_keep_first_replace_and_delete(store: ParkingStore) -> None:
    for version in (b"a", b"b", b"c"):
        store.append("c1", version, drop=0)
    store.keep_first("c1", 2)
    assert store.versions("c1") == [b"a", b"b"]
    store.replace("c1", [b"x", b"\x00binary\xff"])
    assert store.versions("c1") == [b"x", b"\x00binary\xff"]
    store.keep_first("c1", 0)
    assert store.versions("c1") == []
    store.replace("c1", [b"y"])
    store.delete("c1")
    store.replace("c2", [])
    assert store.versions("c1") == store.versions("c2") == []


def test_redis_keys_are_scoped_by_lineage_and_expire(redis_client: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    a = RedisParkingStore(redis_client, prefix, "lineage-a", ttl_seconds=600)
    b = RedisParkingStore(redis_client, prefix, "lineage-b", ttl_seconds=600)
    try:
        a.append("c1", b"from a", drop=0)
        assert b.versions("c1") == []  # a run from scratch never reads another run's
        ttl = redis_client.ttl(f"{prefix}park:lineage-a:c1")
        assert isinstance(ttl, int) and 0 < ttl <= 600
    finally:
        delete_prefix(redis_client, prefix)
