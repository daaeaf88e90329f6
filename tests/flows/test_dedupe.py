from __future__ import annotations

from flows.dedupe import SeenIds, shard_key
from flows.settings import DedupeSettings
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
    seen = SeenIds.restore(settings, None)
    seen.check_and_add("a", 5.0)
    restored = SeenIds.restore(settings, seen.snapshot())
    assert not restored.check_and_add("a", 6.0)
    assert restored.watermark == 5.0


def test_shards_are_stable_and_bounded() -> None:
    key = shard_key(8)
    event = InteractionEvent.model_validate(make_event(3))
    assert key(event) == key(event) == "5"  # crc32-based: the same in every process
    shards = {key(InteractionEvent.model_validate(make_event(n))) for n in range(200)}
    assert shards == {str(i) for i in range(8)}
