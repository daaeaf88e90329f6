"""The journey step: stages, sentiment windows, trend and the sentiment alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.app.stores import make_store
from flows.nba.catalogue import load_catalogue
from flows.nba.decider import Decider
from flows.nba.policy import ContactHistory
from flows.records import Forget, Journeyed, Resolved, Scored
from flows.settings import JourneySettings, Settings
from flows.step_settings import DEFAULT_STAGE_MAP, NbaSettings
from flows.steps.decide import DecideIn, DecideLogic, decide_builder
from flows.steps.journey import JourneyLogic, JourneyOptions, JourneyState
from flows.steps.score import LaneModels, ModelGauges, ScoreLogic
from flows.steps.sentiment import VaderScorer, bound_text
from flows.steps.stages import mapped_stage, next_stage
from online_models.bundle import Models
from online_models.settings import ModelSettings
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, NextBestAction
from state.profile_hash import figure_text
from tests.conftest import make_event, raw, run_flow

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
ANN = {"email": "ann@example.com"}


def ev(n: int, hours: float, etype: str = "cx.chat.message", **data: Any) -> Resolved:
    body = make_event(n, **data)
    body["type"] = etype
    body["time"] = (T0 + timedelta(hours=hours)).isoformat()
    return Resolved("cust-1", InteractionEvent.model_validate(body))


class FixedScorer:
    def score(self, text: str) -> float | None:
        return {"good": 0.8, "bad": -0.8, "meh": 0.0}.get(text)


def logic(**settings: Any) -> JourneyLogic:
    return JourneyLogic(JourneySettings(**settings), FixedScorer(), JourneyState())


def run(journey: JourneyLogic | Chain, *items: Resolved) -> list[Any]:
    if isinstance(journey, Chain):
        return journey.on_batch(list(items))
    return list(journey.on_batch(list(items))[0])


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["cx.web.page.viewed", "cx.order.placed", "cx.web.page.viewed"], "purchase"),
        (["cx.order.placed", "cx.service_desk.case.opened"], "service"),
        (
            ["cx.order.placed", "cx.service_desk.case.opened", "cx.service_desk.case.resolved"],
            "purchase",
        ),
        (["cx.app.session.started", "cx.account.closed", "cx.web.page.viewed"], "churned"),
        (["cx.account.closed", "cx.order.placed"], "purchase"),
        (["cx.kiosk.tapped"], None),  # unknown types never fail, they just do not move
    ],
)
def test_the_stage_machine(types: list[str], expected: str | None) -> None:
    stage = before = None
    for etype in types:
        target = mapped_stage(etype, None, DEFAULT_STAGE_MAP)
        new = next_stage(stage, before, target)
        if new == "service" and stage != "service":
            before = stage
        stage = new
    assert stage == expected


def test_hints_win_and_promoters_reach_loyalty() -> None:
    journey = logic()
    out = run(journey, ev(1, 0, "cx.web.page.viewed", journey_stage="consideration"))
    assert isinstance(out[0], Journeyed) and out[0].stage == "consideration"
    out = run(
        journey,
        ev(2, 1, "cx.order.placed"),
        ev(3, 2, "cx.survey.nps", nps=8, journey_stage="loyalty"),
    )
    assert [o.stage for o in out if isinstance(o, Journeyed)] == ["purchase", "purchase"]
    out = run(journey, ev(4, 3, "cx.survey.nps", nps=10, journey_stage="loyalty"))
    assert isinstance(out[0], Journeyed) and out[0].stage == "loyalty"


def test_sentiment_windows_trend_and_per_stage() -> None:
    journey = logic(ewma_alpha=0.5)
    run(journey, ev(1, 0, text="good"))
    run(journey, ev(2, 30, text="bad"))  # 30 h later: outside the 24 h window of the next
    (out,) = [
        o for o in run(journey, ev(3, 31, text="meh", sentiment=0.2)) if isinstance(o, Journeyed)
    ]
    assert out.sentiment == 0.2  # a given sentiment wins over the scorer
    figures = out.figures
    assert figures["sent_24h"] == pytest.approx((-0.8 + 0.2) / 2) and figures["sent_24h_n"] == 2
    assert figures["sent_168h"] == pytest.approx((0.8 - 0.8 + 0.2) / 3)
    assert figures["sent_trend"] == pytest.approx(0.5 * 0.2 + 0.5 * (0.5 * -0.8 + 0.5 * 0.8))


def test_sentiment_drop_fires_once_and_rearms() -> None:
    # events 2 h apart: a 6 h window holds the last three
    journey = logic(window_hours=(6.0, 168.0), drop_threshold=-0.5, drop_min_samples=2)
    hours = iter(range(0, 1000, 1))
    alerts = []
    for text in ["good", "bad", "bad", "bad", "good", "good", "good", "bad", "bad", "bad"]:
        alerts += [
            o for o in run(journey, ev(next(hours), next(hours), text=text)) if isinstance(o, Alert)
        ]
    kinds = [a.kind for a in alerts]
    assert kinds.count("sentiment_drop") == 2  # once per drop, again after recovering
    first = alerts[0]
    assert first.customer_id == "cust-1" and first.evidence["samples"] >= 2


def test_detractor_alerts() -> None:
    journey = logic()
    out = run(
        journey,
        ev(1, 0, "cx.survey.nps", nps=6),
        ev(2, 1, "cx.survey.nps", nps=7),
        ev(3, 2, "cx.survey.nps", nps=2),
    )
    alerts = [o for o in out if isinstance(o, Alert)]
    assert [(a.kind, a.severity) for a in alerts] == [
        ("detractor", "medium"),
        ("detractor", "high"),
    ]
    assert alerts[0].due_at == T0 + timedelta(hours=48)
    assert alerts[0].touchpoint == "web.checkout"


def test_vader_is_bounded_and_never_raises() -> None:
    scorer = VaderScorer(max_chars=500, max_symbols=5)
    assert scorer.score("Thanks, that was great!") > 0.3  # type: ignore[operator]
    assert len(bound_text("x" * 10_000, 500, 5)) == 500
    flood = "😡" * 200_000
    assert scorer.score(flood) is not None
    assert scorer.score("   ") is None


def test_the_profile_carries_the_journey() -> None:
    events = [
        {**make_event(1, identifiers=ANN, text="I love it, thanks!"), "type": "cx.chat.message"},
        {**make_event(2, identifiers=ANN, sentiment=-0.8), "type": "cx.chat.message"},
        {**make_event(3, identifiers=ANN, nps=3), "type": "cx.survey.nps"},
        {**make_event(4, identifiers=ANN), "type": "cx.order.placed"},
    ]
    store = make_store(Settings(), default="memory")
    out = run_flow([raw(e, offset=i) for i, e in enumerate(events)], store=store)
    (profile,) = [store.profile(c) for c in store.customers()]
    assert profile is not None
    assert profile.journey_stage == "purchase"
    assert profile.churn_score is not None and 0 <= profile.churn_score <= 1
    assert profile.segment is not None and profile.segment.startswith("seg-")
    assert set(profile.sentiment_windows) == {"24h", "168h"}
    assert profile.sentiment_trend is not None and profile.sentiment is not None
    assert [r.get("stage") for r in profile.recent][-1] == "purchase"
    assert {a["kind"] for a in out["alerts"]} >= {"detractor"}


# -- journey -> score -> decide: next-best actions (flows/nba) -----------------------------


class Chain:
    """The per-customer journey, the lane's score and the per-customer decide steps for
    one customer, fed in order as the flow feeds them."""

    def __init__(self, catalogue: str | None = None, **model_settings: Any) -> None:
        settings = ModelSettings(**model_settings)
        decider = Decider(load_catalogue(catalogue), NbaSettings())
        options = JourneyOptions(settings, decides=True, needs_propensity=decider.needs_propensity)
        self.journey = JourneyLogic(JourneySettings(), FixedScorer(), JourneyState(), options)
        self.score = ScoreLogic(LaneModels(Models.build(settings, ModelGauges)))
        self.decide = DecideLogic(decider, ContactHistory())
        self.seq = 0

    @property
    def decider(self) -> Decider:
        assert self.decide.decider is not None
        return self.decide.decider

    def on_batch(self, items: list[Resolved]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            resolved = replace(item, lane="cx.events:0", seq=self.seq)
            self.seq += 1
            journeyed = list(self.journey.on_batch([resolved])[0])
            out += [o for o in journeyed if not isinstance(o, Journeyed)]
            scored = list(
                self.score.on_batch([o for o in journeyed if isinstance(o, Journeyed)])[0]
            )
            out += [o for o in scored if isinstance(o, Alert)]
            to_decide: list[DecideIn] = [o for o in scored if isinstance(o, Scored | Forget)]
            out += list(self.decide.on_batch(to_decide)[0])
        return out


def decide_logic(catalogue: str | None = None, **model_settings: Any) -> Chain:
    return Chain(catalogue, **model_settings)


def nbas(out: list[Any]) -> list[NextBestAction]:
    return [o for o in out if isinstance(o, NextBestAction)]


def test_feedback_loops_close_on_every_survey_answer() -> None:
    journey = decide_logic()
    out = run(journey, ev(1, 0, "cx.survey.nps", nps=2, touchpoint="store.till"))
    assert [a.kind for a in out if isinstance(a, Alert)] == ["detractor"]
    (recovery,) = nbas(out)
    assert (recovery.action, recovery.action_class) == ("service_recovery", "service")
    assert "NPS 2 at store.till" in recovery.message
    assert recovery.reason_codes[:2] == ["rule:service_recovery", "nps=2 <= 6"]
    assert [n.action for n in nbas(run(journey, ev(2, 200, "cx.survey.nps", nps=8)))] == [
        "passive_feedback"
    ]
    promoter = nbas(run(journey, ev(3, 400, "cx.survey.nps", nps=10)))
    assert [(n.action, n.channel) for n in promoter] == [("promoter_referral", "email")]
    assert promoter[0].profile_excerpt["last_nps"] == 10


def test_consent_is_folded_from_events_and_stops_marketing() -> None:
    journey = decide_logic()
    run(journey, ev(1, 0, "cx.email.consent.updated", consent={"marketing_email": False}))
    assert nbas(run(journey, ev(2, 1, "cx.survey.nps", nps=10))) == []
    assert journey.decide.contacts.consent == {"marketing_email": (T0_MS, False)}
    run(journey, ev(3, 2, "cx.email.consent.updated", consent={"marketing_email": True}))
    assert [n.action for n in nbas(run(journey, ev(4, 3, "cx.survey.nps", nps=9)))] == [
        "promoter_referral"
    ]


def withdrawn_by_store(resolved: Resolved, **purposes: float) -> Resolved:
    """``resolved`` as resolve gives it when the store reports these opt-outs (hours)."""
    names = tuple(sorted(purposes))
    times = tuple(T0_MS + round(purposes[p] * 3_600_000) for p in names)
    return Resolved(resolved.customer_id, resolved.event, resolved.outputs, names, times)


def test_opt_outs_the_store_reports_stop_marketing() -> None:
    # e.g. given under a customer id since merged into this one (see test_consent_merge)
    journey = decide_logic()
    survey = withdrawn_by_store(ev(1, 1, "cx.survey.nps", nps=10), marketing_email=0)
    assert nbas(run(journey, survey)) == []
    assert journey.decider.suppressed == {"consent": 1}
    assert journey.decide.contacts.consent == {}  # the store's view is not copied in


def test_a_newer_grant_in_the_journey_outweighs_the_stores_opt_out() -> None:
    journey = decide_logic()
    # the grant is folded here before the profile step stored it; then a survey
    run(journey, ev(1, 2, "cx.email.consent.updated", consent={"marketing": True}))
    newer = withdrawn_by_store(ev(2, 3, "cx.survey.nps", nps=9), marketing=1)
    assert [n.action for n in nbas(run(journey, newer))] == ["promoter_referral"]
    # a withdrawal at the same time or later than the grant wins
    tied = decide_logic()
    run(tied, ev(1, 2, "cx.email.consent.updated", consent={"marketing": True}))
    assert nbas(run(tied, withdrawn_by_store(ev(2, 3, "cx.survey.nps", nps=9), marketing=2))) == []


def test_churn_rules_wait_for_the_warm_up(tmp_path: Path) -> None:
    rules = tmp_path / "churn.toml"
    rules.write_text(
        '[[action]]\nid = "save"\nclass = "retention"\nchannel = "call_center"\nvalue = 10\n'
        'when = ["churn >= 0.2"]\nmessage = "churn {churn:.2f}"\n'
    )
    cold = decide_logic(str(rules))  # the default warm-up: 1000 labels
    assert not cold.score.lane.models.churn_ready
    assert nbas(run(cold, ev(1, 0, text="bad"))) == []
    assert cold.decider.suppressed == {}
    warm = decide_logic(str(rules), churn={"warmup_labels": 0, "warmup_per_class": 0})
    out = run(warm, ev(1, 0, text="bad"))
    (save,) = nbas(out)
    (journeyed,) = [o for o in out if isinstance(o, Journeyed)]
    assert save.action == "save" and f"{save.score:.4f}" == figure_text(journeyed.figures["churn"])
    assert save.reason_codes[1] == f"churn={save.score:g} >= 0.2"


def test_propensity_feeds_the_next_category_offer() -> None:
    journey = decide_logic()
    order = {"items": [{"sku": "lumen-lamp"}]}
    run(journey, ev(1, 0, "cx.web.page.viewed", attributes={"page": "/products/lumen-lamp"}))
    run(journey, ev(2, 1, "cx.order.placed", amount=30.0, attributes=order))
    out = nbas(
        run(journey, ev(3, 100, "cx.web.page.viewed", attributes={"page": "/products/lumen-lamp"}))
    )
    (offer,) = [n for n in out if n.action == "next_category_offer"]
    assert offer.profile_excerpt["top_category"] == "lumen-lamp"
    assert offer.message.startswith("Show lumen-lamp picks")
    assert journey.journey.state.interest.weights  # the interest lives in the journey state


@pytest.mark.parametrize("workers", [1, 2])
def test_the_flow_emits_nbas_deterministically(workers: int) -> None:
    events = [
        {**make_event(1, identifiers=ANN, nps=3), "type": "cx.survey.nps"},
        {**make_event(2, identifiers=ANN, sentiment=-0.8), "type": "cx.chat.message"},
        {**make_event(3, identifiers={"email": "bo@example.com"}, nps=10), "type": "cx.survey.nps"},
    ]
    first = run_flow([raw(e, offset=i) for i, e in enumerate(events)])
    again = run_flow([raw(e, offset=i) for i, e in enumerate(events)], workers=workers)
    if workers == 1:
        assert first["nba"] == again["nba"]
    else:  # the same NBAs; two customers decided on two threads reach the sink in any
        # order (offline, sinks.jsonl.canonical_order sorts each file after the run)
        assert sorted(again["nba"], key=lambda n: n["id"]) == sorted(
            first["nba"], key=lambda n: n["id"]
        )
    assert [n["action"] for n in first["nba"]] == [
        "service_recovery",
        "sentiment_outreach",
        "promoter_referral",
    ]
    assert first["nba"][0]["id"] == output_id("nba", "service_recovery", "evt-1")


def test_a_disabled_decide_step_emits_nothing() -> None:
    events = [{**make_event(1, identifiers=ANN, nps=3), "type": "cx.survey.nps"}]
    out = run_flow([raw(events[0])], settings=Settings(nba=NbaSettings(enabled=False)))
    assert out["nba"] == [] and [a["kind"] for a in out["alerts"]] == ["detractor"]


def test_contact_history_survives_a_snapshot() -> None:
    chain = decide_logic()
    run(chain, ev(1, 0, "cx.survey.nps", nps=2, consent={"marketing": False}))
    chain.decide = decide_builder(chain.decider)(chain.decide.snapshot())
    assert chain.decide.contacts.consent == {"marketing": (T0_MS, False)}
    # the recovery call is in its cool-down after the resume too
    assert nbas(run(chain, ev(2, 1, "cx.survey.nps", nps=1))) == []
    assert chain.decider.suppressed["cooldown"] == 1


def test_model_gauges_publish_the_churn_models_prequential_figures() -> None:
    from flows import metrics
    from online_models.churn import ChurnEngine
    from online_models.settings import ModelSettings

    churn = ChurnEngine(ModelSettings())
    gauges = ModelGauges(churn, every=4)
    for i in range(8):
        churn.evaluation.update(i % 2 == 0, 0.8 if i % 2 == 0 else 0.3)
        gauges(None)
    report = churn.evaluation.report()
    assert report["auc"] == 1.0
    assert metrics.MODEL_AUC.labels("logreg")._value.get() == report["auc"]
    assert metrics.MODEL_LOG_LOSS.labels("logreg")._value.get() == report["log_loss"]


def test_an_erased_customer_is_forgotten_by_the_journey_and_the_models() -> None:
    from bytewax.operators import StatefulBatchLogic

    from schemas.outputs import IdentityErasure

    chain = decide_logic()
    run(chain, ev(1, 0, text="good", identifiers=ANN), ev(2, 30, "cx.order.placed", amount=9.0))
    models = chain.score.lane.models
    assert models.churn.labels.customers() == 1  # a snapshot waits for its label
    assert chain.journey.state.features.events == 2

    request = ev(3, 31, "cx.privacy.erase")
    out, keep = chain.journey.on_batch([request])  # the request forwarded to cust-1
    assert list(out) == [] and keep is StatefulBatchLogic.DISCARD
    assert chain.journey.state == JourneyState()
    erasure = IdentityErasure(
        id="x", customer_id="cust-1", event_id=request.event.id, time=request.event.time,
        existed=True, identifiers_removed=1, aliases_removed=0,
    )  # fmt: skip
    in_lane = Resolved(None, request.event, (erasure,), lane="cx.events:0", seq=chain.seq)
    (forget,) = chain.score.on_batch([in_lane])[0]
    assert forget == Forget("cust-1") and models.churn.labels.customers() == 0
    decided, keep = chain.decide.on_batch([forget])
    assert list(decided) == [] and keep is StatefulBatchLogic.DISCARD


def test_an_erase_request_reaches_the_journey_step_of_the_erased_customer() -> None:
    from flows.steps.resolve import erased_customers
    from schemas.outputs import IdentityErasure

    request = ev(9, 1, "cx.privacy.erase")
    erasure = IdentityErasure(
        id="x", customer_id="cust-7", event_id=request.event.id, time=request.event.time,
        existed=True, identifiers_removed=1, aliases_removed=0,
    )  # fmt: skip
    (forwarded,) = erased_customers(Resolved(None, request.event, (erasure,)))
    assert forwarded.customer_id == "cust-7" and forwarded.event is request.event
