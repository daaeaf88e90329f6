"""NBA responses in the whole flow: joined in decide, changing the next decision (#19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.app.offline import run_offline
from flows.app.stores import make_store
from flows.settings import KafkaSettings, Settings
from flows.step_settings import NbaSettings
from replay.log import write_log
from schemas.ids import output_id
from schemas.records import RawMessage
from schemas.responses import NbaResponse, Outcome
from sinks.jsonl import OFFLINE_FILES
from state.store import new_customer_id
from tests.conftest import raw, run_flow

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
CATALOGUE = """
version = 1
[[action]]
id = "callback"
class = "service"
channel = "call_center"
value = 100.0
when = ["nps <= 6"]
cooldown_hours = 2
expiry_hours = 24
response_timeout_hours = 1
message = "Call back"

[[action]]
id = "offer"
class = "sales"
channel = "web"
value = 10.0
propensity = 1.0
when = ["nps >= 9"]
cooldown_hours = 0
expiry_hours = 24
message = "An offer"
"""


def survey(n: int, minutes: float, nps: int, email: str = "ann@example.com") -> dict[str, Any]:
    """A survey answer of ``email``'s customer, ``minutes`` after T0."""
    return {
        "id": f"evt-{n}",
        "source": "/tests",
        "type": "cx.survey.completed",
        "time": (T0 + timedelta(minutes=minutes)).isoformat(),
        "data": {
            "channel": "survey",
            "touchpoint": "store.till",
            "identifiers": {"email": email},
            "nps": nps,
        },
    }


def response(
    trigger: str,
    action: str,
    customer_trigger: str,
    outcome: Outcome,
    minutes: float,
    *,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """The CloudEvent of a response to the NBA ``action`` triggered by event ``trigger``."""
    answer = NbaResponse(
        nba_id=output_id("nba", action, trigger),
        decision_id=output_id("decision", trigger),
        customer_id=customer_id or new_customer_id(customer_trigger),
        action=action,
        channel="call_center",
        outcome=outcome,
        agent_id="agent-7",
        time=T0 + timedelta(minutes=minutes),
    )
    return answer.to_cloudevent()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    return Settings(nba=NbaSettings(catalogue=str(path), max_per_day=2))


def _run(
    settings: Settings, events: list[dict[str, Any]], batch_size: int = 1
) -> dict[str, list[Any]]:
    messages: list[RawMessage] = [raw(e, offset=i) for i, e in enumerate(events)]
    return run_flow(messages, settings, make_store(settings, default="memory"), batch_size)


def _actions(out: dict[str, list[Any]]) -> list[tuple[str, str]]:
    return [(n["trigger_event_ids"][0], n["action"]) for n in out["nba"]]


def test_every_nba_names_its_decision_and_rank(settings: Settings) -> None:
    out = _run(settings, [survey(1, 0, 3)])
    (nba,) = out["nba"]
    assert nba["decision_id"] == output_id("decision", "evt-1")
    assert nba["rank"] == 1


def test_a_rejection_suppresses_the_action_for_its_cooldown(settings: Settings) -> None:
    # callback's cool-down is 2 h: at +125 min the send no longer holds it back...
    base = [survey(1, 0, 3), survey(2, 125, 3)]
    assert _actions(_run(settings, base)) == [("evt-1", "callback"), ("evt-2", "callback")]
    # ...but a rejection at +10 min does, until +130 min
    rejected = response("evt-1", "callback", "evt-1", "rejected", 10)
    out = _run(settings, [base[0], rejected, base[1], survey(3, 131, 3)])
    assert _actions(out) == [("evt-1", "callback"), ("evt-3", "callback")]
    assert out["dlq"] == []
    dismissed = response("evt-1", "callback", "evt-1", "dismissed", 10)
    assert _actions(_run(settings, [base[0], dismissed, base[1]])) == [("evt-1", "callback")]


def test_an_acceptance_counts_against_the_contact_caps(settings: Settings) -> None:
    # offer (sales) is capped at 2 a day: its own send plus the acceptance make two
    base = [survey(1, 0, 10), survey(2, 30, 10)]
    assert _actions(_run(settings, base)) == [("evt-1", "offer"), ("evt-2", "offer")]
    accepted = response("evt-1", "offer", "evt-1", "accepted", 10)
    assert _actions(_run(settings, [base[0], accepted, base[1]])) == [("evt-1", "offer")]
    # an impression alone is no contact
    shown = response("evt-1", "offer", "evt-1", "impression", 10)
    assert len(_run(settings, [base[0], shown, base[1]])["nba"]) == 2


def test_responses_without_a_known_customer_or_nba_are_dead_letters(settings: Settings) -> None:
    events = [
        survey(1, 0, 3),
        response("evt-1", "callback", "evt-1", "impression", 5, customer_id="cust-nobody"),
        response("evt-9", "callback", "evt-1", "accepted", 6),  # no such NBA
        response("evt-1", "offer", "evt-1", "rejected", 7),  # not the NBA's action
        response("evt-1", "callback", "evt-1", "rejected", 8),
        response("evt-1", "callback", "evt-1", "accepted", 9),  # a second, other answer
        {  # a response event without the response fields
            **response("evt-1", "callback", "evt-1", "accepted", 9),
            "id": "x",
            "data": {"channel": "call_center", "touchpoint": "agent_desktop"},
        },
    ]
    out = _run(settings, events)
    reasons = sorted(d["reason"] for d in out["dlq"])
    assert reasons == [
        "invalid_event",
        "response_conflict",
        "unknown_customer",
        "unknown_nba",
        "unknown_nba",
    ]
    assert all(d["original_size"] > 0 and d["topic"] == "cx.events" for d in out["dlq"])
    invalid = next(d for d in out["dlq"] if d["reason"] == "invalid_event")
    assert "cx.nba.response" in invalid["error"]
    assert len(out["nba"]) == 1  # nobody else got anything


def test_a_response_before_its_decision_in_event_time_is_not_joined(settings: Settings) -> None:
    out = _run(settings, [survey(1, 30, 3), response("evt-1", "callback", "evt-1", "rejected", 5)])
    assert [d["reason"] for d in out["dlq"]] == ["unknown_nba"]
    assert "predates" in out["dlq"][0]["error"]


def test_a_merged_away_customer_id_is_routed_to_the_survivor(settings: Settings) -> None:
    # evt-1 creates a customer by cookie, evt-2 another by email; evt-3 merges them.
    cookie = {
        **survey(1, 0, 3),
        "data": {**survey(1, 0, 3)["data"], "identifiers": {"cookie_id": "c9"}},
    }
    both = {
        **survey(3, 20, 8),
        "data": {
            **survey(3, 20, 8)["data"],
            "identifiers": {"cookie_id": "c9", "email": "ann@example.com"},
        },
    }
    events = [cookie, survey(2, 10, 8), both]
    out = _run(settings, events)
    (merge,) = out["identity"]
    answer = response("evt-1", "callback", "evt-1", "rejected", 30, customer_id=merge["merged_id"])
    out = _run(settings, [*events, answer, survey(4, 60, 3)])
    assert out["dlq"] == []  # joined at the survivor (the merged id's NBA stayed behind)
    assert ("evt-4", "callback") not in _actions(out)  # and the rejection holds there


def test_responses_give_byte_identical_outputs_whatever_the_batching(
    settings: Settings, tmp_path: Path
) -> None:
    events: list[dict[str, Any]] = []
    for n in range(12):
        email = f"u{n % 3}@example.com"
        events.append(survey(10 + n, n * 40, 3 if n % 2 else 10, email))
        action = "callback" if n % 2 else "offer"
        outcome: Outcome = "rejected" if n % 3 else "accepted"
        events.append(response(f"evt-{10 + n}", action, f"evt-{10 + n % 3}", outcome, n * 40 + 5))
        if n % 4 == 0:  # an impression never answered: a no_response for the model
            events.append(
                response(f"evt-{10 + n}", action, f"evt-{10 + n % 3}", "impression", n * 40 + 1)
            )
    log = tmp_path / "log.jsonl"
    write_log(log, [raw(e, offset=i) for i, e in enumerate(events)])
    outputs = []
    for size in (1, 2, 5, 1000):
        run_offline(
            settings.model_copy(update={"kafka": KafkaSettings(batch_size=size)}),
            [log],
            tmp_path / str(size),
        )
        outputs.append(
            {name: (tmp_path / str(size) / name).read_bytes() for name in OFFLINE_FILES.values()}
        )
    assert outputs[0]["nba.jsonl"] and outputs[0]["dlq.jsonl"]
    assert all(o == outputs[0] for o in outputs[1:])
