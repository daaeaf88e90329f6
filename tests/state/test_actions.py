"""The action board's contract: the memory and the Redis board keep the same rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from state.actions import ActionBoard, Actions, BoardItem, BoardRules, MemoryActionBoard
from state.memory import MemoryProfileStore
from state.redis_actions import RedisActionBoard, board_for
from state.redis_store import RedisProfileStore
from tests.state.conftest import delete_prefix

T0 = 1_772_445_600_000  # 2026-03-02T10:00:00Z
RULES = BoardRules(max_nbas=3, max_alerts=2, timeline_length=4, nba_ttl_ms=60_000)


@pytest.fixture(params=["memory", "redis", "cluster"])
def board(request: pytest.FixtureRequest) -> Iterator[ActionBoard]:
    if request.param == "memory":
        yield MemoryActionBoard(RULES)
        return
    prefix: str = request.getfixturevalue("redis_prefix")
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("cluster_client")
        yield RedisActionBoard(cluster, prefix, RULES)
        delete_prefix(cluster, prefix)
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    yield RedisActionBoard(client, prefix, RULES)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def nba(n: int, cid: str = "c1", at: int = T0, expires: int | None = None) -> BoardItem:
    body: dict[str, Any] = {"id": f"nba-{n}", "customer_id": cid, "time": _iso(at)}
    body["expires_at"] = _iso(expires) if expires is not None else None
    return BoardItem("n", cid, f"nba-{n}", at, body)


def alert(n: int, cid: str = "c1", at: int = T0) -> BoardItem:
    return BoardItem("a", cid, f"al-{n}", at, {"id": f"al-{n}", "time": _iso(at)})


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


def test_current_nbas_newest_first_and_bounded(board: ActionBoard) -> None:
    board.record([nba(n, at=T0 + n) for n in range(5)] + [nba(9, cid="c2")])
    assert ids(board.actions("c1", T0).nbas) == ["nba-4", "nba-3", "nba-2"]
    assert ids(board.actions("c2", T0).nbas) == ["nba-9"]
    assert board.nba("nba-0") is None  # trimmed away: unknown
    assert board.actions("nobody", T0).nbas == []


def test_expiry_by_expires_at_or_ttl(board: ActionBoard) -> None:
    board.record([nba(1, expires=T0 + 1_000), nba(2)])
    assert ids(board.actions("c1", T0 + 999).nbas) == ["nba-2", "nba-1"]
    assert ids(board.actions("c1", T0 + 1_000).nbas) == ["nba-2"]
    assert board.actions("c1", T0 + 60_000).nbas == []


def test_answers_follow_the_rules(board: ActionBoard) -> None:
    board.record([nba(1), nba(2)])
    first = board.answer("nba-1", "impression", T0)
    assert (first.verdict, first.outcomes) == ("recorded", ("impression",))
    listed = board.actions("c1", T0).nbas
    assert [n["outcomes"] for n in listed if n["id"] == "nba-1"] == [["impression"]]
    assert board.answer("nba-1", "accepted", T0).verdict == "recorded"
    assert ids(board.actions("c1", T0).nbas) == ["nba-2"]  # answered: off the board
    again = board.answer("nba-1", "accepted", T0 + 10**9)
    assert again.verdict == "duplicate"
    assert again.nba is not None
    assert again.nba["id"] == "nba-1"
    assert board.answer("nba-1", "rejected", T0).verdict == "conflict"
    assert board.answer("nba-2", "rejected", T0 + 60_000).verdict == "expired"
    assert board.answer("nba-404", "accepted", T0).verdict == "missing"
    found = board.nba("nba-1")
    assert found is not None
    assert found[1] == ("impression", "accepted")


def test_alerts_open_for_their_ttl_and_bounded(board: ActionBoard) -> None:
    board.record([alert(1, at=T0), alert(2, at=T0 + 1), alert(3, at=T0 + 2)])
    assert ids(board.actions("c1", T0).alerts) == ["al-3", "al-2"]
    assert board.actions("c1", T0 + RULES.alert_ttl_ms + 2).alerts == []


def test_timeline_keeps_the_last_entries_in_order(board: ActionBoard) -> None:
    entries = [BoardItem("t", "c1", f"e{n}", T0 + n, {"id": f"e{n}"}) for n in range(6)]
    board.record(entries)
    assert ids(board.timeline("c1")) == ["e2", "e3", "e4", "e5"]
    assert board.timeline("c2") == []


def test_forget_drops_everything_of_the_customer(board: ActionBoard) -> None:
    board.record([nba(1), alert(1), BoardItem("t", "c1", "e1", T0, {"id": "e1"}), nba(2, "c2")])
    board.forget(["c1"])
    assert board.actions("c1", T0).nbas == []
    assert board.actions("c1", T0).alerts == []
    assert board.timeline("c1") == []
    assert board.nba("nba-1") is None
    assert board.answer("nba-1", "accepted", T0).verdict == "missing"
    assert ids(board.actions("c2", T0).nbas) == ["nba-2"]


def test_redis_keys_expire(redis_client: redis.Redis, redis_prefix: str) -> None:
    board = RedisActionBoard(redis_client, redis_prefix, RULES)
    board.record([nba(1), BoardItem("t", "c1", "e1", T0, {"id": "e1"})])
    board_key = f"{redis_prefix}board:c1"
    keys = [board_key, f"{board_key}:n", f"{board_key}:t", f"{redis_prefix}boardnba:nba-1"]
    assert all(0 < redis_client.ttl(k) <= RULES.retention_seconds for k in keys)


def test_board_for_shares_the_store_backend(redis_client: redis.Redis, redis_prefix: str) -> None:
    memory = MemoryProfileStore()
    assert board_for(memory) is board_for(memory)
    assert board_for(MemoryProfileStore()) is not board_for(memory)
    redis_board = board_for(RedisProfileStore(redis_client, redis_prefix))
    assert isinstance(redis_board, RedisActionBoard)
    assert redis_board.prefix == redis_prefix


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "merge_all"])
def test_merge_reads_the_merged_ids_with_the_survivor(board: ActionBoard, batched: bool) -> None:
    line = [
        BoardItem("t", cid, f"e{n}", T0 + n, {"id": f"e{n}", "time": _iso(T0 + n)})
        for n, cid in enumerate(["c1", "c2", "c1", "c2", "c3"])
    ]
    board.record([nba(1, "c1", at=T0 + 1), nba(2, "c2"), alert(1, "c2"), *line[:4]])
    assert board.answer("nba-2", "impression", T0).verdict == "recorded"
    if batched:  # a batch's merges in one call: the chain is followed as one by one
        board.merge_all([("c2", "c3"), ("c1", "c2")])
    else:
        board.merge("c2", "c3")
        board.merge("c1", "c2")  # c3 comes along
    board.record([line[4], nba(3, "c2", at=T0 + 2)])  # in flight under a merged-away id
    assert ids(board.actions("c1", T0).nbas) == ["nba-3", "nba-1", "nba-2"]
    assert [n["outcomes"] for n in board.actions("c1", T0).nbas][2] == ["impression"]
    assert ids(board.actions("c1", T0).alerts) == ["al-1"]
    assert ids(board.timeline("c1")) == ["e1", "e2", "e3", "e4"]  # the last 4 of 5
    assert board.answer("nba-2", "accepted", T0).verdict == "recorded"
    assert ids(board.actions("c1", T0).nbas) == ["nba-3", "nba-1"]  # bounded: max 3
    board.record([nba(n, "c2", at=T0 + 10 + n) for n in range(4, 8)])
    assert ids(board.actions("c1", T0).nbas) == ["nba-7", "nba-6", "nba-5"]
    board.forget(["c1"])
    for cid in ("c1", "c2", "c3"):
        assert board.actions(cid, T0).nbas == []
        assert board.timeline(cid) == []
    assert board.nba("nba-3") is None


def test_writes_after_an_erasure_are_dropped(board: ActionBoard) -> None:
    board.merge("c1", "c2")
    board.forget(["c1"])
    board.record([nba(1, "c1"), nba(2, "c2"), alert(1, "c1"), BoardItem("t", "c2", "e", T0, {})])
    for cid in ("c1", "c2"):
        assert board.actions(cid, T0) == Actions()
        assert board.timeline(cid) == []
    assert board.nba("nba-1") is None
    assert board.nba("nba-2") is None
    board.record([nba(3, "c3")])  # others are not affected
    assert ids(board.actions("c3", T0).nbas) == ["nba-3"]


def test_one_batch_of_erased_and_live_customers(board: ActionBoard) -> None:
    # one script call for several customers (one per slot on a cluster): each its own answer
    board.forget(["c1"])
    batch = [nba(1, "c1"), nba(2, "c2", at=T0 + 1), nba(3, "c3"), alert(1, "c1"), alert(2, "c3")]
    board.record([*batch, BoardItem("t", "c2", "e", T0, {"id": "e"})])
    assert board.actions("c1", T0) == Actions()
    assert board.nba("nba-1") is None
    assert ids(board.actions("c2", T0).nbas) == ["nba-2"]
    assert ids(board.actions("c3", T0).nbas) == ["nba-3"]
    assert ids(board.actions("c3", T0).alerts) == ["al-2"]
    assert [entry["id"] for entry in board.timeline("c2")] == ["e"]
    assert board.nba("nba-2") is not None
    assert board.nba("nba-3") is not None


def test_a_cluster_node_without_the_script_gets_it_loaded(
    cluster_client: RedisCluster, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a script text no node has seen: every record call first meets NOSCRIPT, as after a
    # failover to a replica that never loaded it; the calls go again once it is loaded
    import state.redis_actions as redis_actions

    unseen = f"{redis_actions._RECORD}\n-- {redis_prefix}\n"
    monkeypatch.setattr(redis_actions, "_RECORD", unseen)
    board = RedisActionBoard(cluster_client, redis_prefix, RULES)
    try:
        assert not any(cluster_client.script_exists(board._record.sha))
        board.record([nba(1, "c1"), nba(2, "c2"), alert(1, "c3")])
        assert ids(board.actions("c1", T0).nbas) == ["nba-1"]
        assert ids(board.actions("c2", T0).nbas) == ["nba-2"]
        assert ids(board.actions("c3", T0).alerts) == ["al-1"]
        board.record([nba(3, "c1", at=T0 + 1)])  # known now: applied once, not twice
        assert ids(board.actions("c1", T0).nbas) == ["nba-3", "nba-1"]
    finally:
        delete_prefix(cluster_client, redis_prefix)
