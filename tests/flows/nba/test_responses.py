"""Responses joined to their decision: the ledger, the policy effects, the lift (#19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.nba.arbitration import rank
from flows.nba.catalogue import load_catalogue
from flows.nba.decider import Decider
from flows.nba.policy import ContactHistory
from flows.nba.responses import MAX_ISSUED, Ledger
from flows.records import Context
from flows.step_settings import NbaSettings
from schemas.responses import NbaResponse, Outcome

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
HOUR = 3_600_000


def _answer(outcome: Outcome, hours: float, **fields: str) -> NbaResponse:
    values = {
        "nba_id": "nba-1",
        "decision_id": "dec-1",
        "customer_id": "c1",
        "action": "service_recovery",
        "channel": "call_center",
        "outcome": outcome,
        "agent_id": "a7",
        "time": T0 + timedelta(hours=hours),
        **fields,
    }
    return NbaResponse.model_validate(values)


def _sent() -> tuple[Decider, ContactHistory, Ledger]:
    decider = Decider(load_catalogue(None), NbaSettings(max_per_day=1))
    ledger = Ledger()
    ledger.add("nba-1", "dec-1", "service_recovery", "service", T0_MS, 48 * HOUR)
    return decider, ContactHistory(), ledger


def test_a_rejection_holds_the_action_back_for_its_cooldown_from_the_response() -> None:
    decider, history, ledger = _sent()
    assert decider.answer(_answer("rejected", 1), "c1", history, ledger) is None
    cooldown = decider.actions["service_recovery"].cooldown_ms
    at = T0_MS + HOUR

    def blocked(action: str, ms: int) -> str | None:
        return history.blocked(action, "service", cooldown, ms, chosen=0, conf=decider.settings)

    assert blocked("service_recovery", at) == "rejected"
    assert blocked("service_recovery", at + cooldown - 1) == "rejected"
    assert blocked("service_recovery", at + cooldown) is None
    assert blocked("passive_feedback", at) is None
    # before the rejection in event time it does not hold (it had not happened)
    assert blocked("service_recovery", at - 1) is None


def test_an_acceptance_is_a_contact_and_an_impression_is_none() -> None:
    decider, history, ledger = _sent()
    assert decider.answer(_answer("impression", 1), "c1", history, ledger) is None
    assert history.sent == [] and ledger.issued["nba-1"].shown_ms == T0_MS + HOUR
    assert decider.answer(_answer("accepted", 2), "c1", history, ledger) is None
    assert history.sent == [(T0_MS + 2 * HOUR, "service_recovery", "service")]
    # the contact counts against the day cap of the other classes
    conf = decider.settings
    assert history.blocked("winback_offer", "marketing", 0, T0_MS + 3 * HOUR, chosen=0, conf=conf)


def test_a_response_is_joined_only_to_its_own_nba_in_event_time() -> None:
    decider, history, ledger = _sent()
    for response, why in [
        (_answer("accepted", 1, nba_id="nba-2"), "no such NBA"),
        (_answer("accepted", 1, decision_id="dec-2"), "decision dec-1"),
        (_answer("accepted", 1, action="passive_feedback"), "service_recovery of"),
        (_answer("accepted", -1), "predates"),
        (_answer("accepted", 49), "no such NBA"),  # past its horizon: forgotten
    ]:
        result = decider.answer(response, "c1", history, ledger)
        assert result is not None and result[0] == "unknown_nba" and why in result[1], why
    assert history.sent == [] and not history.refused


def test_the_first_answer_holds_and_a_repeat_is_harmless() -> None:
    decider, history, ledger = _sent()
    assert decider.answer(_answer("rejected", 1), "c1", history, ledger) is None
    assert decider.answer(_answer("rejected", 1.5), "c1", history, ledger) is None
    conflict = decider.answer(_answer("accepted", 2), "c1", history, ledger)
    assert conflict is not None and conflict[0] == "response_conflict"
    assert history.sent == []


def test_a_merged_away_customers_response_applies_at_the_survivor() -> None:
    decider, history, _ = _sent()
    merged = _answer("rejected", 1, customer_id="c-old", nba_id="nba-9")
    assert decider.answer(merged, "c1", history, Ledger()) is None
    assert "service_recovery" in history.refused
    unknown = _answer("rejected", 1, customer_id="c-old", action="no_such_action")
    assert decider.answer(unknown, "c1", history, Ledger()) is not None


def test_the_ledger_stays_bounded() -> None:
    ledger = Ledger()
    for n in range(MAX_ISSUED + 10):
        ledger.add(f"n{n}", "d", "a", "service", n, HOUR)
    assert len(ledger.issued) == MAX_ISSUED and "n0" not in ledger.issued


def test_the_lift_multiplies_the_propensity_and_shows_in_the_reason() -> None:
    cat = load_catalogue(None)
    ctx: Context = {"churn": 0.9, "nps": 3}
    plain = {c.action.id: c for c in rank(cat, ctx, cat.actions)}
    lifted = {c.action.id: c for c in rank(cat, ctx, cat.actions, {"service_recovery": 0.5})}
    assert lifted["service_recovery"].priority == plain["service_recovery"].priority / 2
    assert "acceptance lift 0.5" in lifted["service_recovery"].reason()
    assert lifted["retention_call"] == plain["retention_call"]
    assert "lift" not in plain["service_recovery"].reason()
