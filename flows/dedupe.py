"""dedupe: drop an event whose id was seen before.

Input is at-least-once, so re-deliveries are expected. Ids are spread over a
fixed number of shards (a stable hash, independent of the worker count); each
shard remembers ids for ``ttl_seconds`` of *event time* and at most
``max_ids_per_shard`` of them, oldest first out. A duplicate that arrives after
its id was forgotten passes through; outputs stay idempotent through their
deterministic ids.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from zlib import crc32

from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.settings import DedupeSettings
from schemas.envelope import InteractionEvent

DedupeSnapshot = tuple[float, list[tuple[str, float]]]


def shard_key(shards: int) -> Callable[[InteractionEvent], str]:
    """Key function: the event's dedupe shard, stable across processes and runs."""

    def key(event: InteractionEvent) -> str:
        return str(crc32(event.id.encode()) % shards)

    return key


class SeenIds:
    """Event ids seen recently, bounded by event-time TTL and by count.

    >>> seen = SeenIds(ttl_seconds=60, max_ids=2)
    >>> seen.check_and_add("a", 0.0), seen.check_and_add("a", 1.0)
    (True, False)
    >>> seen.check_and_add("b", 100.0)  # "a" is older than 60 s now: forgotten
    True
    >>> seen.check_and_add("a", 100.0)
    True
    """

    def __init__(self, ttl_seconds: float, max_ids: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_ids = max_ids
        self.watermark = float("-inf")
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check_and_add(self, event_id: str, event_ts: float) -> bool:
        """Return True if ``event_id`` is new (and remember it), False for a duplicate."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = event_ts
        self.watermark = max(self.watermark, event_ts)
        horizon = self.watermark - self.ttl_seconds
        seen = self._seen
        # Ids arrive roughly in event-time order, so the oldest sit at the front.
        while seen and (len(seen) > self.max_ids or next(iter(seen.values())) < horizon):
            seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def snapshot(self) -> DedupeSnapshot:
        return (self.watermark, list(self._seen.items()))

    @classmethod
    def restore(cls, settings: DedupeSettings, snap: DedupeSnapshot | None) -> SeenIds:
        seen = cls(settings.ttl_seconds, settings.max_ids_per_shard)
        if snap is not None:
            seen.watermark = snap[0]
            seen._seen.update(snap[1])
        return seen


class DedupeLogic(StatefulBatchLogic[InteractionEvent, InteractionEvent, DedupeSnapshot]):
    """Per-shard Bytewax logic around :class:`SeenIds`."""

    def __init__(self, seen: SeenIds) -> None:
        self.seen = seen

    def on_batch(self, values: list[InteractionEvent]) -> tuple[Iterable[InteractionEvent], bool]:
        fresh = []
        for event in values:
            if self.seen.check_and_add(event.id, event.time.timestamp()):
                fresh.append(event)
            else:
                metrics.DUPLICATES.inc()
        return fresh, StatefulBatchLogic.RETAIN

    def snapshot(self) -> DedupeSnapshot:
        return self.seen.snapshot()


def dedupe_builder(
    settings: DedupeSettings,
) -> Callable[[DedupeSnapshot | None], DedupeLogic]:
    def build(resume: DedupeSnapshot | None) -> DedupeLogic:
        return DedupeLogic(SeenIds.restore(settings, resume))

    return build
