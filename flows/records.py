"""The shapes passed between the per-customer and per-lane steps of the flow.

``resolve`` -> :class:`Resolved` -> ``journey`` (per customer) -> :class:`Journeyed` ->
``score`` (per lane, in lane order) -> :class:`Scored` / :class:`Forget` -> ``decide``
(per customer) -> :class:`Journeyed` with the model figures -> ``profile``; ``resolve`` ->
:class:`Tombstone` -> ``decide`` -> ``profile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flows.insights.drivers import AnswerDrivers
from flows.lanes import NO_LANE
from schemas.envelope import InteractionEvent
from schemas.outputs import Alert, HouseholdSnapshot, IdentityErasure, IdentityMerge
from state.household_figures import HouseholdView
from state.profile_hash import Figure

IdentityOutput = IdentityMerge | IdentityErasure | Alert


Value = float | int | str | bool | None
"""One field of a decision context."""
Context = dict[str, Value]
"""The decision context: field name -> value (the fields are listed in flows.nba.context)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """An event with its customer (None: anonymous, or an erase request).

    ``opted_out`` are the consent purposes withdrawn in the customer's stored
    profile when the batch was resolved, merged-away ids' included, sorted;
    ``opted_out_ms`` each withdrawal's event time (see
    :attr:`state.store.ResolveResult.opted_out`). The decide step honours them.
    ``lane``, ``seq`` and ``wm_ms`` are the event's :class:`~flows.lanes.Tracked`
    stamps.
    """

    customer_id: str | None
    event: InteractionEvent
    outputs: tuple[IdentityOutput, ...] = field(default_factory=tuple)
    opted_out: tuple[str, ...] = ()
    opted_out_ms: tuple[int, ...] = ()
    # the event's place in its lane (flows.lanes); seq -1: not an input event of its
    # own (an erase request forwarded to each customer it erased)
    lane: str = NO_LANE
    seq: int = -1
    wm_ms: int = 0
    # this event created the customer (the journey step then reads no parked journey)
    created: bool = False

    def withdrawn(self) -> dict[str, int]:
        """``opted_out`` as purpose -> event time of the withdrawal."""
        return dict(zip(self.opted_out, self.opted_out_ms, strict=True))

    def gone(self) -> dict[str, IdentityErasure | IdentityMerge]:
        """Return the customers this event erased or merged away, each with its first output."""
        out: dict[str, IdentityErasure | IdentityMerge] = {}
        for o in self.outputs:
            if isinstance(o, IdentityErasure):
                out.setdefault(o.customer_id, o)
            elif isinstance(o, IdentityMerge) and o.merged_id != self.customer_id:
                out.setdefault(o.merged_id, o)
        return out


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """What the shared models need of one customer's event, taken from their state.

    ``x``: the churn features as of the event; ``segment_due``: the segmenter
    learns from this customer now; ``bought``: for a purchase, the interest just
    before it and the categories bought; ``interest``: the interest now, when
    the decision reads the category propensity; ``context``: the decision
    context without its model fields (None: no decisions).
    """

    x: dict[str, float]
    segment_due: bool = False
    bought: tuple[dict[str, float], list[str]] | None = None
    interest: dict[str, float] | None = None
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class Journeyed:
    """A resolved event with what the journey step learnt from it.

    ``figures`` are the latest-wins profile fields, as numbers (the profile step
    formats them: :func:`state.profile_hash.figure_text`); the decide step adds
    the model's (``churn``, ``segment``).
    """

    resolved: Resolved
    stage: str | None
    sentiment: float | None
    figures: dict[str, Figure] = field(default_factory=dict)
    scoring: ScoreInput | None = None
    drivers: AnswerDrivers | None = None  # a survey answer's driver vector (flows.insights)


@dataclass(frozen=True, slots=True)
class Scored:
    """A journeyed event with the shared models' view of it, in lane order."""

    journeyed: Journeyed
    churn: float
    churn_ready: bool
    segment: str
    top_category: tuple[str, float] | None = None
    # the adaptive acceptance model's lift per action for this segment (None: all 1.0)
    lifts: dict[str, float] | None = None
    # the customer's household just after this event, in lane order (None: households
    # off; household_id "": in none) (flows.steps.households)
    household: HouseholdView | None = None

    @property
    def customer_id(self) -> str:
        assert self.journeyed.resolved.customer_id is not None  # noqa: S101 (for mypy: scored => known)
        return self.journeyed.resolved.customer_id


@dataclass(frozen=True, slots=True)
class Forget:
    """An erased customer: the decide step drops their contact history and consent."""

    customer_id: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """An erased or merged-away customer: their profile leaves the compacted profiles topic.

    It goes through the decide step keyed by that customer, and the profile step after it
    sends the tombstone: from the worker that publishes the customer's snapshots, after
    every snapshot it published before (:mod:`flows.steps.profile`).
    """

    customer_id: str
    cause_id: str  # the output id of the merge or erasure (the tombstone's ``cx-id``)
    time: datetime  # event time of the merge or erasure (the tombstone's ``ce_time``)
    survivor_id: str | None = None  # a merge's survivor (None: erased)


@dataclass(frozen=True, slots=True)
class HouseholdOut:
    """A household to publish (``snapshot``) or gone (None), with its publication count.

    ``version`` orders one household's publications (flows.steps.households); it is
    not part of the record, whose latest value per household is what counts.
    """

    household_id: str
    version: int
    snapshot: HouseholdSnapshot | None
    time: datetime  # a tombstone's event time: the latest event of the batch that made it
