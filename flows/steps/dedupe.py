"""dedupe: drop an event whose id was seen before, and number the fresh ones per lane.

Input is at-least-once, so re-deliveries are expected. The step is keyed by
lane (:mod:`flows.lanes`: one input partition), so it sees each lane's events
in input order whatever the batching, and hands them on in that order,
numbered (``seq``) and stamped with the lane's watermark. Each lane remembers
ids for ``ttl_seconds`` of *event time* and at most ``max_ids_per_shard`` of
them, oldest first out, as 64-bit hashes at 16 bytes an id
(:mod:`flows.steps.seen_ids`: about 61M ids a GB, the window that holds).
A duplicate that arrives after its id was forgotten, or on another
partition than the first copy, passes through: the profile store ignores an
event it has already applied, and outputs stay idempotent through their
deterministic ids. (Producers re-send a message to the partition of its
key, so re-deliveries land on the lane of the first copy.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bytewax.operators import StatefulBatchLogic

from flows import metrics
from flows.lanes import Tracked
from flows.settings import DedupeSettings
from flows.steps.seen_ids import SeenIds, SeenSnapshot
from schemas.envelope import InteractionEvent

__all__ = ["DedupeLogic", "LaneSnapshot", "SeenIds", "dedupe_builder", "restore_seen"]

LaneSnapshot = tuple[SeenSnapshot, int, int]
"""The ids seen, the next sequence number and the lane's watermark (ms)."""


def restore_seen(settings: DedupeSettings, snap: SeenSnapshot | None) -> SeenIds:
    """Return the lane's ids as of ``snap`` (None: none yet), under the settings' bounds."""
    return SeenIds.restore(settings.ttl_seconds, settings.max_ids_per_shard, snap)


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
        times = [event.epoch_ms for _, event in values]
        news = self.seen.check_and_add_many([event.id for _, event in values], times)
        for (lane, event), ms, new in zip(values, times, news, strict=True):
            if new:
                self.wm_ms = max(self.wm_ms, ms)
                fresh.append(Tracked(lane, self.next_seq, self.wm_ms, event))
                self.next_seq += 1
        if len(fresh) < len(values):
            metrics.DUPLICATES.inc(len(values) - len(fresh))
        return fresh, StatefulBatchLogic.RETAIN

    def snapshot(self) -> LaneSnapshot:
        return (self.seen.snapshot(), self.next_seq, self.wm_ms)


def dedupe_builder(
    settings: DedupeSettings,
) -> Callable[[LaneSnapshot | None], DedupeLogic]:
    """Builder for ``op.stateful_batch`` keyed by lane over ``(lane, event)`` values."""

    def build(resume: LaneSnapshot | None) -> DedupeLogic:
        if resume is None:
            return DedupeLogic(restore_seen(settings, None))
        seen, next_seq, wm_ms = resume
        return DedupeLogic(restore_seen(settings, seen), next_seq, wm_ms)

    return build
