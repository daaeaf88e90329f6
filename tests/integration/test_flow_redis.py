"""The flow with the Redis profile store: round trips per event, memory/Redis agreement,
and replays against a Redis that already holds their effects (issue #9)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flows.app.offline import run_offline
from flows.app.stores import make_store
from flows.settings import RedisSettings, Settings
from replay.log import write_log
from replay.sample import generate_sample
from replay.synthetic import generate_world
from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from tests.conftest import run_flow

pytestmark = pytest.mark.integration


def test_two_round_trips_per_batch(redis_url: str, topic_prefix: str) -> None:
    messages = list(generate_sample(customers=60, days=20, seed=3))
    settings = Settings(redis=RedisSettings(url=redis_url, prefix=f"test:{topic_prefix}"))
    store = make_store(settings, default="redis")
    assert isinstance(store, RedisProfileStore)
    store.canonical("warm-up")  # a fresh server loads the script first (NOSCRIPT)
    store.round_trips = 0
    run_flow(messages, settings, store, batch_size=500)
    batches = -(-len(messages) // 500)
    assert batches >= 3
    # one resolve call and one profile call per batch (fewer if a batch had no events)
    assert batches <= store.round_trips <= 2 * batches
    assert store.round_trips / len(messages) <= 0.02


def test_memory_and_redis_stores_give_identical_outputs(
    redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "world.jsonl"
    write_log(log, generate_sample(customers=30, days=10, seed=5))
    redis_settings = Settings(redis=RedisSettings(url=redis_url, prefix=f"test:{topic_prefix}"))
    run_offline(Settings(), [log], tmp_path / "memory")
    run_offline(
        redis_settings, [log], tmp_path / "redis", store=make_store(redis_settings, "redis")
    )
    for name in ("profiles.jsonl", "identity.jsonl", "alerts.jsonl", "dlq.jsonl"):
        memory = (tmp_path / "memory" / name).read_bytes()
        assert memory == (tmp_path / "redis" / name).read_bytes(), name
        assert memory or name == "alerts.jsonl", name


def _canonical(out: Path) -> dict[str, object]:
    """Outputs with customer ids (which name a customer by its first event) left out."""
    profiles = [orjson.loads(line) for line in (out / "profiles.jsonl").read_bytes().splitlines()]
    customers = sorted(
        (
            orjson.dumps(p["identifiers"], option=orjson.OPT_SORT_KEYS).decode(),
            p["event_count"],
            p["lifetime_value"],
            p["last_event_id"],
        )
        for p in profiles
    )
    dead = sorted((out / "dlq.jsonl").read_bytes().splitlines())
    return {"customers": customers, "dead": dead}


def test_one_and_two_processes_give_the_same_outputs(
    redis_url: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "world.jsonl"
    write_log(log, generate_world(80, 30, seed=9).messages())
    monkeypatch.setenv("CX_IDENTITY__STORE", "redis")
    monkeypatch.setenv("CX_REDIS__URL", redis_url)
    monkeypatch.setenv("CX_KAFKA__BATCH_SIZE", "50")  # many batches: real interleaving
    results = []
    for processes in (1, 2):
        monkeypatch.setenv("CX_REDIS__PREFIX", f"test:{topic_prefix}{processes}:")
        run_offline(Settings(), [log], tmp_path / str(processes), processes=processes)
        results.append(_canonical(tmp_path / str(processes)))
    assert results[0]["customers"], "the world produced no profiles"
    assert results[0] == results[1]


def test_replaying_a_tail_with_fresh_flow_state_changes_no_profile(
    redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A run killed after its last Bytewax snapshot resumes from that snapshot's offsets
    with the dedupe step's memory of that time, so the events after it come again to
    a Redis that already folded them in. Here: the whole log, then its last third again
    through a fresh flow against the same Redis."""
    messages = list(generate_sample(customers=40, days=10, seed=7))
    full, tail = tmp_path / "full.jsonl", tmp_path / "tail.jsonl"
    write_log(full, messages)
    write_log(tail, messages[len(messages) * 2 // 3 :])
    settings = Settings(redis=RedisSettings(url=redis_url, prefix=f"test:{topic_prefix}"))
    store = make_store(settings, "redis", publish=False)
    run_offline(settings, [full], tmp_path / "first", store=store)
    run_offline(settings, [tail], tmp_path / "again", store=store)
    first = (tmp_path / "first" / "profiles.jsonl").read_bytes()
    assert first.count(b"\n") >= 20, "the sample produced too few profiles"
    assert (tmp_path / "again" / "profiles.jsonl").read_bytes() == first

    # The same replay without the applied-event ids counts the tail twice.
    plain = RedisProfileStore(
        redis_url,
        f"test:{topic_prefix}plain:",
        rules=ProfileRules(publish=False, idempotence_window_ms=0),
    )
    try:
        run_offline(settings, [full], tmp_path / "plain", store=plain)
        assert (tmp_path / "plain" / "profiles.jsonl").read_bytes() == first
        run_offline(settings, [tail], tmp_path / "plain-again", store=plain)
        assert (tmp_path / "plain-again" / "profiles.jsonl").read_bytes() != first
    finally:
        plain.close()
