from __future__ import annotations

import pickle
import random

from flows.settings import DedupeSettings
from flows.steps.dedupe import SeenIds, dedupe_builder, restore_seen
from schemas.envelope import InteractionEvent
from tests.conftest import make_event


def test_duplicates_within_ttl_are_caught() -> None:
    seen = SeenIds(ttl_seconds=3600, max_ids=100)
    assert seen.check_and_add("a", 0.0)
    assert seen.check_and_add("b", 10.0)
    assert not seen.check_and_add("a", 20.0)
    assert not seen.check_and_add("b", 3000.0)


def test_memory_is_bounded_by_event_time_ttl() -> None:
    seen = SeenIds(ttl_seconds=60, max_ids=1_000_000)
    for i in range(10_000):
        seen.check_and_add(f"e{i}", float(i))
    assert len(seen) == 61  # ids within the last 60 s of event time


def test_memory_is_bounded_by_count() -> None:
    seen = SeenIds(ttl_seconds=1e9, max_ids=100)
    for i in range(1000):
        seen.check_and_add(f"e{i}", 0.0)
    assert len(seen) == 100
    assert seen.check_and_add("e0", 0.0)  # the oldest were forgotten first
    assert not seen.check_and_add("e999", 0.0)


def test_snapshot_round_trip() -> None:
    settings = DedupeSettings(ttl_seconds=100, max_ids_per_shard=10)
    seen = restore_seen(settings, None)
    seen.check_and_add("a", 5.0)
    restored = restore_seen(settings, seen.snapshot())
    assert not restored.check_and_add("a", 6.0)
    assert restored.watermark == 5.0


def test_a_lane_keeps_its_order_numbers_and_watermark_across_batches_and_restores() -> None:
    settings = DedupeSettings(ttl_seconds=1e9, max_ids_per_shard=1000)
    events = [InteractionEvent.model_validate(make_event(n)) for n in (3, 1, 2, 1, 4)]
    build = dedupe_builder(settings)
    logic = build(None)
    first, _ = logic.on_batch([("cx.events:0", e) for e in events[:2]])
    restored = build(logic.snapshot())  # a crash between the two batches
    second, _ = restored.on_batch([("cx.events:0", e) for e in events[2:]])
    out = [*first, *second]
    assert [t.event.id for t in out] == [events[i].id for i in (0, 1, 2, 4)]
    assert [t.seq for t in out] == [0, 1, 2, 3]
    marks = [t.wm_ms for t in out]
    assert marks == sorted(marks)  # the latest event time read so far, never backwards
    assert marks[0] == events[0].epoch_ms and marks[-1] == max(e.epoch_ms for e in events)


def _reference(ttl_ms: int, max_ids: int, stream: list[tuple[str, int]]) -> list[bool]:
    """The rule itself, by brute force: remembered = among the last max_ids added, within ttl."""
    added: dict[str, tuple[int, int]] = {}
    wm, count, out = -(2**62), 0, []
    for event_id, ms in stream:
        hit = added.get(event_id)
        if hit is not None and hit[1] >= count - max_ids and hit[0] >= wm - ttl_ms:
            out.append(False)
            continue
        added[event_id] = (ms, count)
        count += 1
        wm = max(wm, ms)
        out.append(True)
    return out


def test_arrays_follow_the_rule_whatever_the_batches_and_snapshots() -> None:
    rng = random.Random(7)
    stream = []
    for i in range(30_000):  # mostly in time order, some late, many re-deliveries
        ms = i * 10 - (rng.randrange(5_000) if rng.random() < 0.1 else 0)
        stream.append((f"e{rng.randrange(i + 1)}" if rng.random() < 0.3 else f"e{i}", ms))
    expected = _reference(60_000, 5_000, stream)
    for cuts in ([1_000], [1, 7, 4_096, 333]):
        seen, at = SeenIds(60, 5_000), 0
        got: list[bool] = []
        while at < len(stream):
            batch = stream[at : at + cuts[len(got) % len(cuts)]]
            got += seen.check_and_add_many([i for i, _ in batch], [ms for _, ms in batch])
            at += len(batch)
            if len(got) % 97 == 0:
                seen = SeenIds.restore(60, 5_000, seen.snapshot())
        assert got == expected
    assert seen.nbytes_per_id() == 16.0


def test_a_snapshot_is_raw_arrays_of_16_bytes_an_id() -> None:
    seen = SeenIds(ttl_seconds=1e9, max_ids=100_000)
    seen.check_and_add_many([f"e{i}" for i in range(100_000)], [0] * 100_000)
    size = len(pickle.dumps(seen.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    assert 16 * 100_000 <= size < 16 * 100_000 * 1.01
