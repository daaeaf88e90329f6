"""Ride out a profile-store outage: retry each call with capped exponential backoff.

When Redis stops answering mid-stream, the resolve or profile step that called it
waits and tries again, with a backoff that doubles from
``initial_backoff_seconds`` up to ``max_backoff_seconds``, until Redis is back
(or, if ``give_up_after_seconds`` is set, raises :class:`StoreOutageError` and
the flow stops, to resume later from its recovery snapshot). Nothing is skipped:
the batch that failed is the batch that is retried, so no event is lost, and the
store's calls are idempotent (a batch whose script ran on the server before the
connection dropped is not applied twice).

While it waits, the worker does not poll Kafka; input simply queues up in the
topic. The outage shows in ``cx_store_retries_total{op}``,
``cx_store_available`` and one warning log line per attempt doubling, and in
``/readyz`` (its Redis check fails).

>>> from flows.settings import RetrySettings
>>> calls = []
>>> def flaky(batch):
...     calls.append(batch)
...     if len(calls) < 3:
...         raise ConnectionError("connection refused")
...     return [len(batch)]
>>> waits = []
>>> retry = Retrier(RetrySettings(), sleep=waits.append, transient=(ConnectionError,))
>>> retry.call("resolve", flaky, [1, 2])
[2]
>>> waits
[0.1, 0.2]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import redis.exceptions

from flows import metrics
from flows.settings import RetrySettings
from schemas.outputs import HouseholdSnapshot, ProfileSnapshot
from state.households import HouseholdBatch, HouseholdItem, HouseholdStore, Spend
from state.profile_hash import ProfileDelta
from state.store import ErasedReport, ProfileStore, ResolveRequest, ResolveResult

log = logging.getLogger(__name__)
R = TypeVar("R")

# Errors that mean "Redis is not there right now", not "this request is wrong".
REDIS_TRANSIENT: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (a restart loading its data)
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a failover in progress
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # a cluster primary lost, its replica not promoted yet
    redis.exceptions.SlotNotCoveredError,
    ConnectionError,
    TimeoutError,
)


class StoreOutageError(RuntimeError):
    """The store stayed unreachable longer than ``retry.give_up_after_seconds``."""


class Retrier:
    """Call a function until it stops raising a transient error (see the module docstring)."""

    def __init__(
        self,
        settings: RetrySettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transient: tuple[type[BaseException], ...] = REDIS_TRANSIENT,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = clock
        self.transient = transient

    def call(self, op: str, fn: Callable[..., R], *args: object) -> R:
        conf = self.settings
        backoff, started, attempt = conf.initial_backoff_seconds, None, 0
        while True:
            try:
                result = fn(*args)
            except self.transient as exc:
                attempt += 1
                now = self.clock()
                started = now if started is None else started
                waited = now - started
                metrics.STORE_RETRIES.labels(op).inc()
                metrics.STORE_AVAILABLE.set(0)
                if conf.give_up_after_seconds is not None and waited >= conf.give_up_after_seconds:
                    msg = (
                        f"profile store unreachable for {waited:.0f} s during {op} "
                        f"({type(exc).__name__}); giving up (CX_RETRY__GIVE_UP_AFTER_SECONDS)"
                    )
                    raise StoreOutageError(msg) from None
                if attempt & (attempt - 1) == 0:  # attempts 1, 2, 4, 8...: logs stay bounded
                    log.warning(
                        "profile store unreachable during %s (%s), attempt %d, retrying in %.1f s",
                        op,
                        type(exc).__name__,
                        attempt,
                        backoff,
                    )
                self.sleep(backoff)
                backoff = min(backoff * 2, conf.max_backoff_seconds)
                continue
            if attempt:
                log.warning("profile store back after %d failed attempts (%s)", attempt, op)
                metrics.STORE_AVAILABLE.set(1)
            return result


class RetryingStore:
    """A :class:`~state.store.ProfileStore` whose every call goes through a :class:`Retrier`."""

    def __init__(self, store: ProfileStore, retrier: Retrier) -> None:
        self.store = store
        self.retrier = retrier

    def resolve_batch(self, requests: Sequence[ResolveRequest]) -> list[ResolveResult]:
        return self.retrier.call("resolve", self.store.resolve_batch, requests)

    def lookup(self, id_type: str, value: str) -> str | None:
        return self.retrier.call("lookup", self.store.lookup, id_type, value)

    def canonical(self, customer_id: str) -> str:
        return self.retrier.call("canonical", self.store.canonical, customer_id)

    def identifiers(self, customer_id: str) -> dict[str, list[str]]:
        return self.retrier.call("identifiers", self.store.identifiers, customer_id)

    def customers(self) -> list[str]:
        return self.retrier.call("customers", self.store.customers)

    def erase(self, customer_id: str) -> ErasedReport:
        return self.retrier.call("erase", self.store.erase, customer_id)

    def apply_profiles(self, deltas: Sequence[ProfileDelta]) -> list[ProfileSnapshot]:
        return self.retrier.call("profile", self.store.apply_profiles, deltas)

    def profile(self, customer_id: str) -> ProfileSnapshot | None:
        return self.retrier.call("profile_get", self.store.profile, customer_id)

    def flush_pending(self) -> list[ProfileSnapshot]:
        return self.retrier.call("flush", self.store.flush_pending)

    def close(self) -> None:
        self.store.close()


class RetryingHouseholds:
    """A :class:`~state.households.HouseholdStore` whose calls go through a :class:`Retrier`.

    A retried batch changes nothing twice: its items are recorded by event id with their
    answers (the store gives them back), erases find nothing left the second time, and
    budget tokens are granted once; only the publication count moves on.
    """

    def __init__(self, store: HouseholdStore, retrier: Retrier) -> None:
        self.store = store
        self.retrier = retrier

    def step(self, items: Sequence[HouseholdItem]) -> HouseholdBatch:
        return self.retrier.call("households", self.store.step, items)

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        return self.retrier.call("household_of", self.store.household_of, customer_id)

    def households(self) -> list[HouseholdSnapshot]:
        return self.retrier.call("households_all", self.store.households)

    def spend(self, asks: Sequence[Spend]) -> list[bool]:
        return self.retrier.call("household_budget", self.store.spend, asks)

    def close(self) -> None:
        self.store.close()
