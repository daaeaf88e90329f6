"""The cxstream dataflow: one flow, read top to bottom, whatever feeds it.

``cxstream run`` (Kafka in and out), ``cxstream demo``, replay, tests and
benchmarks all build this same flow and swap only the input, the sink and the
profile store (Redis, or the in-memory twin for offline runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.outputs import Sink

from flows.lanes import lane_of
from flows.nba.adaptive import acceptance_builder
from flows.nba.catalogue import HouseholdCap, load_catalogue
from flows.nba.decider import Decider
from flows.records import Forget, Journeyed, Resolved, Scored, Tombstone
from flows.settings import Settings
from flows.steps.board import BoardWriter, board_outputs, board_timeline, board_writer
from flows.steps.decide import DecideOut, decide_builder, decide_key
from flows.steps.decode import Decoder
from flows.steps.dedupe import dedupe_builder
from flows.steps.encode import Encoded, Output, encode
from flows.steps.household_cap import cap_stream
from flows.steps.households import household_step
from flows.steps.insights import insights_stream
from flows.steps.journey import JourneyOptions, journey_builder
from flows.steps.nps import NpsOutput, nps_builder, nps_key
from flows.steps.parking import Parking, forgotten_customers
from flows.steps.profile import ProfileStep, profile_tombstones
from flows.steps.resolve import StoreResolver, identity_outputs
from flows.steps.respond import (
    Responded,
    ResponseOutcome,
    ResponseRouter,
    keep_message,
    not_response,
)
from flows.steps.score import ModelGauges, score_builder, score_lane
from flows.steps.sentiment import VaderScorer
from flows.steps.sla import sla_builder, sla_key
from flows.steps.summary import summary_stream
from flows.steps.ticks import LaneSet, case_items, survey_items
from flows.steps.windowed import Windowing
from flows.timing import timed_batch, timed_flat_map, timed_logic
from online_models.bundle import ModelCheckpoint, load_models
from schemas.envelope import InteractionEvent
from schemas.outputs import Alert, DeadLetter, NextBestAction, ProfileSnapshot
from schemas.records import RawMessage
from sinks.webhook import WebhookSink
from state.households import HouseholdStore
from state.parking import MemoryParkingStore
from state.store import ProfileStore

InputBuilder = Callable[[Dataflow], Stream[RawMessage]]


Decoded = tuple[str, InteractionEvent | DeadLetter]


class _LanedDecoder:
    """decode, keeping each message's lane (flows.lanes) with what it became."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder

    def __call__(self, raws: list[RawMessage]) -> list[Decoded]:
        # One batch at a time: the decoder counts the batch's events once per label.
        # A response keeps its message: its dead letters carry it (flows.steps.respond).
        decoded = self.decoder.decode_batch(raws)
        return [(lane_of(r), keep_message(r, d)) for r, d in zip(raws, decoded, strict=True)]


def _is_event(item: Decoded) -> TypeGuard[tuple[str, InteractionEvent]]:
    return isinstance(item[1], InteractionEvent)


def _dead_letter(item: Decoded) -> Output:
    assert isinstance(item[1], DeadLetter)  # noqa: S101 (for mypy: the falses of _is_event)
    return item[1]


def _lane(item: tuple[str, InteractionEvent]) -> str:
    return item[0]


def _known(resolved: Resolved) -> bool:
    return resolved.customer_id is not None


def _customer(resolved: Resolved) -> str:
    assert resolved.customer_id is not None  # noqa: S101 (for mypy: after the _known filter)
    return resolved.customer_id


def _journeyed(item: object) -> Journeyed | None:
    return item if isinstance(item, Journeyed) else None


def _alert(item: object) -> Alert | None:
    return item if isinstance(item, Alert) else None


def _nba(item: object) -> NextBestAction | None:
    return item if isinstance(item, NextBestAction) else None


def _for_decide(item: Scored | Forget | Alert | Responded) -> Scored | Forget | Responded | None:
    return None if isinstance(item, Alert) else item


def _for_profile(item: DecideOut) -> Journeyed | Tombstone | None:
    return item if isinstance(item, Journeyed | Tombstone) else None


def _profile_step(
    decisions: Stream[DecideOut], profile: ProfileStep, board: BoardWriter | None
) -> Stream[ProfileSnapshot | Tombstone]:
    to_profile: Stream[Journeyed | Tombstone] = op.filter_map("to_profile", decisions, _for_profile)
    with_timeline = board_timeline(board, to_profile)
    return op.flat_map_batch(
        "profile", with_timeline, timed_batch("profile", profile.apply_profiles)
    )


def _response_outcome(item: object) -> ResponseOutcome | None:
    return item if isinstance(item, ResponseOutcome) else None


def _capped(
    for_decide: Stream[Scored | Forget | Responded],
    decisions: Stream[DecideOut],
    cap: HouseholdCap,
    households: HouseholdStore | None,
) -> Stream[DecideOut]:
    """Decide's NBAs and tallies through the lane-ordered household cap, and its outcomes."""
    assert households is not None  # noqa: S101 (for mypy: a cap needs the households)
    capped = cap_stream(for_decide, decisions, cap, households)
    outcomes = op.filter_map("response_outcomes", decisions, _response_outcome)
    return op.merge("decided", capped, outcomes)


def _to_webhooks(encoded: Stream[Encoded], webhooks: WebhookSink | None) -> None:
    # A second output: a slow webhook receiver never holds up the first (sinks.webhook).
    if webhooks is not None:
        op.output("webhooks", op.filter("to_webhooks", encoded, webhooks.wants), webhooks)


def _windows(
    settings: Settings, resolved: Stream[Resolved], lanes: LaneSet | None
) -> tuple[Stream[NpsOutput], Stream[Alert]]:
    """Wire the touchpoint NPS windows and the case SLAs.

    Survey answers and case events are a small share of traffic, so touchpoint NPS and
    case SLAs each run under one key, fed the lanes merged into one canonical order with
    ticks of each lane's watermark (flows.steps.ticks): a quiet touchpoint's windows
    close when event time moves on everywhere.
    """
    surveys = op.key_on("nps_key", op.flat_map_batch("surveys", resolved, survey_items), nps_key)
    nps_logic = timed_logic("nps", nps_builder(settings.nps, lanes))
    nps = op.key_rm("nps_out", op.stateful_batch("nps", surveys, nps_logic))
    # NpsWindow | Alert (touchpoint_nps_drop)
    cases = op.key_on("sla_key", op.flat_map_batch("cases", resolved, case_items), sla_key)
    sla_logic = timed_logic("sla", sla_builder(settings.sla, lanes))
    return nps, op.key_rm("sla_out", op.stateful_batch("sla", cases, sla_logic))


def _routed(item: Resolved | DeadLetter) -> Resolved | None:
    return item if isinstance(item, Resolved) else None


def _dead(item: object) -> DeadLetter | None:
    return item if isinstance(item, DeadLetter) else None


def _responses(
    resolved: Stream[Resolved], store: ProfileStore
) -> tuple[Stream[Resolved], Stream[Resolved], Stream[DeadLetter]]:
    """Split off the NBA responses: (the other events, the responses routed, dead letters).

    A routed response goes past the journey into the score step, in lane order; one
    that names no known customer goes there without one, and out as a dead letter.
    """
    split = op.branch("responses", resolved, not_response)
    router = ResponseRouter(store)
    routed = op.flat_map_batch(
        "route_responses", split.falses, timed_batch("respond", router.route_batch)
    )
    return (
        split.trues,
        op.filter_map("routed", routed, _routed),
        op.filter_map("routing_dead", routed, _dead),
    )


def _summaries(
    settings: Settings,
    decider: Decider | None,
    streams: tuple[Stream[Scored | Forget | Responded], Stream[DecideOut]],
    lanes: LaneSet | None,
) -> list[Stream[Output]]:
    """Wire the decision summaries (flows.steps.summary), when the flow decides.

    ``streams``: decide's input from the score step, and its output.
    """
    if decider is None or not settings.insights.enabled:
        return []
    windowing = Windowing.of(
        settings.insights.decision_window_lengths_seconds,
        settings.insights.allowed_lateness_seconds,
    )
    timeouts = {a.id: a.response_timeout_ms for a in decider.catalogue.actions}
    return [summary_stream(*streams, windowing, timeouts, lanes)]


def build_flow(  # noqa: PLR0913 (the flow's parts, keyword-only past the first five)
    settings: Settings,
    inputs: InputBuilder,
    sink: Sink[Encoded],
    store: ProfileStore,
    lanes: LaneSet | None = None,
    *,
    parking: Parking | None = None,
    webhooks: WebhookSink | None = None,
    households: HouseholdStore | None = None,
) -> Dataflow:
    """Wire the named steps of the architecture between ``inputs`` and ``sink``.

    ``lanes``: the input's lanes (:mod:`flows.lanes`), which the NPS and SLA engines
    wait for before they move their clocks past an event time (:mod:`flows.steps.ticks`);
    by default, the lanes seen so far (exact for a single lane). ``parking``: where idle
    journeys go (:mod:`flows.steps.parking`); by default, with
    ``CX_JOURNEY__PARK_IDLE_SECONDS`` set, an in-memory store (runs without recovery).
    ``webhooks``: the webhook sink (:mod:`sinks.webhook`), fed the outputs it wants.
    ``households``: the household store (:mod:`state.households`; None: no households).
    """
    resolver = StoreResolver(store)
    profile = ProfileStep(store)
    conf = settings.journey
    scorer = VaderScorer(conf.text_max_chars, conf.text_max_symbols)
    # The catalogue is read here, so a malformed one stops the start, not the first event.
    nba = settings.nba
    decider = Decider(load_catalogue(nba.catalogue), nba) if nba.enabled else None
    options = JourneyOptions(
        settings.models,
        decides=decider is not None,
        needs_propensity=decider is not None and decider.needs_propensity,
        insights=settings.insights if settings.insights.enabled else None,
    )
    if parking is None and conf.park_idle_seconds > 0:
        parking = Parking(MemoryParkingStore(), conf.park_idle_seconds)
    journeys = journey_builder(conf, scorer, options, parking)
    # One set of models per lane (flows.steps.score), imported or new when the lane starts.
    checkpoint = ModelCheckpoint(settings.models) if settings.models.export_path else None
    score_lanes = score_builder(
        lambda: load_models(settings.models, ModelGauges),
        checkpoint.maybe_export if checkpoint else None,
        checkpoint.export if checkpoint else None,
        acceptance_builder(decider, settings.models.acceptance),
    )
    flow = Dataflow("cxstream")
    raw = inputs(flow)
    # RawMessage
    decoder = _LanedDecoder(Decoder(settings.limits))
    decoded = op.flat_map_batch("decode", raw, timed_batch("decode", decoder))
    # (lane, InteractionEvent | DeadLetter)
    split = op.branch("split_dead", decoded, _is_event)
    dead = op.map("dead_letters", split.falses, _dead_letter)
    laned = op.key_on("lane", split.trues, _lane)
    # (lane, (lane, InteractionEvent)): one key per input partition keeps its order
    dedupe = timed_logic("dedupe", dedupe_builder(settings.dedupe))
    fresh = op.key_rm("unlane", op.stateful_batch("dedupe", laned, dedupe))
    # Tracked(lane, seq, wm_ms, event), each id once, in input order per lane
    resolved = op.flat_map_batch("resolve", fresh, timed_batch("resolve", resolver.resolve_batch))
    # Resolved(customer_id | None, event, merges / conflict alerts / erasures)
    identity = op.flat_map("identity", resolved, identity_outputs)
    # IdentityMerge | IdentityErasure | Alert
    erased = op.flat_map("erased", resolved, forgotten_customers)
    # Resolved(erased or merged-away customer_id, the event, FORGET): the journey step
    # forgets that customer (a merged-away fragment's journey would stay forever)
    # NBA responses: routed to their canonical customer (flows.steps.respond)
    events_in, routed, response_dead = _responses(resolved, store)
    known = op.branch("known", events_in, _known)
    # trues: Resolved(customer_id, event); falses: Resolved(None, anonymous event or erase
    # request), which go straight to the score step: the lane's order needs them too
    identified = op.merge("to_journey", known.trues, erased)
    by_customer = op.key_on("by_customer", identified, _customer)
    # (customer_id, Resolved)
    journey = op.key_rm(
        "journeys", op.stateful_batch("journey", by_customer, timed_logic("journey", journeys))
    )
    # Journeyed (one per event, with what the models need) | Alert (sentiment_drop, detractor)
    journeyed = op.filter_map("journeyed", journey, _journeyed)
    journey_alerts = op.filter_map("journey_alerts", journey, _alert)
    by_lane = op.key_on(
        "by_lane", op.merge("to_score", journeyed, known.falses, routed), score_lane
    )
    scored = op.key_rm(
        "scores", op.stateful_batch("score", by_lane, timed_logic("score", score_lanes))
    )
    # Scored (churn, segment, category propensity) | Forget (erased) | Alert (churn_risk,
    # model_drift), in lane order
    score_alerts = op.filter_map("score_alerts", scored, _alert)
    # households (flows.steps.households): applied in lane order, each scored event
    # with its customer's household just after it; publications through a gate
    for_decide, household_outs = household_step(
        op.filter_map("to_decide", scored, _for_decide), households
    )
    # with a Tombstone of each erased or merged-away customer, which the profile step
    # sends after that customer's snapshots (flows.steps.profile)
    tombstones = op.flat_map("tombstones", resolved, profile_tombstones)
    to_decide = op.key_on(
        "by_customer_again", op.merge("decide_in", for_decide, tombstones), decide_key
    )
    cap = decider.catalogue.household_cap if decider is not None and households else None
    decisions = op.key_rm(
        "decisions",
        op.stateful_batch(
            "decide", to_decide, timed_logic("decide", decide_builder(decider, capped=bool(cap)))
        ),
    )
    # Journeyed (with the model figures) | NextBestAction | DeadLetter (of a response)
    # | Capped (with a household cap: the NBAs go through it, flows.steps.household_cap)
    sent = decisions if cap is None else _capped(for_decide, decisions, cap, households)
    nbas = op.filter_map("nbas", sent, _nba)
    # The action board (state.actions, read by `cxstream serve`): each customer's timeline,
    # current NBAs and open alerts, written as they pass (CX_API__BOARD=false: off)
    board = board_writer(settings.api, store)
    profiles = _profile_step(decisions, profile, board)
    # ProfileSnapshot, when due (rate-limited per customer in event time) | Tombstone
    nps, sla = _windows(settings, resolved, lanes)
    insights = insights_stream(scored, settings.insights, lanes)
    # KeyDrivers | Alert (nps_pocket): survey answers with their drivers, per window
    outputs = op.merge(
        "outputs",
        dead,
        identity,
        journey_alerts,
        score_alerts,
        nbas,
        profiles,
        nps,
        sla,
        insights,
        response_dead,
        op.filter_map("answer_dead", decisions, _dead),
        *_summaries(settings, decider, (for_decide, sent), lanes),
        *([household_outs] if household_outs is not None else []),
    )
    # DeadLetter | IdentityMerge | IdentityErasure | Alert | NextBestAction | ProfileSnapshot
    # | Tombstone | NpsWindow | KeyDrivers | DecisionSummary
    encoded = op.flat_map_batch(
        "encode", board_outputs(board, outputs), timed_flat_map("encode", encode)
    )
    # (kind, Emitted)
    op.output("emit", encoded, sink)
    _to_webhooks(encoded, webhooks)
    return flow
