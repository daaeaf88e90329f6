"""Households in Redis: one EVALSHA per batch (``state/lua/households.lua``).

Python prepares the evidence (normalise, block, hash: :mod:`state.household_rules`),
the script walks the household graph and reads the members' profiles, and the reply
becomes snapshots through the code the memory twin uses
(:func:`state.households.build_snapshot`).

Every household key carries its household id as a hash tag (``hh:{<id>}...``), each
evidence value and customer its own, so they can spread over a Redis Cluster later.
On one primary a batch is one call. On a Redis Cluster today the household keys go
where the identity graph and the profiles go (:func:`state.redis_store.graph_prefix`:
the prefix's tag comes first, so it is the one Redis hashes), and each call declares
that prefix as its one key, so the call is routed to the graph's primary and stays one
atomic script. To spread households over the primaries it would split in two: the walk
over evidence and customer keys (which, like identity.lua's graph, spans slots and
would move with the identity graph's shard plan), then one pipelined call per
household slot writing members, types and versions and reading the members'
profiles (each profile in its customer's slot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from schemas.outputs import HouseholdSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.household_rules import OVER_LIMIT_KEPT, HouseholdPolicy
from state.households import (
    BUDGET_DAYS_KEPT,
    Figures,
    HouseholdBatch,
    HouseholdChange,
    build_snapshot,
)
from state.redis_store import graph_prefix

SCRIPT = (files("state") / "lua" / "households.lua").read_text(encoding="utf-8")
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
BUDGET = (files("state") / "lua" / "household_budget.lua").read_text(encoding="utf-8")
BUDGET_SHA = hashlib.sha1(BUDGET.encode(), usedforsecurity=False).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _list(value: Any) -> list[Any]:
    """Cjson writes an empty array as ``{}``."""
    return value if isinstance(value, list) else []


def _figures(row: list[str]) -> tuple[str, Figures]:
    cid, ltv, orders, nps, churn, open_cases, last = row
    return cid, (
        int(ltv),
        int(orders),
        int(nps) if nps else None,
        float(churn) if churn else None,
        int(open_cases),
        int(last),
    )


class RedisHouseholdStore:
    """:class:`state.households.HouseholdStore` next to a Redis profile store (same prefix).

    Attributes
    ----------
    round_trips
        Network calls made so far: one per :meth:`apply`.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        prefix: str = "cx:",
        policy: HouseholdPolicy | None = None,
        hasher: Hasher | None = None,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        cluster = isinstance(client, RedisCluster)
        self.prefix = graph_prefix(prefix, cluster)  # next to the graph's keys on a cluster
        # the one declared key of each call: routes it to the graph's slot on a cluster
        self._keys: tuple[str, ...] = (self.prefix,) if cluster else ()
        self.policy = policy or HouseholdPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self._policy_json = orjson.dumps(
            {
                "limits": self.policy.limits_json(),
                "default_limit": self.policy.default_limit,
                "kept": OVER_LIMIT_KEPT,
                "min_members": self.policy.min_members,
            }
        ).decode()
        self.round_trips = 0

    def _call(self, args: list[str | int]) -> dict[str, Any]:
        self.round_trips += 1
        try:
            reply = self._client.evalsha(SCRIPT_SHA, len(self._keys), *self._keys, *args)
        except NoScriptError:
            reply = self._client.eval(SCRIPT, len(self._keys), *self._keys, *args)
        parsed: dict[str, Any] = orjson.loads(reply)
        return parsed

    def apply(
        self, changes: Sequence[HouseholdChange], excerpts_for: Sequence[str] = ()
    ) -> HouseholdBatch:
        args: list[str | int] = [self.prefix, self._policy_json, len(changes)]
        for change in changes:
            evidence = (
                self.policy.evidence_of(change.identifiers, self.hasher)
                if change.kind == "link"
                else []
            )
            args += (change.kind, change.customer_id, change.survivor_id, len(evidence), *evidence)
        args += excerpts_for
        reply = self._call(args)
        described = reply["households"] if isinstance(reply["households"], dict) else {}
        snapshots = {hid: self._snapshot(hid, *row) for hid, row in described.items()}
        excerpts = {
            cid: snapshots.get(hid) if hid else None for cid, hid in _list(reply["excerpts"])
        }
        versions = reply["versions"] if isinstance(reply["versions"], dict) else {}
        return HouseholdBatch(
            [snapshots[hid] for hid in _list(reply["published"])],
            _list(reply["gone"]),
            {hid: int(v) for hid, v in versions.items()},
            excerpts,
        )

    @staticmethod
    def _snapshot(hid: str, types: Any, rows: Any) -> HouseholdSnapshot:
        return build_snapshot(hid, _list(types), dict(_figures(r) for r in _list(rows)))

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        return self.apply((), [customer_id]).excerpts[customer_id]

    def households(self) -> list[HouseholdSnapshot]:
        ids = sorted(_text(v) for v in self._client.smembers(self.prefix + "hh:ids"))
        out = []
        for hid in ids:
            key = f"{self.prefix}hh:{{{hid}}}"
            members = sorted(_text(v) for v in self._client.smembers(key))
            if members:
                snapshot = self.household_of(members[0])
                if snapshot is not None:
                    out.append(snapshot)
        return out

    def spend(self, household_id: str, day: int, token: str, limit: int) -> bool:
        key = f"{self.prefix}hh:{{{household_id}}}:sent:{day}"
        args = (token, limit, BUDGET_DAYS_KEPT * 86_400)
        self.round_trips += 1
        try:
            fits = self._client.evalsha(BUDGET_SHA, 1, key, *args)
        except NoScriptError:
            fits = self._client.eval(BUDGET, 1, key, *args)
        return bool(fits)

    def close(self) -> None:
        """Close the client if it was made for this store (``owns_client``)."""
        if self._owns_client:
            self._client.close()
