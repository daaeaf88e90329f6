"""The flow on a real Redis Cluster (scripts/redis_cluster.sh: 3 primaries, 3 replicas):
the same outputs as on one server, and a primary killed mid-run (issue #17)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from flows.app.offline import run_offline
from flows.app.retry import Retrier, RetryingStore
from flows.app.stores import make_store
from flows.settings import RedisSettings, RetrySettings, Settings
from replay.log import write_log
from replay.sample import generate_sample
from state.memory import MemoryProfileStore
from state.redis_actions import BOARD_BUCKETS
from state.redis_store import RedisProfileStore
from tests.conftest import run_flow
from tests.state.conftest import CLUSTER_URL, cluster_client, delete_prefix

pytestmark = pytest.mark.integration

CLUSTER = CLUSTER_URL.replace("redis://", "redis+cluster://")
SCRIPT = Path(__file__).parents[2] / "scripts" / "redis_cluster.sh"


def test_cluster_and_single_server_give_identical_outputs(
    redis_url: str, cluster_client: RedisCluster, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "world.jsonl"
    write_log(log, generate_sample(customers=30, days=10, seed=5))
    prefix = f"test:{topic_prefix}"
    outputs = {}
    try:
        for name, url in (("single", redis_url), ("cluster", CLUSTER)):
            settings = Settings(redis=RedisSettings(url=url, prefix=prefix))
            store = make_store(settings, "redis")
            assert isinstance(store, RedisProfileStore)
            assert store.cluster == (name == "cluster")
            run_offline(settings, [log], tmp_path / name, store=store)
            outputs[name] = {
                kind: (tmp_path / name / f"{kind}.jsonl").read_bytes()
                for kind in ("profiles", "identity", "alerts", "nba", "nps", "dlq")
            }
            key_prefix = store.key_prefix
        # the store's keys share the prefix's slot; the board's spread over its buckets'
        # slots and so over the primaries
        graph: set[int] = set()
        board: set[int] = set()
        for raw in cluster_client.scan_iter(match=f"{prefix}*", count=1000):
            key = raw.decode()
            slot = cluster_client.keyslot(key)  # type: ignore[no-untyped-call]
            if key.startswith(key_prefix):
                graph.add(slot)
            elif key.startswith(f"{prefix}board:"):
                board.add(slot)
    finally:
        delete_prefix(cluster_client, prefix)
    assert outputs["single"]["profiles"].count(b"\n") >= 20
    assert outputs["cluster"] == outputs["single"]
    assert len(graph) == 1
    assert 3 < len(board) <= BOARD_BUCKETS


def test_the_cluster_setting_selects_the_cluster_client(cluster_client: RedisCluster) -> None:
    settings = Settings(redis=RedisSettings(url=CLUSTER_URL, cluster=True, prefix="test:sel:"))
    store = make_store(settings, "redis")
    assert isinstance(store, RedisProfileStore)
    assert store.cluster and isinstance(store.client, RedisCluster)
    assert store.key_prefix == "test:sel:{test:sel:}"
    assert store.canonical("nobody") == "nobody"
    store.close()
    store.client.close()


def _primary_of(client: RedisCluster, key: str) -> tuple[int, int]:
    """Return the (port, pid) of the primary serving ``key``."""
    node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
    assert node is not None
    pid = int(client.info("server", target_nodes=node)["process_id"])
    return int(node.port), pid


def test_a_primary_killed_mid_run_loses_and_doubles_nothing(
    cluster_client: RedisCluster, topic_prefix: str
) -> None:
    """The graph's primary dies while the flow runs: its replica is promoted, the
    retried calls land there, and the outputs are the memory store's, byte for byte.

    Replication is asynchronous: a write the dead primary acknowledged but had not
    sent to its replica is lost with it (the README's durability contract: the flow
    re-reads Kafka from its last snapshot). So the kill comes after ``CLIENT PAUSE
    WRITE`` and ``WAIT``: the calls in flight then are the ones that were not applied,
    and their retries must neither lose nor double anything.
    """
    messages = list(generate_sample(customers=50, days=15, seed=13))
    expected = run_flow(messages, Settings(), MemoryProfileStore(), batch_size=20)
    prefix = f"test:{topic_prefix}"
    store = RedisProfileStore(CLUSTER, prefix)
    retry = RetrySettings(initial_backoff_seconds=0.2, max_backoff_seconds=1.0)
    retrying = RetryingStore(store, Retrier(retry))
    port, pid = _primary_of(cluster_client, store.key_prefix)
    killed = threading.Event()

    def kill_when_busy() -> None:
        while store.round_trips < 40:  # a good part of the run in
            time.sleep(0.01)
        node = cluster_client.get_node(port=port, host="127.0.0.1")  # type: ignore[no-untyped-call]
        run = cluster_client.execute_command
        run("CLIENT PAUSE", 10_000, "WRITE", target_nodes=node)  # type: ignore[no-untyped-call]
        synced = run("WAIT", 1, 5_000, target_nodes=node)  # type: ignore[no-untyped-call]
        assert synced == 1, "the replica did not catch up"
        os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    try:
        got = run_flow(messages, Settings(), retrying, batch_size=20)
        assert killed.is_set(), "the run ended before the primary was killed"
        assert got == expected
        # a replica took over (the store's client follows it; the fixture's is refreshed)
        assert isinstance(store.client, RedisCluster)
        assert _primary_of(store.client, store.key_prefix)[0] != port
    finally:
        killer.join(timeout=30)
        store.close()
        # the killed node restarts and rejoins as a replica
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, timeout=120)
        cluster_client.nodes_manager.initialize()
        delete_prefix(cluster_client, prefix)


__all__ = ["cluster_client"]  # the fixture, shared with tests/state
