"""profile: fold each customer's events into their profile in the store.

One ``apply_profiles`` call per batch; the store returns the snapshots due for
publication (at most one per customer per ``CX_PROFILES__EMIT_INTERVAL_SECONDS``
of event time).
"""

from __future__ import annotations

from flows.records import Journeyed
from schemas.outputs import ProfileSnapshot
from state.profile_hash import delta_for
from state.store import ProfileStore


class ProfileStep:
    """The flow's profile step over one :class:`ProfileStore`."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def apply_profiles(self, batch: list[Journeyed]) -> list[ProfileSnapshot]:
        """Fold the batch into the profiles, return those due to publish."""
        deltas = [
            delta_for(
                j.resolved.customer_id,
                j.resolved.event,
                stage=j.stage,
                sentiment=j.sentiment,
                latest=j.figures,
            )
            for j in batch
            if j.resolved.customer_id is not None
        ]
        return self.store.apply_profiles(deltas) if deltas else []
