"""The adaptive acceptance model: how likely an action is accepted, learnt from responses.

One :class:`AcceptanceModel` per lane (the score step's state, fed in lane order, so
a replay learns exactly as the first run did). Per action and customer segment it
keeps Beta evidence: ``accepted`` and ``answered`` (accepted, rejected, dismissed or
``no_response``) counts. Cold starts borrow strength upwards: a segment's estimate
starts from the action's, the action's from the catalogue's ``acceptance_prior``
(each worth ``prior_weight`` answers of evidence)::

    p(action)          = (accepted_a + w * prior) / (answered_a + w)
    p(action, segment) = (accepted_s + w * p(action)) / (answered_s + w)

The decision reads it as a *lift* over the prior, ``p(action, segment) / prior``,
that multiplies the action's propensity in arbitration (:mod:`flows.nba.arbitration`):
an action nobody answered yet keeps exactly its fixed-rule priority.

Outcomes: an ``impression`` opens a wait of the action's ``response_timeout``
(event time); an answer within it closes the wait; a lane watermark past it learns a
``no_response`` negative. ``accepted`` is the positive; ``rejected``, ``dismissed``,
``no_response`` the negatives; each NBA teaches at most one label (its first answer).
Every label is first scored with the estimate the model gave before learning it
(prequential), for a per-action ROC AUC.

Health alerts (Pega's adaptive model monitoring), kind ``adaptive_model_health``:
``auc_stuck`` when an action's AUC stays within ``auc_stuck_margin`` of 0.5 after
``health_min_responses`` labels (once; re-armed when it leaves the margin), and
``responses_down`` when an event-time week got fewer than ``1 - responses_drop`` of
the week before's responses (checked as the watermark enters a new week).

>>> model = AcceptanceModel({"call": 0.2}, {"call": 3_600_000}, AcceptanceSettings())
>>> model.lift("call", "s1")
1.0
>>> [lab.label for lab in model.observe("n1", "call", "s1", "accepted", 0)]
[True]
>>> round(model.probability("call", "s1"), 4), round(model.lift("call", "s1"), 3)
(0.3388, 1.694)
>>> _ = model.observe("n2", "call", "s1", "impression", 0)
>>> [lab.outcome for lab in model.advance(3_600_001)]
['no_response']
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from online_models.evaluation import BinnedROCAUC
from online_models.settings import AcceptanceSettings
from schemas.ids import output_id

WEEK_MS = 7 * 86_400_000
ANSWERS = frozenset({"accepted", "rejected", "dismissed"})
NO_RESPONSE = "no_response"
AUC_THRESHOLDS = 200


@dataclass(frozen=True, slots=True)
class Label:
    """One learnt outcome: the estimate before it (for the AUC) and the label."""

    nba_id: str
    action: str
    segment: str
    outcome: str
    label: bool
    estimate: float
    t_ms: int


@dataclass(frozen=True, slots=True)
class Health:
    """A health finding, to raise as an ``adaptive_model_health`` alert."""

    id: str
    check: str  # auc_stuck | responses_down
    action: str
    t_ms: int
    figures: dict[str, float | int]


class AcceptanceModel:
    """Beta evidence per (action, segment), with timeouts and health checks."""

    def __init__(
        self,
        priors: Mapping[str, float],
        timeouts: Mapping[str, int],
        settings: AcceptanceSettings,
    ) -> None:
        self.priors = dict(priors)
        self.timeouts = dict(timeouts)
        self.settings = settings
        self.actions: dict[str, list[int]] = {}  # action -> [accepted, answered]
        self.cells: dict[tuple[str, str], list[int]] = {}
        self.auc: dict[str, Any] = {}  # action -> BinnedROCAUC (River: untyped)
        self.stuck: set[str] = set()  # actions with an auc_stuck alert out
        self.pending: dict[str, tuple[int, str, str]] = {}  # nba -> (deadline, action, seg)
        self.deadlines: list[tuple[int, str]] = []  # heap of (deadline, nba id)
        self.answered: dict[str, None] = {}  # insertion-ordered, bounded
        self.weekly: dict[str, dict[int, int]] = {}  # action -> week -> responses
        self.week = -1  # the watermark's week
        self.health: list[Health] = []  # findings not collected yet
        self.version = 0  # bumped by every label (callers cache lifts by it)

    # -- reading ------------------------------------------------------------------------

    def probability(self, action: str, segment: str) -> float:
        """Return the acceptance estimate of ``action`` for a customer of ``segment``."""
        prior = self.priors.get(action, 0.2)
        w = self.settings.prior_weight
        acc, n = self.actions.get(action, (0, 0))
        p_action = (acc + w * prior) / (n + w)
        acc, n = self.cells.get((action, segment), (0, 0))
        return (acc + w * p_action) / (n + w)

    def lift(self, action: str, segment: str) -> float:
        """Return ``probability / prior``: exactly 1.0 for an action without answers."""
        if action not in self.actions:
            return 1.0
        return self.probability(action, segment) / self.priors.get(action, 0.2)

    def lifts(self, segment: str) -> dict[str, float]:
        """Return the lift of every action with answers, for a customer of ``segment``."""
        return {a: round(self.lift(a, segment), 6) for a in sorted(self.actions)}

    def figures(self, action: str) -> tuple[int, float | None, float | None]:
        """Return an action's answered count, acceptance rate and AUC (None: unknown)."""
        acc, n = self.actions.get(action, (0, 0))
        auc = self.auc.get(action)
        return n, (acc / n if n else None), (auc.get() if auc is not None and n else None)

    # -- learning -----------------------------------------------------------------------

    def observe(
        self, nba_id: str, action: str, segment: str, outcome: str, t_ms: int
    ) -> list[Label]:
        """Take in one response; return the label it teaches (none for an impression)."""
        self._count(action, t_ms)
        if nba_id in self.answered:
            return []
        if outcome == "impression":
            if nba_id not in self.pending:
                deadline = t_ms + self.timeouts.get(action, 86_400_000)
                self.pending[nba_id] = (deadline, action, segment)
                heapq.heappush(self.deadlines, (deadline, nba_id))
                while len(self.pending) > self.settings.max_pending:
                    self._expire(heapq.heappop(self.deadlines))
            return []
        if outcome not in ANSWERS:
            return []
        self.pending.pop(nba_id, None)  # its heap entry is skipped when it comes up
        return [self._learn(nba_id, action, segment, outcome, t_ms)]

    def advance(self, wm_ms: int) -> list[Label]:
        """Move to the lane watermark ``wm_ms``: learn the timed-out impressions."""
        out: list[Label] = []
        while self.deadlines and self.deadlines[0][0] < wm_ms:
            label = self._expire(heapq.heappop(self.deadlines))
            if label is not None:
                out.append(label)
        week = wm_ms // WEEK_MS
        if week > self.week:
            if self.week >= 0:
                self._weekly_check(week, wm_ms)
            self.week = week
        return out

    def collect_health(self) -> list[Health]:
        """Return (and forget) the health findings since the last call."""
        found, self.health = self.health, []
        return found

    def _expire(self, entry: tuple[int, str]) -> Label | None:
        deadline, nba_id = entry
        pending = self.pending.get(nba_id)
        if pending is None or pending[0] != deadline:
            return None  # answered since, or a stale heap entry
        del self.pending[nba_id]
        return self._learn(nba_id, pending[1], pending[2], NO_RESPONSE, deadline)

    def _learn(self, nba_id: str, action: str, segment: str, outcome: str, t_ms: int) -> Label:
        positive = outcome == "accepted"
        estimate = self.probability(action, segment)
        for counts in (
            self.actions.setdefault(action, [0, 0]),
            self.cells.setdefault((action, segment), [0, 0]),
        ):
            counts[0] += positive
            counts[1] += 1
        auc = self.auc.setdefault(action, BinnedROCAUC(n_thresholds=AUC_THRESHOLDS))
        auc.update(positive, estimate)
        self.answered[nba_id] = None
        if len(self.answered) > self.settings.max_answered:
            del self.answered[next(iter(self.answered))]
        self.version += 1
        self._auc_check(action, nba_id, t_ms)
        return Label(nba_id, action, segment, outcome, positive, estimate, t_ms)

    # -- health ---------------------------------------------------------------------------

    def _count(self, action: str, t_ms: int) -> None:
        weeks = self.weekly.setdefault(action, {})
        week = t_ms // WEEK_MS
        weeks[week] = weeks.get(week, 0) + 1
        for old in [w for w in weeks if w < week - 3]:
            del weeks[old]

    def _auc_check(self, action: str, nba_id: str, t_ms: int) -> None:
        conf = self.settings
        n = self.actions[action][1]
        if n < conf.health_min_responses:
            return
        auc = self.auc[action].get()
        if abs(auc - 0.5) > conf.auc_stuck_margin:
            self.stuck.discard(action)
            return
        if action in self.stuck:
            return
        self.stuck.add(action)
        self.health.append(
            Health(
                output_id("alert", "adaptive_model_health", "auc_stuck", action, nba_id),
                "auc_stuck",
                action,
                t_ms,
                {"auc": round(auc, 4), "responses": n, "margin": conf.auc_stuck_margin},
            )
        )

    def _weekly_check(self, week: int, wm_ms: int) -> None:
        conf = self.settings
        for action in sorted(self.weekly):
            weeks = self.weekly[action]
            last, before = weeks.get(week - 1, 0), weeks.get(week - 2, 0)
            if before < conf.min_weekly_responses or last >= (1 - conf.responses_drop) * before:
                continue
            self.health.append(
                Health(
                    output_id("alert", "adaptive_model_health", "responses_down", action, week),
                    "responses_down",
                    action,
                    wm_ms,
                    {"responses_last_week": last, "responses_week_before": before},
                )
            )
