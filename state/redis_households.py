"""Households in Redis: one EVALSHA per batch (``state/lua/households.lua``).

Python prepares the evidence (normalise, block, hash: :mod:`state.household_rules`),
the script applies the batch's items one after the other (the household graph, the
members' figures and the households' totals: :mod:`state.household_figures`) and
answers each item with its customer's household, and the reply becomes snapshots
through the code the memory twin uses (:func:`state.household_figures.build_snapshot`).
The script reads no key outside the household keys: no profile, no identity key.

Every household key carries its household id as a hash tag (``hh:{<id>}...``), each
evidence value and customer its own, so they can spread over a Redis Cluster later.
On one primary a batch is one call. On a Redis Cluster today the household keys go
where the identity graph goes (:func:`state.redis_store.graph_prefix`: the prefix's
tag comes first, so it is the one Redis hashes), and each call declares that prefix
as its one key, so the call is routed to the graph's primary and stays one atomic
script. To spread households over the primaries it would split in two: the walk over
evidence and customer keys (which, like identity.lua's graph, spans slots), then one
pipelined call per household slot writing members, types, totals and versions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from schemas.outputs import HouseholdSnapshot
from state.hashing import Hasher, PlainIdentifiers
from state.household_figures import Figures, HouseholdView, build_snapshot
from state.household_rules import OVER_LIMIT_KEPT, HouseholdPolicy
from state.households import (
    BUDGET_DAYS_KEPT,
    RETENTION_MS,
    HouseholdBatch,
    HouseholdChange,
    HouseholdItem,
    Spend,
)
from state.redis_store import graph_prefix

SCRIPT = (files("state") / "lua" / "households.lua").read_text(encoding="utf-8")
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
BUDGET = (files("state") / "lua" / "household_budget.lua").read_text(encoding="utf-8")
BUDGET_SHA = hashlib.sha1(BUDGET.encode(), usedforsecurity=False).hexdigest()
_NO_FIGURES = ("", 0, 0, 0, "", "", "", "")
_DEFAULTS = ("0", "0", "", "", "0", "0")  # ltv, orders, nps, churn, open, last


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
    """:class:`state.households.HouseholdStore` in Redis (the profile store's prefix).

    Attributes
    ----------
    round_trips
        Network calls made so far: one per :meth:`step` and per :meth:`spend`.
    """

    def __init__(  # noqa: PLR0913 (the client and its prefix, then keyword-only settings)
        self,
        client: redis.Redis | RedisCluster,
        prefix: str = "cx:",
        policy: HouseholdPolicy | None = None,
        hasher: Hasher | None = None,
        *,
        owns_client: bool = False,
        retention_ms: int = RETENTION_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        cluster = isinstance(client, RedisCluster)
        self.prefix = graph_prefix(prefix, cluster)  # next to the graph's keys on a cluster
        # the one declared key of each call: routes it to the graph's slot on a cluster
        self._keys: tuple[str, ...] = (self.prefix,) if cluster else ()
        self.policy = policy or HouseholdPolicy()
        self.hasher = hasher or PlainIdentifiers()
        self.retention_ms = retention_ms
        self.clock = clock
        self._policy_json = orjson.dumps(
            {
                "limits": self.policy.limits_json(),
                "default_limit": self.policy.default_limit,
                "kept": OVER_LIMIT_KEPT,
                "min_members": self.policy.min_members,
            }
        ).decode()
        self.round_trips = 0

    def _eval(self, script: tuple[str, str], keys: Sequence[str], args: list[str | int]) -> Any:
        self.round_trips += 1
        try:
            return self._client.evalsha(script[1], len(keys), *keys, *args)
        except NoScriptError:
            return self._client.eval(script[0], len(keys), *keys, *args)

    def _change_args(self, change: HouseholdChange) -> list[str | int]:
        if change.kind != "link":
            return [change.kind, change.customer_id, change.survivor_id, 0]
        evidence = self.policy.evidence_of(change.identifiers, self.hasher)
        args: list[str | int] = ["link", change.customer_id, "", len(evidence), *evidence]
        f = change.figures
        if f is None:
            return args + list(_NO_FIGURES)
        case_id, case_value = f.case if f.case is not None else ("", "")
        nps = "" if f.nps is None else str(f.nps)
        churn = "" if f.churn is None else f.churn
        return [*args, f.stamp, f.ms, f.amount_cents, int(f.order), nps, churn, case_id, case_value]

    def step(self, items: Sequence[HouseholdItem]) -> HouseholdBatch:
        now = int(self.clock() * 1000)
        args: list[str | int] = [self.prefix, self._policy_json, now, self.retention_ms]
        args.append(len(items))
        for item in items:
            args += (item.event_id, item.customer_id or "", len(item.changes))
            for change in item.changes:
                args += self._change_args(change)
        reply: dict[str, Any] = orjson.loads(self._eval((SCRIPT, SCRIPT_SHA), self._keys, args))
        described = reply["households"] if isinstance(reply["households"], dict) else {}
        versions = reply["versions"] if isinstance(reply["versions"], dict) else {}
        return HouseholdBatch(
            [self._snapshot(hid, *described[hid]) for hid in _list(reply["published"])],
            _list(reply["gone"]),
            {hid: int(v) for hid, v in versions.items()},
            [HouseholdView.parse(text) for text in _list(reply["contexts"])],
        )

    @staticmethod
    def _snapshot(hid: str, types: Any, rows: Any) -> HouseholdSnapshot:
        return build_snapshot(hid, _list(types), dict(_figures(r) for r in _list(rows)))

    def household_of(self, customer_id: str) -> HouseholdSnapshot | None:
        c = customer_id
        for _ in range(64):  # the survivor of a merged id (households.lua canonical)
            survivor = self._client.get(f"{self.prefix}hh:c:{{{c}}}:to")
            if survivor is None:
                break
            c = _text(survivor)
        hid = self._client.get(f"{self.prefix}hh:c:{{{c}}}:of")
        return None if hid is None else self._household(_text(hid))

    def _household(self, hid: str) -> HouseholdSnapshot | None:
        key = f"{self.prefix}hh:{{{hid}}}"
        members = sorted(_text(v) for v in self._client.smembers(key))
        if not members:
            return None
        rows = []
        for c in members:
            fields = ("ltv", "orders", "nps", "churn", "open", "last")
            got = self._client.hmget(f"{self.prefix}hh:c:{{{c}}}:f", fields)
            defaults = ("0", "0", "", "", "0", "0")
            rows.append(
                [c, *(_text(v) if v is not None else d for v, d in zip(got, defaults, strict=True))]
            )
        types = orjson.loads(self._client.get(key + ":types") or b"[]")
        return self._snapshot(hid, types, rows)

    def households(self) -> list[HouseholdSnapshot]:
        ids = sorted(_text(v) for v in self._client.smembers(self.prefix + "hh:ids"))
        return [h for hid in ids if (h := self._household(hid)) is not None]

    def spend(self, asks: Sequence[Spend]) -> list[bool]:
        if not asks:
            return []
        args: list[str | int] = [self.prefix, BUDGET_DAYS_KEPT * 86_400]
        for ask in asks:
            args += (ask.household_id, ask.day, ask.token, ask.limit)
        keys = self._keys
        fits = self._eval((BUDGET, BUDGET_SHA), keys, args)
        return [bool(x) for x in fits]

    def close(self) -> None:
        """Close the client if it was made for this store (``owns_client``)."""
        if self._owns_client:
            self._client.close()
