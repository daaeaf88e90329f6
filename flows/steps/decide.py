"""decide: per customer, the next-best actions an event triggers (see :mod:`flows.nba`).

Keyed by customer_id, after the score step, so the decision reads the
customer's journey (the context the journey step built), the shared models'
view of the event (churn, segment, category propensity) and the customer's own
contact history and consent, which live here. Each event goes on to the
profile step with the model figures added (``churn``, ``segment``), and so does each
profile :class:`~flows.records.Tombstone` of the customer (:mod:`flows.steps.profile`).

A merged-away customer's contact history stays behind under its old id; the
survivor's continues from its own. Consent withdrawn under a merged-away id
still holds marketing back: resolve reports the opt-outs of the survivor's
stored profile, where merges pool consent
(:meth:`flows.nba.policy.ContactHistory.consents`).

Responses (:mod:`flows.steps.respond`) come here keyed by the same canonical id, in
lane order with the customer's events: each is joined to the NBA in the customer's
:class:`~flows.nba.responses.Ledger` (kept in this step's state with the contact
history) and changes the contact policy, or becomes a dead letter
(:meth:`flows.nba.decider.Decider.answer`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence

from bytewax.operators import StatefulBatchLogic

from flows.nba.context import with_household, with_scores
from flows.nba.decider import Decider
from flows.nba.policy import DAY_MS, ContactHistory
from flows.nba.responses import Ledger
from flows.records import Forget, Journeyed, Scored, Tombstone
from flows.steps.household_cap import Capped
from flows.steps.respond import Responded, ResponseOutcome, response_dead_letter
from flows.steps.summary import Decided
from schemas.outputs import DeadLetter, DeadLetterReason, NextBestAction
from state.household_figures import household_fields

DecideIn = Scored | Forget | Responded | Tombstone
DecideOut = Journeyed | NextBestAction | DeadLetter | Tombstone | Decided | ResponseOutcome | Capped


class DecideLogic(StatefulBatchLogic[DecideIn, DecideOut, bytes]):
    """One customer's contact history, consent and NBA ledger, and the decisions taken."""

    def __init__(
        self,
        decider: Decider | None,
        contacts: ContactHistory,
        ledger: Ledger | None = None,
        *,
        capped: bool = False,
    ) -> None:
        self.decider = decider
        self.contacts = contacts
        self.ledger = ledger if ledger is not None else Ledger()
        self.capped = capped

    def on_batch(self, values: Sequence[DecideIn]) -> tuple[Iterable[DecideOut], bool]:
        out: list[DecideOut] = []
        forgotten = False
        for item in values:
            forgotten = isinstance(item, Forget)
            if isinstance(item, Forget):  # an erased customer: nothing of them stays
                self.contacts, self.ledger = ContactHistory(), Ledger()
            elif isinstance(item, Responded):
                out += self._answer(item)
            elif isinstance(item, Tombstone):  # on to the profile step, in this key's order
                out.append(item)
            else:
                out += self._step(item)
        # a history with no sends and no consent is what a new key starts from: keeping
        # it would only hold a key per customer ever seen (issue #16, bounded state)
        contacts = self.contacts
        empty = not (contacts.sent or contacts.consent or contacts.refused or self.ledger.issued)
        return out, StatefulBatchLogic.DISCARD if forgotten or empty else StatefulBatchLogic.RETAIN

    def _answer(self, item: Responded) -> list[DecideOut]:
        reason: DeadLetterReason
        if self.decider is None:
            reason, error = "unknown_nba", "the flow makes no decisions (CX_NBA__ENABLED off)"
        else:
            dead = self.decider.answer(item.response, item.customer_id, self.contacts, self.ledger)
            # for the decision summaries (flows.steps.summary): every response, joined or not
            outcome = ResponseOutcome(item.resolved, item.response, joined=dead is None)
            if dead is None:
                return [outcome]
            reason, error = dead
            return [response_dead_letter(item.resolved, reason, error), outcome]
        return [response_dead_letter(item.resolved, reason, error)]

    def _step(self, scored: Scored) -> list[DecideOut]:
        journeyed = scored.journeyed
        figures = {**journeyed.figures, "churn": scored.churn, "segment": scored.segment}
        if scored.household is not None:  # the profile's household as of this event
            figures.update(household_fields(scored.household))
        out: list[DecideOut] = [
            Journeyed(journeyed.resolved, journeyed.stage, journeyed.sentiment, figures)
        ]
        scoring = journeyed.scoring
        if self.decider is None or scoring is None or scoring.context is None:
            return self._capped(scored, [], []) + out if self.capped else out
        resolved = journeyed.resolved
        event = resolved.event
        now = event.epoch_ms
        if event.data.consent:
            self.contacts.fold_consent(now, event.data.consent, self.decider.settings)
        ctx = with_scores(
            scoring.context,
            segment=scored.segment,
            churn=scored.churn,
            churn_ready=scored.churn_ready,
            top_category=scored.top_category,
        )
        if scored.household is not None:  # read for this batch (flows.steps.households)
            ctx = with_household(ctx, scored.household)
        # opt-outs stored under ids merged into this one count too (flows.nba.policy)
        withdrawn = resolved.withdrawn() if resolved.opted_out else None
        held: list[tuple[str, str]] = []
        out += self.decider.decide(
            ctx,
            self.contacts,
            event.id,
            event.time,
            now,
            withdrawn=withdrawn,
            lifts=scored.lifts,
            ledger=self.ledger,
            held=held,
        )
        if self.capped:  # the household cap decides, in lane order (flows.steps.household_cap)
            return self._capped(scored, out[1:], held) + out[:1]
        if len(out) > 1 or held:  # for the decision summaries (flows.steps.summary)
            out.append(Decided.of(resolved, out[1:], held))
        out.append(out.pop(0))  # the Journeyed last: the summary step reads it as "done"
        return out

    @staticmethod
    def _capped(
        scored: Scored, nbas: list[DecideOut], held: list[tuple[str, str]]
    ) -> list[DecideOut]:
        journeyed = scored.journeyed
        household = scored.household.household_id if scored.household is not None else ""
        day = journeyed.resolved.event.epoch_ms // DAY_MS
        sent = tuple(n for n in nbas if isinstance(n, NextBestAction))
        return [Capped(journeyed, household, day, sent, tuple(held))]

    def snapshot(self) -> bytes:
        state = (self.contacts, self.ledger) if self.ledger.issued else self.contacts
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def decide_key(item: DecideIn) -> str:
    """Key function: the customer the item is about."""
    return item.customer_id


def decide_builder(
    decider: Decider | None, *, capped: bool = False
) -> Callable[[bytes | None], DecideLogic]:
    """Builder for ``op.stateful_batch`` keyed by customer_id.

    ``capped``: the catalogue's household cap is on, and the household cap step sends
    the NBAs (:mod:`flows.steps.household_cap`).
    """

    def build(resume: bytes | None) -> DecideLogic:
        # Bytewax's own recovery store is the only source of these bytes.
        state = pickle.loads(resume) if resume is not None else ContactHistory()  # noqa: S301 (our own recovery snapshot)
        if isinstance(state, tuple):  # (contacts, ledger): NBAs a response may answer
            contacts, ledger = state
            return DecideLogic(decider, contacts, ledger, capped=capped)
        return DecideLogic(decider, state, capped=capped)

    return build
