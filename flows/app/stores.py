"""Build the profile store the settings ask for, and the parking of idle journeys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import redis

from flows.app.health import InstrumentedRedis, InstrumentedRedisCluster
from flows.settings import Settings
from flows.steps.parking import CommitFloor, Floor, Parking
from state.hashing import Hasher, IdentifierHasher, PlainIdentifiers
from state.households import HouseholdStore, MemoryHouseholdStore
from state.memory import MemoryProfileStore
from state.parking import MemoryParkingStore, ParkingStore, RedisParkingStore
from state.profile_hash import ProfileRules
from state.redis_households import RedisHouseholdStore
from state.redis_store import Client, RedisProfileStore, cluster_url
from state.store import IdentityPolicy, ProfileStore


class StoreUnavailableError(RuntimeError):
    """The configured Redis does not answer."""


def identity_policy(settings: Settings) -> IdentityPolicy:
    """Build the identity-resolution policy from the ``identity`` settings."""
    ident = settings.identity
    return IdentityPolicy(
        priority=ident.priority,
        limits=dict(ident.limits),
        default_limit=ident.default_limit,
        blocked_values=frozenset(ident.blocked_values),
        blocked_patterns=ident.blocked_patterns,
        weak_types=ident.weak_types,
        shared_after=dict(ident.shared_after),
    )


def hasher(settings: Settings) -> Hasher:
    """Return the keyed identifier hasher if hashing is on and a key is set, else plain ids."""
    key = settings.identity.hash_key
    if settings.identity.hash_identifiers and key is not None:
        return IdentifierHasher(key.get_secret_value().encode())
    return PlainIdentifiers()


def redis_client(settings: Settings) -> Client:
    """Return a client for the configured Redis, checked with PING.

    Credentials and TLS come from the settings; ``CX_REDIS__CLUSTER`` (or a
    ``redis+cluster://`` URL) makes it a Redis Cluster client.

    Raises :class:`StoreUnavailableError` naming the cause but never a secret: the
    driver's own message is left out (it may quote the URL), and the exception is
    not chained (a traceback would show the client's arguments).
    """
    conf = settings.redis
    where = _without_credentials(conf.url)
    node = cluster_url(conf.url)
    try:
        client: Client
        if conf.cluster or node is not None:
            client = InstrumentedRedisCluster.from_url(
                node or conf.url, socket_connect_timeout=5, **conf.connection_kwargs()
            )
        else:
            client = InstrumentedRedis.from_url(
                conf.url, socket_connect_timeout=5, **conf.connection_kwargs()
            )
        client.ping()
    except redis.AuthenticationError:
        msg = (
            f"Redis at {where} refused the credentials; check CX_REDIS__USERNAME "
            "and CX_REDIS__PASSWORD"
        )
        raise StoreUnavailableError(msg) from None
    except redis.ResponseError as exc:
        hint = _response_hint(str(exc))
        msg = f"Redis at {where} refused the connection: {hint}"
        raise StoreUnavailableError(msg) from None
    except (redis.RedisError, ValueError, OSError) as exc:
        msg = (
            f"cannot reach Redis at {where} ({type(exc).__name__}{_tls_hint(conf.url, exc)}); "
            "start it with `bash scripts/services.sh start` or set CX_REDIS__URL"
        )
        raise StoreUnavailableError(msg) from None
    return client


def _response_hint(message: str) -> str:
    """Return what to change for a Redis error reply.

    The reply itself never holds a secret, but only its error code is kept, to be sure.
    """
    code = message.split(" ", 1)[0] if message else "error"
    if code.upper() in ("NOAUTH", "WRONGPASS"):
        return f"{code}; set CX_REDIS__PASSWORD (and CX_REDIS__USERNAME for an ACL user)"
    return f"{code}; check CX_REDIS__URL and the credentials"


def _tls_hint(url: str, exc: Exception) -> str:
    if "SSL" in type(exc).__name__ or "certificate" in str(exc).lower():
        return ": TLS failed, check CX_REDIS__SSL_CA_CERTS and the server's certificate"
    if not url.startswith("rediss://") and "Connection closed by server" in str(exc):
        return ": the server may want TLS, use a rediss:// URL"
    return ""


def _without_credentials(url: str) -> str:
    """Return the URL with any user and password left out (it goes into error messages).

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
    """Return the store of ``CX_IDENTITY__STORE``, or ``default`` when it is unset.

    ``publish=False`` keeps profiles without publishing changes (offline runs).
    """
    rules = ProfileRules(
        emit_interval_ms=round(settings.profiles.emit_interval_seconds * 1000),
        recent_limit=settings.profiles.recent_interactions,
        publish=publish,
        idempotence_window_ms=round(settings.profiles.idempotence_window_seconds * 1000),
        # resolve outcomes and applied-event marks, by wall clock (CX_IDENTITY__...)
        outcome_retention_ms=round(settings.identity.outcome_retention_seconds * 1000),
    )
    policy, keyed = identity_policy(settings), hasher(settings)
    if (settings.identity.store or default) == "memory":
        return MemoryProfileStore(policy, keyed, rules)
    return RedisProfileStore(
        redis_client(settings), settings.redis.prefix, policy=policy, hasher=keyed, rules=rules
    )


def make_households(settings: Settings, store: ProfileStore) -> HouseholdStore | None:
    """Return the household store next to ``store`` (None: ``CX_HOUSEHOLDS__ENABLED`` off).

    The in-memory twin reads the memory profile store it is given; otherwise the
    households live in the same Redis, under the same prefix.
    """
    conf = settings.households
    if not conf.enabled:
        return None
    # a re-processed event's household answer is kept as long as its resolve outcome
    retention_ms = int(settings.identity.outcome_retention_seconds * 1000)
    if isinstance(store, MemoryProfileStore):
        return MemoryHouseholdStore(conf.policy(), hasher(settings), retention_ms=retention_ms)
    client = redis_client(settings)
    return RedisHouseholdStore(
        client,
        settings.redis.prefix,
        conf.policy(),
        hasher(settings),
        owns_client=True,
        retention_ms=retention_ms,
    )


def parking_lineage(settings: Settings) -> str:
    """Name the run history parked journeys belong to.

    With recovery, the recovery directory's (made once, kept in it): a resumed run
    reads what the runs before it parked. Without, this process run's own: a flow
    that starts from scratch never reads an earlier run's journeys.
    """
    if not settings.recovery.enabled:
        return uuid.uuid4().hex
    path = settings.recovery.directory / "parking-lineage"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as out:  # the first process names it
            out.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    for _ in range(50):  # another process may be writing it this very moment
        name = path.read_text(encoding="utf-8").strip()
        if name:
            return name
        time.sleep(0.01)
    msg = f"{path} is empty; delete it (no parked journey can be read back then)"
    raise StoreUnavailableError(msg)


def make_parking(settings: Settings, default: Literal["memory", "redis"]) -> Parking | None:
    """Return where idle journeys are parked (None: ``CX_JOURNEY__PARK_IDLE_SECONDS`` 0).

    Next to the profile store (``CX_IDENTITY__STORE``, or ``default``): Redis keys
    under the same prefix, or the in-memory twin. With recovery on, which versions
    may go follows Bytewax's commits (:class:`flows.steps.parking.CommitFloor`).
    """
    conf = settings.journey
    if conf.park_idle_seconds <= 0:
        return None
    store: ParkingStore
    if (settings.identity.store or default) == "memory":
        store = MemoryParkingStore()
    else:
        store = RedisParkingStore(
            redis_client(settings),
            settings.redis.prefix,
            parking_lineage(settings),
            conf.park_ttl_seconds,
        )
    floor: Callable[[], Floor] = lambda: None  # noqa: E731 (no recovery: nothing replayed)
    if settings.recovery.enabled:
        floor = CommitFloor(settings.recovery.directory)
    return Parking(store, conf.park_idle_seconds, floor)
