"""Decision summaries: NBAs, suppressions and responses per event-time window, under one key.

The decide step hands what it decided on to this engine (through the summary step,
:mod:`flows.steps.summary`, which puts it back into lane order): a :class:`Tally` per
trigger that sent or held back an action, and a :class:`Answered` per response joined
to its NBA. The engine runs like the NPS and insights engines (one key, the lanes
merged in a canonical order with ticks of each lane's watermark, :mod:`flows.steps.ticks`),
on the same windowing (:class:`flows.steps.windowed.Windowing`: tumbling, epoch-aligned,
``decision_window_lengths_seconds``, 1 d by default, ``allowed_lateness_seconds``).

Counts per window
    NBAs by (action, channel), suppressions by (reason, action), responses by
    (action, outcome). ``no_response``: an impression not answered (accepted,
    rejected or dismissed) within its action's ``response_timeout`` counts once the
    watermark passes that deadline, in the window that holds the deadline; an
    impression still waiting at end of input counts nowhere (its silence is not
    known yet). Acceptance per action: ``accepted / (accepted + rejected + dismissed
    + no_response)`` of the window.

Late items
    A closed window is final (no revisions): an item whose window has closed is not
    counted in it but in ``late_items`` of the next summary of that window length.

>>> from flows.steps.ticks import Tick
>>> engine = DecisionEngine(Windowing.of((86400,), 0), timeouts={"call": 3_600_000})
>>> engine.process([Tally(1_000, (("call", "call_center"),), (("cooldown", "offer"),))])
[]
>>> engine.process([Answered(2_000, "n1", "call", "impression")])
[]
>>> (summary,) = engine.process([Tick(86_400_000)])
>>> summary.nbas_total, summary.suppressions
(1, [{'reason': 'cooldown', 'action': 'offer', 'count': 1}])
>>> [(r["outcome"], r["count"]) for r in summary.responses]
[('impression', 1), ('no_response', 1)]
>>> summary.acceptance
[{'action': 'call', 'nbas': 1, 'impressions': 1, 'accepted': 0, 'answered': 1, 'rate': 0.0}]
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flows.steps.ticks import Tick
from flows.steps.windowed import Boundary, PickledEngine, Windowing, utc
from schemas.ids import output_id
from schemas.outputs import DecisionSummary

IMPRESSION = "impression"
NO_RESPONSE = "no_response"
ANSWERS = ("accepted", "rejected", "dismissed")


@dataclass(frozen=True, slots=True)
class Tally:
    """What one trigger decided: NBAs sent ``(action, channel)``, held ``(reason, action)``."""

    ms: int
    sent: tuple[tuple[str, str], ...] = ()
    held: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Answered:
    """A response joined to its NBA (the decide step's join)."""

    ms: int
    nba_id: str
    action: str
    outcome: str


DecisionItem = Tally | Answered | Tick


@dataclass(slots=True)
class _Counts:
    nbas: Counter[tuple[str, str]] = field(default_factory=Counter)
    held: Counter[tuple[str, str]] = field(default_factory=Counter)
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(slots=True)
class _State:
    max_ms: float = float("-inf")
    windows: dict[Boundary, _Counts] = field(default_factory=dict)
    late: dict[int, int] = field(default_factory=dict)  # length ms -> not yet reported
    # impressions waiting for an answer: nba id -> (deadline ms, action), and a heap
    waiting: dict[str, tuple[int, str]] = field(default_factory=dict)
    deadlines: list[tuple[int, str]] = field(default_factory=list)


class DecisionEngine(PickledEngine[Windowing, _State]):
    """Decision summaries per window (see the module notes); a ticked engine.

    ``settings`` is the windowing; ``timeouts`` each action's response timeout in ms.
    """

    def __init__(
        self,
        settings: Windowing,
        state: _State | None = None,
        *,
        timeouts: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(settings, state)
        self.timeouts = dict(timeouts or {})

    def _new_state(self) -> _State:
        return _State()

    @classmethod
    def resume(
        cls, windowing: Windowing, timeouts: Mapping[str, int], snap: bytes | None
    ) -> DecisionEngine:
        """Return the engine anew (None) or from its own snapshot, with ``timeouts``."""
        engine = cls.restore(windowing, snap)
        engine.timeouts = dict(timeouts)
        return engine

    @property
    def watermark_ms(self) -> float:
        """Latest event time seen minus the allowed lateness (-inf before any input)."""
        return self.settings.watermark(self._state.max_ms)

    def process(self, items: Iterable[DecisionItem]) -> list[DecisionSummary]:
        """Fold items in one at a time: each against the watermark before it, then close.

        One at a time, so an answer and the end of its wait are ordered by the items
        alone, whatever the batches.
        """
        state = self._state
        out: list[DecisionSummary] = []
        for item in items:
            watermark = self.watermark_ms
            state.max_ms = max(state.max_ms, item.ms)
            if isinstance(item, Tally):
                for counts in self._counts(item.ms, watermark):
                    counts.nbas.update(item.sent)
                    counts.held.update(item.held)
            elif isinstance(item, Answered):
                self._answer(item, watermark)
            self._silence(watermark)
            out += self._close(final=False)
        return out

    def close_all(self) -> list[DecisionSummary]:
        """End of input: close every window still open."""
        return self._close(final=True)

    def _counts(self, ms: int, watermark: float) -> list[_Counts]:
        """Return the open windows that hold ``ms``; a closed one counts the item late."""
        out = []
        state = self._state
        for boundary in self.settings.boundaries(ms):
            if self.settings.closed(boundary, watermark):
                state.late[boundary[0]] = state.late.get(boundary[0], 0) + 1
            else:
                out.append(state.windows.setdefault(boundary, _Counts()))
        return out

    def _answer(self, item: Answered, watermark: float) -> None:
        state = self._state
        for counts in self._counts(item.ms, watermark):
            counts.responses[item.action, item.outcome] += 1
        timeout = self.timeouts.get(item.action)
        if item.outcome == IMPRESSION and timeout is not None:
            if item.nba_id not in state.waiting:
                deadline = item.ms + timeout
                state.waiting[item.nba_id] = (deadline, item.action)
                heapq.heappush(state.deadlines, (deadline, item.nba_id))
        elif item.outcome in ANSWERS:
            waiting = state.waiting.get(item.nba_id)
            if waiting is not None and item.ms <= waiting[0]:  # in time: no silence
                del state.waiting[item.nba_id]

    def _silence(self, before: float) -> None:
        """Count a no_response for every wait the watermark has now passed."""
        state = self._state
        watermark = self.watermark_ms
        while state.deadlines and state.deadlines[0][0] <= watermark:
            deadline, nba_id = heapq.heappop(state.deadlines)
            waiting = state.waiting.get(nba_id)
            if waiting is None or waiting[0] != deadline:
                continue  # answered in time
            del state.waiting[nba_id]
            for counts in self._counts(deadline, before):
                counts.responses[waiting[1], NO_RESPONSE] += 1

    def _close(self, final: bool) -> list[DecisionSummary]:
        state = self._state
        due = self.settings.due(state.windows, self.watermark_ms, final)
        return [self._summary(b, state.windows.pop(b)) for b in due]

    def _summary(self, boundary: Boundary, counts: _Counts) -> DecisionSummary:
        length, start = boundary
        return DecisionSummary(
            id=output_id("decisions", length // 1000, start // 1000),
            window_start=utc(start),
            window_end=utc(start + length),
            nbas_total=counts.nbas.total(),
            suppressed_total=counts.held.total(),
            responses_total=counts.responses.total(),
            nbas=[
                {"action": a, "channel": c, "count": n} for (a, c), n in sorted(counts.nbas.items())
            ],
            suppressions=[
                {"reason": r, "action": a, "count": n} for (r, a), n in sorted(counts.held.items())
            ],
            responses=[
                {"action": a, "outcome": o, "count": n}
                for (a, o), n in sorted(counts.responses.items())
            ],
            acceptance=_acceptance(counts),
            late_items=self._state.late.pop(length, 0),
        )


def _acceptance(counts: _Counts) -> list[dict[str, Any]]:
    sent: Counter[str] = Counter()
    for (action, _), n in counts.nbas.items():
        sent[action] += n
    actions = sorted(set(sent) | {a for a, _ in counts.responses})
    out = []
    for action in actions:
        got = counts.responses
        accepted = got[action, "accepted"]
        answered = accepted + sum(got[action, o] for o in (*ANSWERS[1:], NO_RESPONSE))
        out.append(
            {
                "action": action,
                "nbas": sent[action],
                "impressions": got[action, IMPRESSION],
                "accepted": accepted,
                "answered": answered,
                "rate": round(accepted / answered, 4) if answered else None,
            }
        )
    return out
