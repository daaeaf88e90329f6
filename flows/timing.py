"""Timing the flow: steps, Redis round trips and end-to-end latency.

The series are in :mod:`flows.metrics`; these helpers are the only way the flow feeds them:


- :func:`timed` times a block or a function call into ``cx_step_seconds{step}``;
  :func:`timed_batch`, :func:`timed_map`, :func:`timed_flat_map` and :func:`timed_logic`
  do it once per *batch* (and count the batch's items in ``cx_step_items_total{step}``).
  One observation costs about 1 us, so per batch it is a fraction of a nanosecond per
  event; never time single items on the hot path. Time per item is
  ``rate(cx_step_seconds_sum) / rate(cx_step_items_total)``.
- :func:`redis_call` counts and times one Redis round trip by operation.
- :func:`observe_e2e` / :func:`observe_e2e_many` record Kafka append time -> output;
  in the running flow :func:`note_appends` (input) and :func:`observe_outputs` (Kafka
  sink, through its write hook) feed it once per batch (the approximation is in
  :func:`observe_outputs`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache, update_wrapper
from time import perf_counter
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from bytewax.operators import StatefulBatchLogic

from flows.metrics import (
    E2E_LATENCY,
    REDIS_CALLS,
    REDIS_ERRORS,
    REDIS_SECONDS,
    STEP_ITEMS,
    STEP_SECONDS,
)

P = ParamSpec("P")
R = TypeVar("R")
X = TypeVar("X")
Y = TypeVar("Y")
V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")


@lru_cache(maxsize=256)
def _step(step: str) -> tuple[Callable[[float], None], Callable[[float], None]]:
    return STEP_SECONDS.labels(step).observe, STEP_ITEMS.labels(step).inc


class StepTimer:
    """``cx_step_seconds{step}`` as a context manager or a decorator (see :func:`timed`)."""

    __slots__ = ("_observe", "_start")

    def __init__(self, step: str) -> None:
        self._observe = _step(step)[0]
        self._start = 0.0

    def __enter__(self) -> StepTimer:
        """Start timing."""
        self._start = perf_counter()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Observe the seconds since :meth:`__enter__`, even when the block raised."""
        self._observe(perf_counter() - self._start)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        observe = self._observe

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                observe(perf_counter() - start)

        return update_wrapper(wrapper, fn, updated=())


def timed(step: str) -> StepTimer:
    """Time a block or every call of a function into ``cx_step_seconds{step}``.

    As a context manager: ``with timed("resolve"): ...``; as a decorator:
    ``@timed("resolve")``.

    Each use costs two clock reads and one observation (about a microsecond):
    wrap functions that take a whole batch, not one item.

    >>> from prometheus_client import REGISTRY
    >>> with timed("doctest"):
    ...     pass
    >>> REGISTRY.get_sample_value("cx_step_seconds_count", {"step": "doctest"})
    1.0
    """
    return StepTimer(step)


def timed_batch(step: str, fn: Callable[[list[X]], R]) -> Callable[[list[X]], R]:
    """``fn(batch)`` timed once per batch, its items counted (for ``op.flat_map_batch``)."""
    observe, count = _step(step)

    def wrapper(batch: list[X]) -> R:
        start = perf_counter()
        try:
            return fn(batch)
        finally:
            observe(perf_counter() - start)
            count(len(batch))

    return update_wrapper(wrapper, fn, updated=())


def timed_map(step: str, fn: Callable[[X], Y]) -> Callable[[list[X]], list[Y]]:
    """Wrap a per-item function as a timed batch function.

    ``op.flat_map_batch(step, up, timed_map(step, fn))`` behaves as ``op.map(step, up, fn)``
    (which Bytewax itself runs as a ``flat_map_batch``) with one observation per batch.

    >>> timed_map("doctest_map", str.upper)(["a", "b"])
    ['A', 'B']
    """
    return timed_batch(step, lambda batch: [fn(item) for item in batch])


def timed_flat_map(step: str, fn: Callable[[X], Iterable[Y]]) -> Callable[[list[X]], list[Y]]:
    """:func:`timed_map` for ``op.flat_map``: every item's outputs, flattened, in order.

    >>> timed_flat_map("doctest_flat", lambda s: s.split())(["a b", "c"])
    ['a', 'b', 'c']
    """
    return timed_batch(step, lambda batch: [out for item in batch for out in fn(item)])


class _TimedLogic(StatefulBatchLogic[V, W, S]):
    """Delegates to the wrapped logic; times ``on_batch``, ``on_notify`` and ``on_eof``."""

    def __init__(
        self,
        inner: StatefulBatchLogic[V, W, S],
        observe: Callable[[float], None],
        count: Callable[[float], None],
    ) -> None:
        self._inner = inner
        self._observe = observe
        self._count = count

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        start = perf_counter()
        try:
            return self._inner.on_batch(values)
        finally:
            self._observe(perf_counter() - start)
            self._count(len(values))

    def on_notify(self) -> tuple[Iterable[W], bool]:
        start = perf_counter()
        try:
            return self._inner.on_notify()
        finally:
            self._observe(perf_counter() - start)

    def on_eof(self) -> tuple[Iterable[W], bool]:
        start = perf_counter()
        try:
            return self._inner.on_eof()
        finally:
            self._observe(perf_counter() - start)

    def notify_at(self) -> datetime | None:
        return self._inner.notify_at()

    def snapshot(self) -> S:
        return self._inner.snapshot()


def timed_logic(
    step: str, builder: Callable[[S | None], StatefulBatchLogic[V, W, S]]
) -> Callable[[S | None], StatefulBatchLogic[V, W, S]]:
    """Wrap a ``stateful_batch`` builder so that its logic is timed.

    Each call of ``on_batch`` (one call per key per batch), ``on_notify`` and
    ``on_eof`` is timed; snapshots are unchanged.
    """
    observe, count = _step(step)

    def build(resume_state: S | None) -> StatefulBatchLogic[V, W, S]:
        return _TimedLogic(builder(resume_state), observe, count)

    return build


class _RedisTimer:
    __slots__ = ("_calls", "_errors", "_observe", "_start")

    def __init__(self, op: str) -> None:
        self._calls, self._errors, self._observe = _redis(op)
        self._start = 0.0

    def __enter__(self) -> _RedisTimer:
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, _e: BaseException | None, _tb: Any
    ) -> None:
        self._observe(perf_counter() - self._start)
        self._calls(1)
        if exc_type is not None:
            self._errors(1)


@lru_cache(maxsize=64)
def _redis(
    op: str,
) -> tuple[Callable[[float], None], Callable[[float], None], Callable[[float], None]]:
    return REDIS_CALLS.labels(op).inc, REDIS_ERRORS.labels(op).inc, REDIS_SECONDS.labels(op).observe


def redis_call(op: str) -> _RedisTimer:
    """Count and time one Redis round trip: ``with redis_call("resolve"): client.evalsha(...)``.

    ``op`` is the script operation (resolve, profile, lookup, ...), a code constant.
    A call that raises is timed, counted and also counted in cx_redis_errors_total.
    """
    return _RedisTimer(op)


def observe_e2e(append_ms: int, now_ms: float | None = None) -> None:
    """Record one output produced for an input Kafka appended at ``append_ms``.

    ``append_ms`` is in milliseconds since the epoch (the record's
    CreateTime/LogAppendTime).

    Broker and worker clocks may disagree by a little: a negative latency counts as 0.
    """
    now = time.time() * 1000.0 if now_ms is None else now_ms
    E2E_LATENCY.observe(max(0.0, now - append_ms) / 1000.0)


def observe_e2e_many(append_ms: Iterable[int | None]) -> None:
    """Do :func:`observe_e2e` for a batch of outputs, with one clock read.

    ``None`` and non-positive timestamps (Kafka's "no timestamp" is -1) are skipped.
    """
    now = time.time() * 1000.0
    observe = E2E_LATENCY.observe
    for ms in append_ms:
        if ms is not None and ms > 0:
            observe(max(0.0, now - ms) / 1000.0)


# ---------------------------------------------------------------- end-to-end latency in the flow

#: Inputs remembered per worker while no output is written (a flow whose sink never
#: calls :func:`observe_outputs` must not grow without bound); the oldest go first.
MAX_PENDING_APPENDS = 100_000
#: An output written with no new input since the previous write (e.g. the second
#: sink call of one activation) reuses the previous inputs for this long; later
#: outputs (timer-driven NPS/SLA, end-of-input flushes) are not attributed to input.
REUSE_WINDOW_MS = 1000.0


class _Appends(threading.local):
    """One worker's Kafka append times of input not yet matched to output."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.last: list[int] = []
        self.last_at_ms = 0.0


_appends = _Appends()


def note_appends(append_ms: list[int]) -> None:
    """Note that this worker's input step handed out a batch appended to Kafka at ``append_ms``.

    Called once per input batch (see :func:`flows.app.inputs.kafka_input`).
    """
    pending = _appends.pending
    pending.extend(append_ms)
    if len(pending) > MAX_PENDING_APPENDS:
        del pending[: len(pending) - MAX_PENDING_APPENDS]


def observe_outputs(count: int, now_ms: float | None = None) -> int:
    """Record ``cx_e2e_latency_seconds`` for ``count`` outputs this worker just produced.

    The approximation: outputs are not traced back to the input that caused them
    (that would cost an id per item through every step). Instead each worker
    remembers the append times of the input batches it handed to the flow since
    its last sink write, and the ``count`` outputs of this write are spread over
    them in arrival order (output ``i`` of ``n`` takes input ``i * k // n`` of
    ``k``). With one clock read per write this is exact when every input yields
    one output in order, and otherwise keeps the distribution's shape; outputs
    from another worker's input (after a key exchange) use this worker's input
    of the same moment. Returns how many latencies were observed.

    >>> note_appends([1_000, 1_010])
    >>> observe_outputs(4, now_ms=1_030)  # latencies 30, 30, 20, 20 ms
    4
    >>> observe_outputs(1, now_ms=1_040)  # no new input: reuses the last, 40 ms
    1
    >>> observe_outputs(1, now_ms=9_000)  # too long after any input: not observed
    0
    """
    now = time.time() * 1000.0 if now_ms is None else now_ms
    state = _appends
    times = state.pending
    if times:
        state.pending, state.last, state.last_at_ms = [], times, now
    elif now - state.last_at_ms <= REUSE_WINDOW_MS:
        times = state.last
    if not times or count <= 0:
        return 0
    observe = E2E_LATENCY.observe
    known = len(times)
    for i in range(count):
        # Broker and worker clocks may disagree by a little: negative counts as 0.
        observe(max(0.0, now - times[i * known // count]) / 1000.0)
    return count
