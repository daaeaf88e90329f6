"""Event attribution: which person's events ended up in which customer.

Pairwise identity scores (:func:`replay.evaluate.identity_scores`) count pairs of
identifiers and so cannot see *misattribution*: one order of Bea's counted in
Ann's profile moves no identifier. These scores follow the events instead.

**Each event's customer** is the customer the run counted it in, under its
final (canonical) id. With ``attribution.jsonl`` in the output directory (one
``{"event_id", "customer_id"}`` line per resolved event: the customer resolve
returned) it is read from there. Without it, it is derived from the log and
the outputs, following the store's contract (``state.store``): an event
that caused an ``identity_conflict`` alert went to that alert's
``customer_id`` (the customer the walk chose); else one that caused a merge
went to the merge's ``survivor_id``; else every identifier of it that got
linked is held by its customer, so the final profile holding its identifiers
is its customer (none: anonymous; several: *underived*, counted apart).
Customer ids are then followed through the merges in ``identity.jsonl`` to the
final survivor; a customer without a final profile (erased) means no customer.
``check`` compares the events so attributed per customer with each profile's
``event_count``; a mismatch means the derivation no longer fits the store.

**Definitions**, over the distinct valid events of the world (``event_ids`` of
each true person in the truth):

* A person's *majority customer* holds the most of their attributed events
  (ties: the smallest customer id). A customer *claimed* by exactly one person
  (the majority customer of that one person only) is that person's *own
  customer*; one claimed by two or more people is *shared*: it is nobody's own,
  since treating it as one person's would hand them another person's history.
* An event is *correct* when its customer is its person's own customer.
* It is *misattributed* when its customer is another person's own customer, a
  shared customer, or a customer nobody claims whose plurality person (most
  events; ties: smallest person id) is someone else.
* It is *split off* when its customer is claimed by nobody and its plurality
  person is the event's own person: a fragment of the right person, not
  another person's data.
* *Unattributed* events have no customer (anonymous, or never resolved).
  ``correct_share`` and ``misattributed_share`` are over attributed events.
* *Misattributed revenue*: the amounts of misattributed ``*.order.placed``
  events, per currency.
* *People without a customer of their own*: people with events whose majority
  customer is shared, or who have no attributed event at all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas.identifiers import HOUSEHOLD_ONLY_TYPES

ERASE_TYPE = "cx.privacy.erase"
ATTRIBUTION_FILE = "attribution.jsonl"
MAX_HOPS = 10_000


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects of a JSON-lines file ([] when it does not exist)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@dataclass(frozen=True, slots=True)
class LogEvent:
    """What attribution needs of one valid event of the log."""

    event_id: str
    members: tuple[str, ...]  # "type:value", normalised
    amount: float | None = None  # set on orders only
    currency: str | None = None


def read_events(log: Path) -> list[LogEvent]:
    """Return the distinct valid events of ``log``, erase requests left out.

    An event delivered more than once counts once, at its first delivery.
    """
    from pydantic import ValidationError

    from replay.log import read_log
    from schemas.envelope import InteractionEvent

    seen: set[str] = set()
    out: list[LogEvent] = []
    for message in read_log(log):
        try:
            event = InteractionEvent.model_validate_json(message.value or b"")
        except ValidationError:
            continue
        if event.id in seen or event.type == ERASE_TYPE:
            continue
        seen.add(event.id)
        data = event.data
        order = event.type.endswith(".order.placed") and data.amount is not None
        out.append(
            LogEvent(
                event.id,
                # household-only identifiers (an address) are nobody's identity
                tuple(
                    f"{t}:{v}" for t, v in data.identifiers.items() if t not in HOUSEHOLD_ONLY_TYPES
                ),
                float(data.amount) if order and data.amount is not None else None,
                (data.currency or "") if order else None,
            )
        )
    return out


def _survivors(identity: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Map each merged id to its final survivor, through chains of merges."""
    merged = {r["merged_id"]: r["survivor_id"] for r in identity if "survivor_id" in r}
    final: dict[str, str] = {}
    for start in merged:
        path: list[str] = []
        cid = start
        while cid in merged and cid not in final and len(path) < MAX_HOPS:
            path.append(cid)
            cid = merged[cid]
        end = final.get(cid, cid)
        for member in path:
            final[member] = end
    return final


def event_customers(
    events: list[LogEvent], out_dir: Path
) -> tuple[dict[str, str | None], dict[str, Any]]:
    """Map each event id to its final customer (None: none), and say how it was found.

    How: ``source``, ``underived``, ``check``; see the module docstring.
    """
    profiles = read_rows(out_dir / "profiles.jsonl")
    identity = read_rows(out_dir / "identity.jsonl")
    survivor = _survivors(identity)
    alive = {p["customer_id"] for p in profiles}
    explicit = out_dir / ATTRIBUTION_FILE
    target: dict[str, str] = {}
    if explicit.exists():
        source = ATTRIBUTION_FILE
        target = {r["event_id"]: r["customer_id"] for r in read_rows(explicit) if r["customer_id"]}
    else:
        source = "derived: identity_conflict alerts, merges, final profiles' identifiers"
        for row in identity:
            if "survivor_id" in row:
                target.setdefault(row["event_id"], row["survivor_id"])
        for alert in read_rows(out_dir / "alerts.jsonl"):
            if alert["kind"] == "identity_conflict" and alert["customer_id"]:
                target[alert["evidence"]["event_ids"][0]] = alert["customer_id"]
    holder = {
        f"{t}:{v}": p["customer_id"]
        for p in profiles
        for t, values in p["identifiers"].items()
        for v in values
    }
    customer_of: dict[str, str | None] = {}
    underived = 0
    for event in events:
        cid = target.get(event.event_id)
        if cid is not None:
            cid = survivor.get(cid, cid)
        elif not explicit.exists():
            holders = {holder[m] for m in event.members if m in holder}
            underived += len(holders) > 1
            cid = holders.pop() if len(holders) == 1 else None
        customer_of[event.event_id] = cid if cid in alive else None
    counted = Counter(c for c in customer_of.values() if c is not None)
    matching = sum(1 for p in profiles if p["event_count"] == counted[p["customer_id"]])
    return customer_of, {
        "source": source,
        "underived": underived,
        "check": {"profiles": len(profiles), "profiles_whose_event_count_matches": matching},
    }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def attribution_scores(
    truth: dict[str, Any], customer_of: dict[str, str | None], events: list[LogEvent]
) -> dict[str, Any]:
    """Score the attribution of events to customers.

    Correct and misattributed events, misattributed revenue, people without a
    customer of their own (definitions in the module docstring).
    """
    cells: dict[str, Counter[str]] = {}
    unattributed = 0
    for person in truth["customers"]:
        if not person["event_ids"]:
            continue
        row: Counter[str] = Counter()
        cells[person["person_id"]] = row
        for event_id in person["event_ids"]:
            cid = customer_of.get(event_id)
            if cid is None:
                unattributed += 1
            else:
                row[cid] += 1
    majority = {
        p: min(row.items(), key=lambda kv: (-kv[1], kv[0]))[0] for p, row in cells.items() if row
    }
    claims = Counter(majority.values())
    own = {p: c for p, c in majority.items() if claims[c] == 1}
    by_customer: dict[str, Counter[str]] = defaultdict(Counter)
    for p, row in cells.items():
        for cid, n in row.items():
            by_customer[cid][p] = n
    plurality = {
        c: min(row.items(), key=lambda kv: (-kv[1], kv[0]))[0] for c, row in by_customer.items()
    }

    def verdict(person: str, cid: str) -> str:
        if own.get(person) == cid:
            return "correct"
        if claims[cid] > 1:
            return "shared"
        if claims[cid] == 0 and plurality[cid] == person:
            return "split_off"
        return "other_person"

    kinds: Counter[str] = Counter()
    wrong: set[str] = set()
    for person in truth["customers"]:
        for event_id in person["event_ids"]:
            cid = customer_of.get(event_id)
            if cid is not None:
                kind = verdict(person["person_id"], cid)
                kinds[kind] += 1
                if kind in ("shared", "other_person"):
                    wrong.add(event_id)
    attributed = sum(kinds.values())
    misattributed = kinds["shared"] + kinds["other_person"]
    no_events = sum(1 for row in cells.values() if not row)
    return {
        "events": attributed + unattributed,
        "attributed": attributed,
        "unattributed": unattributed,
        "correct": kinds["correct"],
        "correct_share": _share(kinds["correct"], attributed),
        "misattributed": misattributed,
        "misattributed_share": _share(misattributed, attributed),
        "misattributed_to_another_persons_customer": kinds["other_person"],
        "misattributed_to_a_shared_customer": kinds["shared"],
        "split_off": kinds["split_off"],
        "revenue": _revenue(events, wrong),
        "people": len(cells),
        "people_without_own_customer": len(cells) - len(own),
        "people_whose_majority_customer_is_shared": len(majority) - len(own),
        "people_without_attributed_events": no_events,
        "shared_customers": sum(1 for n in claims.values() if n > 1),
    }


def _revenue(events: list[LogEvent], wrong: set[str]) -> dict[str, Any]:
    totals: dict[str, list[float]] = {}
    orders = wrong_orders = 0
    for event in events:
        if event.amount is None:
            continue
        orders += 1
        t = totals.setdefault(event.currency or "", [0.0, 0.0])
        t[0] += event.amount
        if event.event_id in wrong:
            wrong_orders += 1
            t[1] += event.amount
    return {
        "orders": orders,
        "misattributed_orders": wrong_orders,
        "by_currency": {
            cur: {
                "total": round(total, 2),
                "misattributed": round(bad, 2),
                "misattributed_share": _share(bad, total),
            }
            for cur, (total, bad) in sorted(totals.items())
        },
    }
