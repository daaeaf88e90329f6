"""The Redis store sends a snapshot's identifiers only when they changed.

Each customer's identifiers carry a version (``iv`` in its ``cust:`` hash, new on
every change: a link, a merge, a shared value detached); the profile call sends the
versions the store holds identifiers at and gets members back only for the others.
Whatever the store's cache holds, the snapshots are those of the in-memory twin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from state.memory import MemoryProfileStore
from state.profile_hash import ProfileRules
from state.redis_store import RedisProfileStore
from tests.state.conftest import delete_prefix
from tests.state.test_profile_contract import ev, feed

RULES = ProfileRules(emit_interval_ms=0)  # every event publishes


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex[:12]}:"
    yield name
    delete_prefix(redis_client, name)


def _members_sent(store: RedisProfileStore) -> list[bool]:
    """Record, per snapshot row of each profile call, whether members came back."""
    sent: list[bool] = []
    call = store._call

    def spy(op: Any, *arguments: Any) -> Any:
        reply = call(op, *arguments)
        if op == "profile":
            sent.extend(row[3] is not None for row in reply)
        return reply

    store._call = spy  # type: ignore[method-assign]
    return sent


def _identifiers(snapshots: list[Any]) -> list[dict[str, list[str]]]:
    return [s.identifiers for s in snapshots]


def test_unchanged_identifiers_are_not_sent_again(redis_client: redis.Redis, prefix: str) -> None:
    store = RedisProfileStore(redis_client, prefix, rules=RULES)
    twin = MemoryProfileStore(rules=RULES)
    sent = _members_sent(store)
    ann = {"email": "ann@example.com"}
    batches = [
        [ev(1, 0, identifiers=ann)],
        [ev(2, 1, identifiers=ann)],  # same identifiers: not sent
        [ev(3, 2, identifiers={**ann, "phone": "+14155550101"})],  # a new link: sent
        [ev(4, 3, identifiers=ann)],
    ]
    for batch in batches:
        assert feed(store, batch) == feed(twin, batch)
    assert sent == [True, False, True, False]
    latest = store.profile(store.lookup("email", "ann@example.com") or "")
    assert latest is not None
    assert latest.identifiers == {"email": ["ann@example.com"], "phone": ["+14155550101"]}


def test_a_change_made_through_another_store_is_seen(
    redis_client: redis.Redis, prefix: str
) -> None:
    """Two processes: one links and merges, the other publishes (its cache goes stale)."""
    publisher = RedisProfileStore(redis_client, prefix, rules=RULES)
    other = RedisProfileStore(redis_client, prefix, rules=RULES)
    twin = MemoryProfileStore(rules=RULES)
    sent = _members_sent(publisher)
    ann, bob = {"email": "ann@example.com"}, {"crm_id": "C-1"}
    first = [ev(1, 0, identifiers=ann), ev(2, 0, identifiers=bob)]
    assert feed(publisher, first) == feed(twin, first)
    # the other process merges the two customers (a change the publisher never saw)
    merge = [ev(3, 1, identifiers={**ann, **bob})]
    assert feed(other, merge) == feed(twin, merge)
    later = [ev(4, 2, identifiers=ann)]
    published = feed(publisher, later)
    assert published == feed(twin, later)
    assert published[0].identifiers == {"crm_id": ["C-1"], "email": ["ann@example.com"]}
    assert sent == [True, True, True]  # the survivor's identifiers changed: sent again
    again = [ev(5, 3, identifiers=bob)]
    assert feed(publisher, again) == feed(twin, again)
    assert sent[3:] == [False]
