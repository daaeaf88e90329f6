"""Several OS processes adding members to the same households, in different orders.

Each process links every member (each link also a re-delivery of another process's:
the same event id, with the member's figures) in its own shuffled order and batch
split, against one real Redis. The households, and their totals (each event counted
once), must end as one pass through the in-memory twin leaves them.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from multiprocessing.synchronize import Barrier

import redis

from state.household_figures import MemberFigures
from state.households import HouseholdChange, HouseholdItem, MemoryHouseholdStore
from state.memory import MemoryProfileStore
from state.profile_hash import ProfileDelta
from state.redis_households import RedisHouseholdStore
from state.redis_store import RedisProfileStore
from state.store import ProfileStore, ResolveRequest
from tests.state.conftest import REDIS_URL, delete_prefix

PROCESSES = 4
PEOPLE = 60
Link = tuple[int, dict[str, str]]


def _items(ids: list[str], links: list[tuple[int, Link]]) -> list[HouseholdItem]:
    out = []
    for k, (p, s) in links:
        figures = MemberFigures(f"{k:015d}|ev{k}", k, amount_cents=k + 1, nps=k % 11)
        change = HouseholdChange("link", ids[p], s, figures=figures)
        out.append(HouseholdItem(f"ev{k}", ids[p], (change,)))
    return out


def _links() -> list[Link]:
    """Families of 3 on shared addresses (in variants) and tablets, a kiosk, singles."""
    rng = random.Random(11)
    links: list[Link] = []
    for person in range(PEOPLE):
        family = person // 3
        spelling = rng.choice(["Street", "St.", "STREET", "st"])
        links.append((person, {"address": f"{family} Long {spelling}, Flat {family % 2}"}))
        if person % 3 == 0:
            links.append((person, {"device_id": f"tablet-{family // 2}"}))
        links.append((person, {"device_id": "kiosk"}))
    return links


def _customers(store: ProfileStore) -> list[str]:
    requests = [ResolveRequest(f"e{i}", i, {"email": f"p{i}@x.co"}) for i in range(PEOPLE)]
    ids = [r.customer_id or "" for r in store.resolve_batch(requests)]
    store.apply_profiles(
        [ProfileDelta(c, f"e{i}", i, "web", "w", amount_cents=i) for i, c in enumerate(ids)]
    )
    return ids


def _worker(prefix: str, ids: list[str], seed: int, barrier: Barrier) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisHouseholdStore(client, prefix)
    rng = random.Random(seed)
    links = list(enumerate(_links()))
    rng.shuffle(links)
    barrier.wait()
    at = 0
    while at < len(links):
        size = rng.randint(1, 15)
        store.step(_items(ids, links[at : at + size]))
        at += size
    client.close()


def test_processes_in_different_orders_converge(redis_client: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        ids = _customers(RedisProfileStore(redis_client, prefix))
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        workers = [
            context.Process(target=_worker, args=(prefix, ids, seed, barrier))
            for seed in range(PROCESSES)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert [w.exitcode for w in workers] == [0] * PROCESSES
        memory = MemoryProfileStore()
        assert _customers(memory) == ids
        reference = MemoryHouseholdStore()
        reference.step(_items(ids, list(enumerate(_links()))))
        expected = reference.households()
        # families of 3 by address, two families per tablet; the kiosk links nobody
        assert [h.member_count for h in expected] == [6] * (PEOPLE // 6)
        total = sum(k + 1 for k in range(len(_links())))
        assert sum(round(h.lifetime_value * 100) for h in expected) == total  # each event once
        assert RedisHouseholdStore(redis_client, prefix).households() == expected
    finally:
        delete_prefix(redis_client, prefix)
