"""Several OS processes resolving overlapping identifiers against one real Redis
(a single server, then the 3-primary Redis Cluster of scripts/redis_cluster.sh).

Each process replays the same events (so every event is also a re-delivery) in
its own shuffled order of batches. The identifiers form known connected
components that never hit a limit, so whatever the interleaving the graph must
end with one customer per component.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import redis
from redis.cluster import RedisCluster

from state.redis_store import RedisProfileStore
from state.store import IdentityPolicy, ResolveRequest
from tests.state.conftest import CLUSTER_URL, REDIS_URL, _graph_problems, delete_prefix

PROCESSES = 4
COMPONENTS = 300
BATCH = 20
# fewest and most of each type per component: under the default limits, so no
# merge is ever refused, and always two types, so the component can be connected
TYPES = {"email": (0, 3), "phone": (0, 2), "device_id": (1, 4), "cookie_id": (1, 6)}
# Devices and cookies here connect the components, so none counts as weak (the
# weak-identifier rule has its own tests in the contract suite).
POLICY = IdentityPolicy(weak_types=())

Event = tuple[str, int, dict[str, str]]
# created, merges ("event survivor merged"), unexpected, customer id by event id
Report = tuple[list[str], list[str], list[str], dict[str, str | None]]


def _universe(seed: int) -> tuple[list[list[tuple[str, str]]], list[Event]]:
    """Components of identifiers, and events that connect each one (plus noise)."""
    rng = random.Random(seed)
    components: list[list[tuple[str, str]]] = []
    events: list[Event] = []
    for c in range(COMPONENTS):
        ids = [
            (id_type, f"{id_type}-{c}-{n}")
            for id_type, (least, most) in TYPES.items()
            for n in range(rng.randint(least, most))
        ]
        rng.shuffle(ids)
        # An event carries one value per type, so two cookies only ever meet through
        # another type: start with two different types so every later identifier
        # has a partner of another type among the ones placed before it.
        second = next(i for i, (t, _) in enumerate(ids) if t != ids[0][0])
        ids[1], ids[second] = ids[second], ids[1]
        components.append(ids)
        # a random spanning tree: each identifier meets one placed before it ...
        for i in range(1, len(ids)):
            partner = rng.choice([p for p in ids[:i] if p[0] != ids[i][0]])
            events.append((f"tree-{c}-{i}", rng.randrange(10**6), dict([ids[i], partner])))
        # ... plus events naming one or a few identifiers of the component
        for n in range(len(ids)):
            picked = dict(rng.sample(ids, rng.randint(1, min(3, len(ids)))))
            events.append((f"extra-{c}-{n}", rng.randrange(10**6), picked))
    # spread each component over many batches, so merges happen between batches
    rng.shuffle(events)
    return components, events


def _worker(
    url: str, prefix: str, events: list[Event], seed: int, start: Barrier, out: Queue[Report]
) -> None:
    rng = random.Random(seed)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    rng.shuffle(batches)
    store = RedisProfileStore(url, prefix, policy=POLICY)
    created: list[str] = []
    merged: list[str] = []
    unexpected: list[str] = []
    landed: dict[str, str | None] = {}
    start.wait()
    try:
        for batch in batches:
            results = store.resolve_batch([ResolveRequest(*event) for event in batch])
            for event, result in zip(batch, results, strict=True):
                landed[event[0]] = result.customer_id
                if result.created and result.customer_id is not None:
                    created.append(result.customer_id)
                merged += [f"{m.event_id} {m.survivor_id} {m.merged_id}" for m in result.merges]
                if result.conflicts or result.ignored:
                    unexpected.append(repr(result))
    except Exception as exc:  # reported to the test instead of dying silently
        unexpected.append(repr(exc))
    finally:
        store.close()
        out.put((created, merged, unexpected, landed))


@pytest.mark.parametrize("backend", ["redis", "cluster"])
def test_processes_converge_on_one_customer_per_component(
    backend: str, request: pytest.FixtureRequest
) -> None:
    client: redis.Redis | RedisCluster
    if backend == "redis":
        client, url = request.getfixturevalue("redis_client"), REDIS_URL
    else:
        client = request.getfixturevalue("cluster_client")
        url = CLUSTER_URL.replace("redis://", "redis+cluster://")
    redis_prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        _converge(client, url, redis_prefix)
    finally:
        delete_prefix(client, redis_prefix)


def _converge(client: redis.Redis | RedisCluster, url: str, redis_prefix: str) -> None:
    components, events = _universe(seed=11)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    out: Queue[Report] = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, redis_prefix, events, seed, start, out))
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=120) for _ in workers]  # drain before join
    for worker in workers:
        worker.join(timeout=30)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    assert [problem for _, _, problems, _ in reports for problem in problems] == []
    # whoever resolved an event first, every process got that same result for it
    first_landed = reports[0][3]
    assert all(landed == first_landed for *_, landed in reports)

    store = RedisProfileStore(client, redis_prefix, policy=POLICY)
    owners = [{store.lookup(t, v) for t, v in ids} for ids in components]
    assert all(len(o) == 1 and None not in o for o in owners), "a component is split or unlinked"
    canonical = sorted(o.pop() or "" for o in owners)
    assert store.customers() == canonical  # one per component, none left over
    for ids in components:
        held = store.identifiers(store.lookup(*ids[0]) or "")
        assert sorted(ids) == sorted((t, v) for t, values in held.items() for v in values)
    # every customer ever created was merged away exactly once or is still here; a
    # resolution (created flag and merges included) is reported again by every later
    # resolution of its event (recorded outcomes), never by another event
    created = {c for made, *_ in reports for c in made}
    reported = [m for _, merges, *_ in reports for m in merges]
    merged = [m.split()[2] for m in set(reported)]
    assert len(merged) == len(set(merged))
    assert sorted(created - set(merged)) == canonical
    assert len(reported) > len(set(reported)), "no merge was reported again"
    assert _graph_problems(client, store.key_prefix) == []
