"""Consent withdrawn under a merged-away customer id still holds marketing back.

Customer B opts out of marketing; a later event links B's email to A's crm_id,
so B merges into A (crm_id is the stronger identifier); A then answers an NPS
survey with a 10, which makes the default catalogue's ``promoter_referral``
(marketing, by email) eligible. Run through the real flow with the in-memory
store, in batches, so each batch resolves against what the earlier ones stored.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from tests.conftest import make_event, raw, run_flow

A = {"crm_id": "C-A"}
B = {"email": "b@example.com"}


def event(n: int, etype: str, identifiers: dict[str, str], **data: Any) -> dict[str, Any]:
    return {**make_event(n, identifiers=identifiers, **data), "type": etype}


def journey(b_consent: bool | None, *tail: dict[str, Any]) -> list[dict[str, Any]]:
    """B's consent (None: never given), A's visit, the merge, then ``tail``."""
    consent = {} if b_consent is None else {"consent": {"marketing": b_consent}}
    return [
        event(1, "cx.email.consent.updated", B, **consent),
        event(2, "cx.web.page.viewed", A),
        event(3, "cx.web.page.viewed", {**A, **B}),  # links them: B merges into A
        event(4, "cx.web.page.viewed", {"email": "z@example.com"}),  # someone else
        *tail,
    ]


def promoter_nps(n: int) -> dict[str, Any]:
    return event(n, "cx.survey.nps", A, nps=10)


def consent_suppressed() -> float:
    return REGISTRY.get_sample_value("cx_nba_suppressed_total", {"reason": "consent"}) or 0.0


def run(events: list[dict[str, Any]]) -> tuple[dict[str, list[Any]], float]:
    """The flow's outputs in batches of two, and how many consent suppressions it counted."""
    before = consent_suppressed()
    out = run_flow([raw(e, offset=i) for i, e in enumerate(events)], batch_size=2)
    return out, consent_suppressed() - before


def referrals(out: dict[str, list[Any]]) -> list[str]:
    return [n["customer_id"] for n in out["nba"] if n["action"] == "promoter_referral"]


def survivor(out: dict[str, list[Any]]) -> str:
    (merge,) = out["identity"]
    return str(merge["survivor_id"])


def test_an_opt_out_under_the_merged_id_blocks_the_survivors_marketing() -> None:
    out, suppressed = run(journey(False, promoter_nps(5)))
    assert survivor(out) != ""
    assert referrals(out) == []
    assert suppressed == 1
    # the survivor's published profile carries the merged-in opt-out
    profile = [p for p in out["profiles"] if p.get("customer_id") == survivor(out)][-1]
    assert profile["consent"] == {"marketing": False}


def test_without_the_opt_out_the_survivor_gets_the_referral() -> None:
    for b_consent in (None, True):
        out, suppressed = run(journey(b_consent, promoter_nps(5)))
        assert referrals(out) == [survivor(out)]
        assert suppressed == 0


def test_a_newer_opt_in_under_the_survivor_wins() -> None:
    # A opts in after B's opt-out (event time), next to the merge: by the survey's batch
    # the store holds both and the later one, A's grant, is the customer's consent
    events = journey(False, promoter_nps(5))
    events[3] = event(4, "cx.email.consent.updated", A, consent={"marketing": True})
    out, suppressed = run(events)
    assert referrals(out) == [survivor(out)]
    assert suppressed == 0


def test_an_older_opt_in_under_the_survivor_does_not() -> None:
    events = journey(False, promoter_nps(5))
    events.insert(0, event(0, "cx.email.consent.updated", A, consent={"marketing": True}))
    out, suppressed = run(events)
    assert referrals(out) == []
    assert suppressed == 1
