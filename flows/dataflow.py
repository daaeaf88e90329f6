"""The cxstream dataflow: one flow, read top to bottom, whatever feeds it.

``cxstream run`` (Kafka in and out), ``cxstream demo``, replay, tests and
benchmarks all build this same flow and swap only the input and the sink.
"""

from __future__ import annotations

from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.outputs import Sink

from flows.decode import Decoder
from flows.dedupe import dedupe_builder, shard_key
from flows.encode import Output, encode
from flows.journey import journey_builder
from flows.resolve import PrimaryIdentifierResolver, Resolved, Resolver
from flows.settings import Settings
from schemas.envelope import InteractionEvent
from schemas.outputs import IdentityMerge
from schemas.records import Emitted, RawMessage

InputBuilder = Callable[[Dataflow], Stream[RawMessage]]


def _is_event(item: InteractionEvent | object) -> bool:
    return isinstance(item, InteractionEvent)


def _merges(resolved: Resolved) -> list[IdentityMerge]:
    return list(resolved.merges)


def _customer(resolved: Resolved) -> bool:
    return resolved.customer_id is not None


def _customer_key(resolved: Resolved) -> str:
    assert resolved.customer_id is not None
    return resolved.customer_id


def build_flow(
    settings: Settings,
    inputs: InputBuilder,
    sink: Sink[tuple[str, Emitted]],
    resolver: Resolver | None = None,
) -> Dataflow:
    """Wire the named steps of the architecture between ``inputs`` and ``sink``."""
    resolver = resolver or PrimaryIdentifierResolver()
    flow = Dataflow("cxstream")
    raw = inputs(flow)
    # RawMessage
    decoded = op.map("decode", raw, Decoder(settings.limits))
    # InteractionEvent | DeadLetter
    split = op.branch("split_dead", decoded, _is_event)
    events: Stream[InteractionEvent] = split.trues  # type: ignore[assignment]
    dead: Stream[Output] = split.falses  # type: ignore[assignment]
    sharded = op.key_on("shard", events, shard_key(settings.dedupe.shards))
    # (shard, InteractionEvent)
    fresh = op.stateful_batch("dedupe", sharded, dedupe_builder(settings.dedupe))
    # (shard, InteractionEvent), each id once
    resolved = op.flat_map_batch("resolve", op.key_rm("unshard", fresh), resolver.resolve_batch)
    # Resolved(customer_id, event, merges)
    merges = op.flat_map("merges", resolved, _merges)
    # IdentityMerge
    known = op.filter("identified", resolved, _customer)
    by_customer = op.key_on("by_customer", known, _customer_key)
    # (customer_id, Resolved)
    profiles = op.key_rm(
        "profiles", op.stateful_batch("journey", by_customer, journey_builder(settings.profiles))
    )
    # ProfileSnapshot
    # nps    -- issue 4: touchpoint windows keyed by touchpoint plug in here (not built yet)
    # score  -- issue 5: River churn models on the journey state (not built yet)
    # decide -- issue 6: next-best-action rules and arbitration (not built yet)
    outputs = op.merge("outputs", dead, merges, profiles)
    # DeadLetter | IdentityMerge | ProfileSnapshot
    encoded = op.map("encode", outputs, encode)
    # (kind, Emitted)
    op.output("emit", encoded, sink)
    return flow
