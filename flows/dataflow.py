"""The cxstream dataflow: one flow, read top to bottom, whatever feeds it.

``cxstream run`` (Kafka in and out), ``cxstream demo``, replay, tests and
benchmarks all build this same flow and swap only the input, the sink and the
profile store (Redis, or the in-memory twin for offline runs).
"""

from __future__ import annotations

from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.outputs import Sink

from flows.checkpoint import ModelCheckpoint, load_models
from flows.decode import Decoder
from flows.dedupe import dedupe_builder, shard_key
from flows.encode import Encoded, Output, encode
from flows.journey import journey_builder
from flows.metrics import timed_batch, timed_flat_map, timed_logic, timed_map
from flows.nba import Decider, load_catalogue
from flows.nps import nps_builder, nps_key
from flows.resolve import (
    Journeyed,
    Resolved,
    StoreResolver,
    erased_customers,
    identity_outputs,
)
from flows.sentiment import VaderScorer
from flows.settings import Settings
from flows.sla import sla_builder, sla_key
from flows.ticks import case_items, survey_items
from schemas.envelope import InteractionEvent
from schemas.records import RawMessage
from state.store import ProfileStore

InputBuilder = Callable[[Dataflow], Stream[RawMessage]]


def _is_event(item: InteractionEvent | object) -> bool:
    return isinstance(item, InteractionEvent)


def _known(resolved: Resolved) -> bool:
    return resolved.customer_id is not None


def _customer(resolved: Resolved) -> str:
    assert resolved.customer_id is not None
    return resolved.customer_id


def _is_journeyed(item: Journeyed | object) -> bool:
    return isinstance(item, Journeyed)


def build_flow(
    settings: Settings,
    inputs: InputBuilder,
    sink: Sink[Encoded],
    store: ProfileStore,
) -> Dataflow:
    """Wire the named steps of the architecture between ``inputs`` and ``sink``."""
    resolver = StoreResolver(store)
    conf = settings.journey
    scorer = VaderScorer(conf.text_max_chars, conf.text_max_symbols)
    # One set of models per flow, i.e. per worker process (see online_models). The
    # catalogue is read here, so a malformed one stops the start, not the first event.
    nba = settings.nba
    decider = Decider(load_catalogue(nba.catalogue), nba) if nba.enabled else None
    models = load_models(settings.models)
    checkpoint = ModelCheckpoint(models, settings.models) if settings.models.export_path else None
    journeys = journey_builder(conf, scorer, models, decider, checkpoint)
    flow = Dataflow("cxstream")
    raw = inputs(flow)
    # RawMessage
    decoded = op.flat_map_batch("decode", raw, timed_map("decode", Decoder(settings.limits)))
    # InteractionEvent | DeadLetter
    split = op.branch("split_dead", decoded, _is_event)
    events: Stream[InteractionEvent] = split.trues  # type: ignore[assignment]
    dead: Stream[Output] = split.falses  # type: ignore[assignment]
    sharded = op.key_on("shard", events, shard_key(settings.dedupe.shards))
    # (shard, InteractionEvent)
    dedupe = timed_logic("dedupe", dedupe_builder(settings.dedupe))
    fresh = op.stateful_batch("dedupe", sharded, dedupe)
    # (shard, InteractionEvent), each id once
    unsharded = op.key_rm("unshard", fresh)
    resolved = op.flat_map_batch(
        "resolve", unsharded, timed_batch("resolve", resolver.resolve_batch)
    )
    # Resolved(customer_id | None, event, merges / conflict alerts / erasures)
    identity = op.flat_map("identity", resolved, identity_outputs)
    # IdentityMerge | IdentityErasure | Alert
    erased = op.flat_map("erased", resolved, erased_customers)
    # Resolved(erased customer_id, erase request): the journey step forgets that customer
    identified = op.merge("to_journey", op.filter("identified", resolved, _known), erased)
    by_customer = op.key_on("by_customer", identified, _customer)
    # (customer_id, Resolved)
    journey = op.key_rm(
        "journeys", op.stateful_batch("journey", by_customer, timed_logic("journey", journeys))
    )
    # Journeyed | Alert (sentiment_drop, detractor, churn_risk, model_drift) | NextBestAction;
    # the journey step also scores (churn, segment, category propensity: online_models) and
    # decides (next-best actions: flows/nba), as both need the customer's state
    split_journey = op.branch("split_journey", journey, _is_journeyed)
    journeyed: Stream[Journeyed] = split_journey.trues  # type: ignore[assignment]
    journey_alerts: Stream[Output] = split_journey.falses  # type: ignore[assignment]
    profiles = op.flat_map_batch(
        "profile", journeyed, timed_batch("profile", resolver.apply_profiles)
    )
    # ProfileSnapshot, when due (rate-limited per customer in event time)
    # Survey answers and case events are a small share of traffic, so touchpoint NPS
    # and case SLAs each run under one key, with one event-time tick per input batch:
    # a quiet touchpoint's windows close when event time moves on anywhere.
    surveys = op.key_on("nps_key", op.flat_map_batch("surveys", resolved, survey_items), nps_key)
    nps_logic = timed_logic("nps", nps_builder(settings.nps))
    nps = op.key_rm("nps_out", op.stateful_batch("nps", surveys, nps_logic))
    # NpsWindow | Alert (touchpoint_nps_drop)
    cases = op.key_on("sla_key", op.flat_map_batch("cases", resolved, case_items), sla_key)
    sla_logic = timed_logic("sla", sla_builder(settings.sla))
    sla = op.key_rm("sla_out", op.stateful_batch("sla", cases, sla_logic))
    # Alert (sla_breach)
    outputs = op.merge("outputs", dead, identity, journey_alerts, profiles, nps, sla)
    # DeadLetter | IdentityMerge | IdentityErasure | Alert | NextBestAction | ProfileSnapshot
    # | NpsWindow
    encoded = op.flat_map_batch("encode", outputs, timed_flat_map("encode", encode))
    # (kind, Emitted)
    op.output("emit", encoded, sink)
    return flow
