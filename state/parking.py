"""Parked journey state: per customer, a short list of opaque versions, oldest first.

The journey step (:mod:`flows.steps.parking`) parks an idle customer's journey
here and reads it back when the customer returns. The store only keeps lists of
bytes; which version a returning customer resumes from, and which versions may
go, is the flow's business (it depends on Bytewax's recovery).

A list lives under ``{prefix}park:{lineage}:{customer_id}``: ``lineage`` names the
run history the versions belong to (one recovery directory, or one process run
without recovery), so a flow started from scratch never reads an old run's state.
Every write renews the key's expiry (``ttl_seconds``).

>>> store = MemoryParkingStore()
>>> store.append("c1", b"v1", drop=0)
>>> store.append("c1", b"v2", drop=1)
>>> store.versions("c1"), store.versions("nobody")
([b'v2'], [])
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import redis
from redis.cluster import RedisCluster

from state.redis_store import execute

DEFAULT_TTL_SECONDS = 30 * 86400


class ParkingStore(ABC):
    """Per customer, a list of versions (bytes), oldest first."""

    @abstractmethod
    def versions(self, customer_id: str) -> list[bytes]:
        """Return the customer's versions, oldest first ([] if none)."""

    @abstractmethod
    def append(self, customer_id: str, version: bytes, drop: int) -> None:
        """Drop the ``drop`` oldest versions, then add ``version`` as the newest."""

    @abstractmethod
    def keep_first(self, customer_id: str, count: int) -> None:
        """Keep only the ``count`` oldest versions (0: none)."""

    @abstractmethod
    def replace(self, customer_id: str, versions: list[bytes]) -> None:
        """Make ``versions`` the customer's list ([]: none)."""

    def delete(self, customer_id: str) -> None:
        """Forget the customer's versions."""
        self.keep_first(customer_id, 0)


class MemoryParkingStore(ParkingStore):
    """The in-memory twin (offline runs and tests); no expiry."""

    def __init__(self) -> None:
        self._lists: dict[str, list[bytes]] = {}

    def versions(self, customer_id: str) -> list[bytes]:
        return list(self._lists.get(customer_id, ()))

    def append(self, customer_id: str, version: bytes, drop: int) -> None:
        kept = self._lists.get(customer_id, [])[drop:]
        self._lists[customer_id] = [*kept, version]

    def keep_first(self, customer_id: str, count: int) -> None:
        kept = self._lists.get(customer_id, [])[:count]
        if kept:
            self._lists[customer_id] = kept
        else:
            self._lists.pop(customer_id, None)

    def replace(self, customer_id: str, versions: list[bytes]) -> None:
        if versions:
            self._lists[customer_id] = list(versions)
        else:
            self._lists.pop(customer_id, None)

    def __len__(self) -> int:
        """Return how many customers have versions."""
        return len(self._lists)


class RedisParkingStore(ParkingStore):
    """Versions as a Redis list; every call is one round trip (a pipeline for writes)."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        prefix: str,
        lineage: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.client = client
        self.key_prefix = f"{prefix}park:{lineage}:"
        self.ttl_seconds = ttl_seconds

    def _key(self, customer_id: str) -> str:
        return self.key_prefix + customer_id

    def versions(self, customer_id: str) -> list[bytes]:
        return [
            v if isinstance(v, bytes) else v.encode()
            for v in self.client.lrange(self._key(customer_id), 0, -1)
        ]

    def append(self, customer_id: str, version: bytes, drop: int) -> None:
        key = self._key(customer_id)
        pipe = self.client.pipeline(transaction=False)
        if drop:
            pipe.ltrim(key, drop, -1)
        pipe.rpush(key, version)
        pipe.expire(key, self.ttl_seconds)
        execute(self.client, pipe)

    def keep_first(self, customer_id: str, count: int) -> None:
        key = self._key(customer_id)
        if count <= 0:
            self.client.unlink(key)
        else:
            self.client.ltrim(key, 0, count - 1)

    def replace(self, customer_id: str, versions: list[bytes]) -> None:
        key = self._key(customer_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        if versions:
            pipe.rpush(key, *versions)
            pipe.expire(key, self.ttl_seconds)
        execute(self.client, pipe)
