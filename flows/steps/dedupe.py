"""dedupe: drop an event whose id was seen before, and number the fresh ones per lane.

Input is at-least-once, so re-deliveries are expected. The step is keyed by
lane (:mod:`flows.lanes`: one input partition), so it sees each lane's events
in input order whatever the batching, and hands them on in that order,
numbered (``seq``) and stamped with the lane's watermark. Each lane remembers
ids for ``ttl_seconds`` of *event time* and at most ``max_ids_per_shard`` of
them, oldest first out. A duplicate that arrives after its id was forgotten,
or on another partition than the first copy, passes through: the profile store
ignores an event it has already applied, and outputs stay idempotent through
their deterministic ids. (Producers re-send a message to the partition of its
key, so re-deliveries land on the lane of the first copy.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.lanes import Tracked
from flows.settings import DedupeSettings
from schemas.envelope import InteractionEvent

DedupeSnapshot = tuple[float, list[tuple[str, float]]]
LaneSnapshot = tuple[DedupeSnapshot, int, int]
"""The ids seen, the next sequence number and the lane's watermark (ms)."""


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
        """Return how many event ids are remembered."""
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


class DedupeLogic(StatefulBatchLogic[tuple[str, InteractionEvent], Tracked, LaneSnapshot]):
    """Per-lane Bytewax logic around :class:`SeenIds`: fresh events out, numbered.

    >>> from schemas.envelope import InteractionEvent
    >>> def event(n, minute):
    ...     return InteractionEvent.model_validate({"id": f"e{n}", "source": "/doc",
    ...         "type": "cx.web.login", "time": f"2026-03-02T10:{minute:02d}:00Z",
    ...         "data": {"channel": "web", "touchpoint": "t"}})
    >>> logic = DedupeLogic(SeenIds(3600, 10))
    >>> batch = [event(1, 5), event(2, 3), event(1, 5), event(3, 9)]
    >>> out, _ = logic.on_batch([("cx.events:0", e) for e in batch])
    >>> [(t.seq, t.event.id, t.wm_ms - out[0].wm_ms) for t in out]
    [(0, 'e1', 0), (1, 'e2', 0), (2, 'e3', 240000)]
    """

    def __init__(self, seen: SeenIds, next_seq: int = 0, wm_ms: int = -(2**62)) -> None:
        self.seen = seen
        self.next_seq = next_seq
        self.wm_ms = wm_ms

    def on_batch(
        self, values: list[tuple[str, InteractionEvent]]
    ) -> tuple[Iterable[Tracked], bool]:
        fresh = []
        for lane, event in values:
            ms = event.epoch_ms
            if self.seen.check_and_add(event.id, ms / 1000):
                self.wm_ms = max(self.wm_ms, ms)
                fresh.append(Tracked(lane, self.next_seq, self.wm_ms, event))
                self.next_seq += 1
            else:
                metrics.DUPLICATES.inc()
        return fresh, StatefulBatchLogic.RETAIN

    def snapshot(self) -> LaneSnapshot:
        return (self.seen.snapshot(), self.next_seq, self.wm_ms)


def dedupe_builder(
    settings: DedupeSettings,
) -> Callable[[LaneSnapshot | None], DedupeLogic]:
    """Builder for ``op.stateful_batch`` keyed by lane over ``(lane, event)`` values."""

    def build(resume: LaneSnapshot | None) -> DedupeLogic:
        if resume is None:
            return DedupeLogic(SeenIds.restore(settings, None))
        seen, next_seq, wm_ms = resume
        return DedupeLogic(SeenIds.restore(settings, seen), next_seq, wm_ms)

    return build
