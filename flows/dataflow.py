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

from flows.decode import Decoder
from flows.dedupe import dedupe_builder, shard_key
from flows.encode import Encoded, Output, encode
from flows.resolve import StoreResolver, identity_outputs
from flows.settings import Settings
from schemas.envelope import InteractionEvent
from schemas.records import RawMessage
from state.store import ProfileStore

InputBuilder = Callable[[Dataflow], Stream[RawMessage]]


def _is_event(item: InteractionEvent | object) -> bool:
    return isinstance(item, InteractionEvent)


def build_flow(
    settings: Settings,
    inputs: InputBuilder,
    sink: Sink[Encoded],
    store: ProfileStore,
) -> Dataflow:
    """Wire the named steps of the architecture between ``inputs`` and ``sink``."""
    resolver = StoreResolver(store)
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
    unsharded = op.key_rm("unshard", fresh)
    resolved = op.flat_map_batch("resolve", unsharded, resolver.resolve_batch)
    # Resolved(customer_id | None, event, merges / conflict alerts / erasures)
    identity = op.flat_map("identity", resolved, identity_outputs)
    # IdentityMerge | IdentityErasure | Alert
    profiles = op.flat_map_batch("profile", resolved, resolver.apply_profiles)
    # ProfileSnapshot, when due (rate-limited per customer in event time)
    # journey -- issue 4: stage machine and sentiment windows, keyed by customer_id
    # nps     -- issue 4: touchpoint windows keyed by touchpoint
    # score   -- issue 5: River churn models on the journey state
    # decide  -- issue 6: next-best-action rules and arbitration
    outputs = op.merge("outputs", dead, identity, profiles)
    # DeadLetter | IdentityMerge | IdentityErasure | Alert | ProfileSnapshot
    encoded = op.flat_map("encode", outputs, encode)
    # (kind, Emitted)
    op.output("emit", encoded, sink)
    return flow
