"""The decide step: eligibility, consent, contact policy, arbitration, one NBA per pick.

The decide step (:mod:`flows.steps.decide`) calls :meth:`Decider.decide` for every
event of a customer, after journey and scores, with the decision context
(:func:`flows.nba.context.build_context`) and the customer's
:class:`~flows.nba.policy.ContactHistory`. Per trigger:

1. **eligibility**: the actions whose ``when`` conditions all hold;
2. **arbitration** ranks them by ``propensity x value x lever``
   (:mod:`flows.nba.arbitration`); one without a known propensity is held
   back as ``no_score``;
3. **policy**, best first: consent, open case, cool-down, day and week caps
   (:mod:`flows.nba.policy`); the first ``top_n`` that pass are sent, those
   after are held back as ``arbitration``; with a ``[household]`` cap in the
   catalogue, an action of its classes sent here also needs room in the household's
   budget for the day (event time), shared by every member: that is spent after this
   step, in lane order (:mod:`flows.steps.household_cap`; ``household_cap``).

Every held-back action is counted by reason in ``cx_nba_suppressed_total``
and in :attr:`Decider.suppressed`; every NBA in ``cx_nba_total``.

The NBA id is ``output_id("nba", action id, trigger event id)``: a replayed
event gives the same id. The NBAs of one trigger share its ``decision_id``
(``output_id("decision", trigger event id)``, Pega's interaction id: a response
names it) and carry their ``rank`` in it (1 = the best). Its reason codes say which rule fired, each
condition's field value against its threshold, and the priority's factors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flows import metrics
from flows.nba.arbitration import Candidate, rank
from flows.nba.catalogue import Catalogue
from flows.nba.conditions import all_of
from flows.nba.policy import WEEK_MS, ContactHistory
from flows.nba.responses import Issued, Ledger
from flows.records import Context
from flows.step_settings import NbaSettings
from schemas.ids import output_id
from schemas.outputs import DeadLetterReason, NextBestAction
from schemas.responses import NbaResponse

#: Context fields copied into every NBA for the agent desktop.
EXCERPT: dict[str, str] = {  # excerpt key -> context field
    "segment": "segment",
    "lifetime_value": "lifetime_value",
    "churn_risk": "churn",
    "last_nps": "last_nps",
    "sentiment_trend": "sentiment_trend",
    "open_cases": "open_cases",
    "stage": "stage",
    "top_category": "top_category",
}
SUPPRESSION_REASONS = (
    "no_score", "consent", "open_case", "cooldown", "rejected", "daily_cap", "weekly_cap",
    "arbitration", "household_cap",
)  # fmt: skip


class Decider:
    """Next-best actions from one catalogue under one contact policy (one per worker)."""

    def __init__(self, catalogue: Catalogue, settings: NbaSettings | None = None) -> None:
        self.catalogue = catalogue
        self.settings = settings or NbaSettings()
        self.keep_ms = max([WEEK_MS, *(a.cooldown_ms for a in catalogue.actions)])
        self.actions = {a.id: a for a in catalogue.actions}
        # each action with its rule compiled once: the check of every action on every event
        self._rules = [(a, all_of(a.when)) for a in catalogue.actions]
        # Only work out the category propensity when some action reads it.
        self.needs_propensity = catalogue.uses("top_category", "category_propensity")
        self.suppressed: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._metric = {r: metrics.NBA_SUPPRESSED.labels(r).inc for r in SUPPRESSION_REASONS}

    def decide(  # noqa: PLR0913 (the trigger and its clock; withdrawn is keyword-only)
        self,
        ctx: Context,
        history: ContactHistory,
        event_id: str,
        time: datetime,
        now_ms: int,
        *,
        withdrawn: Mapping[str, int] | None = None,
        lifts: Mapping[str, float] | None = None,
        ledger: Ledger | None = None,
        held: list[tuple[str, str]] | None = None,
    ) -> list[NextBestAction]:
        """Return the NBAs for one trigger event, recording them in ``history``.

        ``withdrawn``: the consent the profile store reports withdrawn for the
        customer (purpose -> event time), merged-away ids' included; see
        :meth:`~flows.nba.policy.ContactHistory.consents`. ``lifts``: the adaptive
        acceptance model's lift per action (:mod:`flows.nba.arbitration`); ``ledger``
        remembers the NBAs sent, for their responses (:mod:`flows.nba.responses`);
        ``held`` gets ``(reason, action id)`` of each action held back.
        """
        eligible = [action for action, holds in self._rules if holds(ctx)]
        if not eligible:
            return []
        conf = self.settings
        ranked = rank(self.catalogue, ctx, eligible, lifts)
        self._hold("no_score", len(eligible) - len(ranked))
        if held is not None and len(ranked) < len(eligible):
            scored = {c.action.id for c in ranked}
            held += [("no_score", a.id) for a in eligible if a.id not in scored]
        chosen: list[Candidate] = []
        open_cases = bool(ctx.get("open_cases"))
        for candidate in ranked:
            action = candidate.action
            if not history.consents(action.consent, action.channel, withdrawn):
                reason: str | None = "consent"
            elif open_cases and action.action_class in conf.blocked_by_open_case:
                reason = "open_case"
            else:
                reason = history.blocked(
                    action.id,
                    action.action_class,
                    action.cooldown_ms,
                    now_ms,
                    chosen=len(chosen),
                    conf=conf,
                )
            if reason is None and len(chosen) >= conf.top_n:
                reason = "arbitration"
            if reason is not None:
                self._hold(reason)
                if held is not None:
                    held.append((reason, action.id))
                continue
            chosen.append(candidate)
        out = []
        decision_id = output_id("decision", event_id)
        for rank_, candidate in enumerate(chosen, 1):
            action = candidate.action
            history.record(action.id, action.action_class, now_ms, self.keep_ms)
            self.sent[action.id] += 1
            metrics.NBA.labels(action.id).inc()
            nba = self._nba(candidate, ctx, event_id, time, (decision_id, rank_))
            if ledger is not None:
                keep = action.expiry_ms + action.response_timeout_ms
                ledger.add(nba.id, decision_id, action.id, action.action_class, now_ms, keep)
            out.append(nba)
        return out

    def answer(
        self, response: NbaResponse, canonical_id: str, history: ContactHistory, ledger: Ledger
    ) -> tuple[DeadLetterReason, str] | None:
        """Join ``response`` to its NBA and apply it to ``history``; or why not (a dead letter).

        See :mod:`flows.nba.responses` for the rules.
        """
        t_ms = int(response.time.timestamp() * 1000)
        ledger.prune(t_ms)
        joined = ledger.join(response.nba_id, response.decision_id, response.action, t_ms)
        action = self.actions.get(response.action)
        if isinstance(joined, str):
            if response.customer_id == canonical_id or action is None:
                return "unknown_nba", joined
            joined = Issued(response.decision_id, action.id, action.action_class, t_ms, t_ms)
        elif response.outcome != "impression":
            if joined.answer not in (None, response.outcome):
                return "response_conflict", f"the NBA was {joined.answer} before"
            joined.answer = response.outcome
        if response.outcome == "impression":
            joined.shown_ms = t_ms if joined.shown_ms is None else min(joined.shown_ms, t_ms)
        elif action is None:  # the catalogue changed since: the answer is joined, no policy
            return None
        elif response.outcome == "accepted":
            history.record(action.id, action.action_class, t_ms, self.keep_ms)
        else:
            history.refuse(action.id, t_ms, self.keep_ms)
        return None

    def _nba(
        self,
        candidate: Candidate,
        ctx: Context,
        event_id: str,
        time: datetime,
        decision: tuple[str, int],
    ) -> NextBestAction:
        action = candidate.action
        reasons = [f"rule:{action.id}", *(c.explain(ctx) for c in action.when), candidate.reason()]
        excerpt: dict[str, Any] = {key: ctx.get(name) for key, name in EXCERPT.items()}
        return NextBestAction(
            id=output_id("nba", action.id, event_id),
            customer_id=str(ctx["customer_id"]),
            decision_id=decision[0],
            rank=decision[1],
            action=action.id,
            action_class=action.action_class,
            channel=action.channel,
            priority=candidate.priority,
            score=round(candidate.propensity, 4),
            message=action.render(ctx),
            reason_codes=reasons,
            trigger_event_ids=[event_id],
            time=time,
            expires_at=time + timedelta(milliseconds=action.expiry_ms),
            profile_excerpt=excerpt,
        )

    def _hold(self, reason: str, n: int = 1) -> None:
        if n > 0:
            self.suppressed[reason] += n
            self._metric[reason](n)
