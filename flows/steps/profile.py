"""profile: fold each customer's events into their profile in the store.

One ``apply_profiles`` call per batch; the store returns the snapshots due for
publication (at most one per customer per ``CX_PROFILES__EMIT_INTERVAL_SECONDS``
of event time).

**Tombstones.** An erased or merged-away customer's profile leaves the compacted
profiles topic with a tombstone, sent here (not where the merge or erasure is
resolved), after the batch's snapshots. It reaches this step through the decide
step keyed by that customer, so it leaves from the worker, and the producer, that
publishes the customer's snapshots: a snapshot made before the merge or erasure was
resolved is written before it, and a delta applied after it goes to the survivor
(the store follows aliases) or nowhere (erased). Sent from the resolve step, on
another worker, a stale snapshot could land after the tombstone and bring the
profile back.
"""

from __future__ import annotations

from flows.records import Journeyed, Resolved, Tombstone
from schemas.outputs import ProfileSnapshot
from state.profile_hash import delta_for
from state.store import ProfileStore


def profile_tombstones(resolved: Resolved) -> list[Tombstone]:
    """Return a tombstone for each customer the event erased or merged away."""
    return [
        Tombstone(cid, out.id, out.time, getattr(out, "survivor_id", None))
        for cid, out in resolved.gone().items()
    ]


class ProfileStep:
    """The flow's profile step over one :class:`ProfileStore`."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def apply_profiles(
        self, batch: list[Journeyed | Tombstone]
    ) -> list[ProfileSnapshot | Tombstone]:
        """Fold the batch into the profiles; return those due to publish, then the tombstones.

        Each event's household (id and excerpt, as the lane-ordered household step left
        it: :mod:`flows.steps.households`) comes in its figures, a latest-wins field.
        """
        deltas = []
        tombstones: list[Tombstone] = []
        for j in batch:
            if isinstance(j, Tombstone):
                tombstones.append(j)
            elif j.resolved.customer_id is not None:
                deltas.append(
                    delta_for(
                        j.resolved.customer_id,
                        j.resolved.event,
                        stage=j.stage,
                        sentiment=j.sentiment,
                        latest=j.figures,
                    )
                )
        snapshots: list[ProfileSnapshot | Tombstone] = []
        if deltas:
            snapshots += self.store.apply_profiles(deltas)
        snapshots += tombstones
        return snapshots
