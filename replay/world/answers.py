"""The synthetic world answers NBAs: each person's true acceptance, and their responses.

Every hidden person accepts an action with a true probability that depends on who
they are and on their state when the NBA was decided (the NBA's ``profile_excerpt``)::

    logit p = BASE[action] + EXPERIENCE[class] * experience + state(action, excerpt)
              + 0.8 * affinity(person, action)

``experience`` is the person's latent quality of experience (truth.json); unhappy
people take service recovery, happy ones take offers; the state term rewards an offer
in the right stage, a retention call at high churn risk, a referral after a 9-10; the
*affinity* is a hidden per-person, per-action taste, a standard normal drawn from a
hash of ``(seed, person, action)``. An NBA of a customer the world cannot name
(identity resolution mixed people up) goes unanswered.

Answers (:func:`answer`) are drawn from a hash of ``(seed, nba id)`` only, so the same
NBA gets the same answer in every run: shown (an ``impression``, 1-10 minutes after
the decision) with probability ``SHOWN``; then, within the action's patience, an
answer with probability ``ANSWERED`` (``accepted`` with the true probability, else
``rejected`` or, one time in four, ``dismissed``), else silence (the flow's
``no_response``). :func:`response_messages` makes them the replay-log records an
agent desktop would have produced (``cx.nba.response`` CloudEvents, no offset:
:mod:`flows.app.loop` merges them into the world's log in arrival order).

>>> person = {"person_id": "p000001", "experience": -0.5}
>>> nba = {"id": "nba-1", "action": "service_recovery", "action_class": "service",
...        "customer_id": "c1", "decision_id": "d1", "channel": "call_center",
...        "time": "2026-03-02T10:00:00Z", "profile_excerpt": {"last_nps": 3}}
>>> round(true_acceptance(person, nba, seed=1), 3)  # this person's taste is low
0.255
>>> [(r.outcome, r.time.isoformat()) for r in answer(nba, person, seed=1)]  # then silence
[('impression', '2026-03-02T10:04:22+00:00')]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

import orjson

from schemas.records import RawMessage
from schemas.responses import NbaResponse, Outcome

SHOWN = 0.9
ANSWERED = 0.75
AGENT = "world-agent"
BASE: dict[str, float] = {
    "service_recovery": -0.4,
    "passive_feedback": -1.6,
    "promoter_referral": -1.2,
    "retention_call": -1.0,
    "sentiment_outreach": -0.6,
    "next_category_offer": -2.0,
    "winback_offer": -2.4,
}
EXPERIENCE: dict[str, float] = {"service": -1.2, "retention": -0.6, "marketing": 1.5, "sales": 1.2}
BUYING_STAGES = frozenset({"purchase", "loyalty"})


def _uniform(*parts: object) -> float:
    """Return a uniform number in [0, 1) from a hash of ``parts`` (the world's seeded dice)."""
    digest = blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def affinity(seed: int, person_id: str, action: str) -> float:
    """Return the person's hidden taste for ``action``: a standard normal, fixed by the seed."""
    u1, u2 = _uniform(seed, person_id, action, 1), _uniform(seed, person_id, action, 2)
    return math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)


def _state(action: str, excerpt: dict[str, Any]) -> float:
    churn = excerpt.get("churn_risk")
    nps = excerpt.get("last_nps")
    stage = excerpt.get("stage")
    term = 0.0
    if action == "retention_call" and isinstance(churn, int | float):
        term += 2.0 * (float(churn) - 0.5)
    if action in ("next_category_offer", "winback_offer") and stage in BUYING_STAGES:
        term += 1.0
    if action == "promoter_referral" and isinstance(nps, int) and nps >= 10:
        term += 0.8
    if action == "service_recovery" and isinstance(nps, int) and nps <= 2:
        term += 0.5
    return term


def true_acceptance(person: dict[str, Any], nba: dict[str, Any], seed: int) -> float:
    """Return the probability ``person`` accepts ``nba`` (the world's hidden truth)."""
    action = nba["action"]
    logit = (
        BASE.get(action, -1.5)
        + EXPERIENCE.get(nba["action_class"], 0.0) * float(person.get("experience", 0.0))
        + _state(action, nba.get("profile_excerpt") or {})
        + 0.8 * affinity(seed, person["person_id"], action)
    )
    return 1 / (1 + math.exp(-logit))


def answer(
    nba: dict[str, Any], person: dict[str, Any], seed: int, arrived_ms: int | None = None
) -> list[NbaResponse]:
    """Return the responses the world gives ``nba`` (none, an impression, or one and an answer).

    ``arrived_ms``: when the trigger event reached the flow (a late event's NBA shows
    only then), by default its event time.
    """
    nba_id = nba["id"]
    if _uniform(seed, nba_id, "shown") >= SHOWN:
        return []
    decided = datetime.fromisoformat(nba["time"])
    if arrived_ms is not None:
        decided = max(decided, datetime.fromtimestamp(arrived_ms / 1000, UTC))
    shown = decided + timedelta(minutes=1 + 9 * _uniform(seed, nba_id, "shown_at"))

    def response(outcome: Outcome, at: datetime) -> NbaResponse:
        return NbaResponse(
            nba_id=nba_id,
            decision_id=nba["decision_id"],
            customer_id=nba["customer_id"],
            action=nba["action"],
            channel=nba["channel"],
            outcome=outcome,
            agent_id=AGENT,
            time=at.replace(microsecond=0),
        )

    out = [response("impression", shown)]
    if _uniform(seed, nba_id, "answered") < ANSWERED:
        at = shown + timedelta(minutes=1 + 59 * _uniform(seed, nba_id, "answered_at"))
        if _uniform(seed, nba_id, "accepted") < true_acceptance(person, nba, seed):
            out.append(response("accepted", at))
        else:
            no: Outcome = "dismissed" if _uniform(seed, nba_id, "no") < 0.25 else "rejected"
            out.append(response(no, at))
    return out


def people_of_customers(
    profiles: Iterable[dict[str, Any]], truth: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Return customer_id -> the true person most of the customer's identifiers belong to."""
    shared = {f"{s['type']}:{s['value']}" for s in truth["shared_identifiers"]}
    owner = {
        f"{id_type}:{value}": person
        for person in truth["customers"]
        for id_type, values in person["identifiers"].items()
        for value in values
        if f"{id_type}:{value}" not in shared
    }
    out = {}
    for profile in profiles:
        votes: Counter[str] = Counter()
        people = {}
        for id_type, values in profile["identifiers"].items():
            for value in values:
                person = owner.get(f"{id_type}:{value}")
                if person is not None:
                    votes[person["person_id"]] += 1
                    people[person["person_id"]] = person
        if votes:
            best = min(votes, key=lambda p: (-votes[p], p))
            out[profile["customer_id"]] = people[best]
    return out


def response_messages(
    nbas: Iterable[dict[str, Any]],
    people: dict[str, dict[str, Any]],
    seed: int,
    topic: str,
    partition: int,
    arrivals: dict[str, int] | None = None,
) -> Iterator[RawMessage]:
    """Yield the world's responses to ``nbas`` as log records (arrival = the response time).

    ``arrivals``: event id -> when it reached the flow (the log's timestamp), so a late
    trigger's NBA is answered after it was made.
    """
    arrived = arrivals or {}
    for nba in nbas:
        person = people.get(nba["customer_id"])
        if person is None:
            continue
        trigger = nba["trigger_event_ids"][0] if nba.get("trigger_event_ids") else ""
        for response in answer(nba, person, seed, arrived.get(trigger)):
            at = int(response.time.timestamp() * 1000)
            value = orjson.dumps(response.to_cloudevent())
            yield RawMessage(value, None, topic, partition, None, at)


def _responses(log: Iterable[RawMessage]) -> dict[str, set[str]]:
    """Return nba_id -> the outcomes the log's response events give it."""
    out: dict[str, set[str]] = {}
    for raw in log:
        if raw.value is None or b'"cx.nba.response"' not in raw.value:
            continue
        try:
            event = orjson.loads(raw.value)
            out.setdefault(event["data"]["nba_id"], set()).add(event["data"]["outcome"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def nba_scores(
    nbas: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    truth: dict[str, Any],
    log: Iterable[RawMessage] | None = None,
) -> dict[str, Any]:
    """Return how well the NBAs fare in the world.

    ``expected_acceptance``: the mean true acceptance probability of the NBAs made
    (over those whose customer the world can name; no sampling noise). With the log
    of a closed loop (:mod:`flows.app.loop`): ``acceptance_rate``, accepted over
    answered (accepted, rejected, dismissed), and the share shown and answered.
    """
    seed = int(truth["params"]["seed"])
    people = people_of_customers(profiles, truth)
    probabilities = [
        true_acceptance(people[n["customer_id"]], n, seed)
        for n in nbas
        if n["customer_id"] in people
    ]
    by_action = Counter(n["action"] for n in nbas)
    out: dict[str, Any] = {
        "nbas": len(nbas),
        "by_action": dict(sorted(by_action.items())),
        "expected_acceptance": (
            round(sum(probabilities) / len(probabilities), 4) if probabilities else None
        ),
    }
    if log is None:
        return out
    outcomes = _responses(log)
    answers = [outcomes.get(n["id"], set()) for n in nbas]
    answered = [a for a in answers if a & {"accepted", "rejected", "dismissed"}]
    accepted = sum(1 for a in answered if "accepted" in a)
    return {
        **out,
        "shown": sum(1 for a in answers if "impression" in a),
        "answered": len(answered),
        "accepted": accepted,
        "acceptance_rate": round(accepted / len(answered), 4) if answered else None,
    }


def lift(adaptive: dict[str, Any], fixed: dict[str, Any]) -> dict[str, float | None]:
    """Return the adaptive run's figures over the fixed rules' on the same world."""
    out: dict[str, float | None] = {}
    for name in ("expected_acceptance", "acceptance_rate"):
        a, f = adaptive.get(name), fixed.get(name)
        out[name] = round(a / f, 4) if a is not None and f else None
    return out
