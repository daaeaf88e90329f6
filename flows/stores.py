"""Build the profile store the settings ask for."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import redis

from flows.observability import InstrumentedRedis
from flows.settings import Settings
from state.hashing import Hasher, IdentifierHasher, PlainIdentifiers
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from state.store import IdentityPolicy, ProfileStore


class StoreUnavailableError(RuntimeError):
    """The configured Redis does not answer."""


def identity_policy(settings: Settings) -> IdentityPolicy:
    ident = settings.identity
    return IdentityPolicy(
        priority=ident.priority,
        limits=dict(ident.limits),
        default_limit=ident.default_limit,
        blocked_values=frozenset(ident.blocked_values),
        blocked_patterns=ident.blocked_patterns,
        weak_types=ident.weak_types,
    )


def hasher(settings: Settings) -> Hasher:
    key = settings.identity.hash_key
    if settings.identity.hash_identifiers and key is not None:
        return IdentifierHasher(key.get_secret_value().encode())
    return PlainIdentifiers()


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the configured Redis, checked with PING."""
    conf = settings.redis
    password = conf.password.get_secret_value() if conf.password is not None else None
    client = InstrumentedRedis.from_url(
        conf.url, username=conf.username, password=password, socket_connect_timeout=5
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        msg = (
            f"cannot reach Redis at {_without_credentials(conf.url)} ({type(exc).__name__}); "
            "start it with "
            "`bash scripts/services.sh start` or set CX_REDIS__URL"
        )
        raise StoreUnavailableError(msg) from None
    return client


def _without_credentials(url: str) -> str:
    """The URL with any user and password left out (it goes into error messages).

    >>> _without_credentials("redis://user:s3cret@db.example:6380/1")
    'redis://db.example:6380/1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def make_store(
    settings: Settings, default: Literal["memory", "redis"], publish: bool = True
) -> ProfileStore:
    """The store of ``CX_IDENTITY__STORE``, or ``default`` when it is unset.

    ``publish=False`` keeps profiles without publishing changes (offline runs).
    """
    rules = ProfileRules(
        emit_interval_ms=round(settings.profiles.emit_interval_seconds * 1000),
        recent_limit=settings.profiles.recent_interactions,
        publish=publish,
    )
    policy, keyed = identity_policy(settings), hasher(settings)
    if (settings.identity.store or default) == "memory":
        return MemoryProfileStore(policy, keyed, rules)
    return RedisProfileStore(redis_client(settings), settings.redis.prefix, policy, keyed, rules)
