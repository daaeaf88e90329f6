"""The flow with the Redis profile store: round trips per event, and memory/Redis agreement."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flows.offline import run_offline
from flows.settings import RedisSettings, Settings
from flows.stores import make_store
from replay.log import write_log
from replay.sample import generate_sample
from replay.synthetic import generate_world
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
    run_offline(redis_settings, [log], tmp_path / "redis", make_store(redis_settings, "redis"))
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
