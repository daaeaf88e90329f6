"""A verifier for fault-injection runs, independent of the flow's code.

It reads what a run left behind (every output topic, from the beginning, and the
Redis graph) and compares it with a reference: the same input run offline,
once, without faults, with the in-memory store. It reports problems as plain
sentences; an empty list means the run lost nothing, duplicated nothing and
decided nothing differently.

Checks:

* every output the reference emits, of every kind (dead letters, identity
  merges, alerts, next-best actions, NPS windows with each revision), is on its
  topic, and every copy of it there carries exactly the reference's bytes; no
  output is there that the reference does not emit. Re-processing after a
  restore takes the decisions the first processing took (the store returns
  recorded resolve outcomes; the models, windows and contact histories are
  Bytewax state), so nothing is excused;
* every valid input event is counted exactly once: the final profiles (the latest
  version per customer on the compacted topic, and the store itself) count as
  many events as the reference, and each customer's final profile in the store
  has the reference's event count, lifetime value, identifiers and household (id and
  excerpt, as of the customer's latest event: a re-processed event gets the household
  answer it got first) (profiles are versioned snapshots, so their intermediate
  versions are not compared);
* the households (cx.households, compacted): the latest record of each household on the
  topic is, byte for byte, the reference's final ``households.jsonl`` record, and every
  household the reference lacks ends deleted. Their intermediate versions depend on how
  far other customers' events had got (a restore re-publishes households as the store
  holds them then), so, as for profiles, only the latest per key is compared;
* the identity graph in Redis is consistent (see tests/state/conftest.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.outputs import ProfileSnapshot
from tests.state.conftest import _graph_problems

COMPARED = ("dlq", "identity", "alerts", "nba", "nps", "insights", "decisions")
#: compacted kinds: the latest record per key against the reference's final state
LATEST = ("households",)
Key = tuple[str, int]  # (output id, revision: NPS windows are re-sent as revisions)


def consume_all(brokers: str, topic: str) -> list[Any]:
    """Every message of ``topic`` from the beginning of each partition to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"verify-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    parts = sorted(meta.partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    remaining, messages = set(parts), []
    while remaining:
        msg = consumer.poll(10)
        if msg is None:
            problem = f"timed out reading {topic}"
            raise AssertionError(problem)
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                raise AssertionError(str(error))
            remaining.discard(msg.partition())
            continue
        messages.append(msg)
    consumer.close()
    return messages


def _key(record: dict[str, Any]) -> Key:
    return record["id"], record.get("revision") or 0


def _figures(profile: dict[str, Any]) -> tuple[Any, ...]:
    household = profile["household_id"], profile["household"]  # as of its latest event
    return profile["event_count"], profile["lifetime_value"], profile["identifiers"], household


@dataclass(frozen=True)
class Reference:
    """What a fault-free run of the same input gives (from an offline output directory)."""

    event_count: int
    outputs: dict[str, dict[Key, bytes]]  # kind -> output key -> the record's bytes
    # customer id -> event count, LTV, identifiers, (household id, excerpt)
    profiles: dict[str, tuple[Any, ...]]
    households: dict[str, bytes]  # household id -> its final record's bytes

    @classmethod
    def from_offline(cls, out_dir: Path) -> Reference:
        """The reference from an offline run's files."""
        profiles = _lines(out_dir / "profiles.jsonl")
        outputs = {
            kind: {
                _key(orjson.loads(line)): line
                for line in (out_dir / f"{kind}.jsonl").read_bytes().splitlines()
            }
            for kind in COMPARED
        }
        figures = {p["customer_id"]: _figures(p) for p in profiles}
        households = {
            orjson.loads(line)["household_id"]: line
            for line in (out_dir / "households.jsonl").read_bytes().splitlines()
        }
        return cls(sum(p["event_count"] for p in profiles), outputs, figures, households)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def verify(
    brokers: str,
    topics: dict[str, str],
    client: redis.Redis,
    prefix: str,
    reference: Reference,
    store_profiles: list[ProfileSnapshot],
) -> list[str]:
    """Everything wrong with what a run left in ``topics`` and Redis (empty: all good)."""
    problems: list[str] = []
    by_kind = {kind: consume_all(brokers, topic) for kind, topic in topics.items()}

    for kind in COMPARED:
        expected = reference.outputs[kind]
        sent: dict[Key, set[bytes]] = defaultdict(set)
        for m in by_kind[kind]:
            sent[_key(orjson.loads(m.value()))].add(bytes(m.value()))
        missing = sorted(set(expected) - set(sent))
        extra = sorted(set(sent) - set(expected))
        if missing:
            problems.append(f"{kind}: {len(missing)} outputs missing, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{kind}: {len(extra)} outputs the reference lacks, e.g. {extra[:3]}")
        problems += [
            f"{kind}: {key} differs from the reference: {_differ(copies | {expected[key]})}"
            for key, copies in sorted(sent.items())
            if key in expected and copies != {expected[key]}
        ][:10]

    latest: dict[str, dict[str, Any] | None] = {}
    versions: dict[str, int] = {}
    for m in by_kind["profiles"]:
        customer = m.key().decode()
        if m.value() is None:
            latest[customer] = None
            continue
        record = orjson.loads(m.value())
        if record["version"] >= versions.get(customer, -1):
            versions[customer] = record["version"]
            latest[customer] = record
    published = sum(p["event_count"] for p in latest.values() if p is not None)
    if published != reference.event_count:
        problems.append(
            f"profiles topic counts {published} events, expected {reference.event_count}"
        )
        live = {p.customer_id: p.event_count for p in store_profiles}
        problems += [
            f"  {cid}: {p['event_count']} events (version {p['version']}) on the topic, "
            f"{live.get(cid, 'not a live customer')} in the store"
            for cid, p in sorted(latest.items())
            if p is not None and live.get(cid) != p["event_count"]
        ][:10]
    stored = sum(p.event_count for p in store_profiles)
    if stored != reference.event_count:
        problems.append(f"Redis profiles count {stored} events, expected {reference.event_count}")

    final = {p.customer_id: _figures(orjson.loads(p.model_dump_json())) for p in store_profiles}
    differ = sorted(
        c
        for c in final.keys() | reference.profiles.keys()
        if final.get(c) != reference.profiles.get(c)
    )
    problems += [
        f"profile {c}: {final.get(c)} in Redis, {reference.profiles.get(c)} in the reference"
        for c in differ[:10]
    ]

    problems += _latest_problems(by_kind["households"], reference.households)
    problems += [f"identity graph: {p}" for p in _graph_problems(client, prefix)]
    return problems


def _latest_problems(messages: list[Any], expected: dict[str, bytes]) -> list[str]:
    """How the latest record per key of a compacted topic differs from ``expected``."""
    latest: dict[str, bytes | None] = {}
    for m in messages:
        latest[m.key().decode()] = None if m.value() is None else bytes(m.value())
    live = {k: v for k, v in latest.items() if v is not None}
    return [
        f"households: {key} is {live.get(key)!r} on the topic, {expected.get(key)!r} in the "
        "reference"
        for key in sorted(live.keys() | expected.keys())
        if live.get(key) != expected.get(key)
    ][:10]


def _differ(values: set[bytes]) -> str:
    """The fields in which the records differ, with their values."""
    records = [orjson.loads(v) for v in values]
    keys = sorted(
        {k for r in records for k in r if len({orjson.dumps(x.get(k)) for x in records}) > 1}
    )
    return "; ".join(f"{k}: {[r.get(k) for r in records]}" for k in keys)


def _header(message: Any, name: str) -> str:
    for key, value in message.headers() or []:
        if key == name:
            return bytes(value).decode()
    return ""
