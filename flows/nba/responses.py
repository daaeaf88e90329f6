"""Responses joined to their decision: one customer's ledger of recent NBAs.

The decide step keeps, per customer, the NBAs it sent (:class:`Ledger`: NBA id ->
decision id, action, class, event time), for as long as a response may come: the
action's expiry plus its response timeout, in event time (at most :data:`MAX_ISSUED`).
A response (:class:`schemas.responses.NbaResponse`) is joined to its NBA there, in
event time, and then changes the customer's contact policy
(:class:`flows.nba.policy.ContactHistory`):

``rejected`` / ``dismissed``
    the action is held back (reason ``rejected``) for its cool-down from the
    response's event time;
``accepted``
    a contact at the response's event time: it counts against the day and week
    caps (a cap-exempt class is counted, never held back) and restarts the
    action's cool-down;
``impression``
    recorded; the silence after it is the score step's (a ``no_response``
    negative for the adaptive model, :mod:`online_models.acceptance`).

A response is a dead letter (never dropped, never attributed to someone else) as
``unknown_nba`` when this customer's ledger does not hold its NBA (never sent, sent to
someone else, forgotten past its horizon, or another decision or action than the NBA's)
or it predates the NBA in event time, and as ``response_conflict`` when the NBA was
answered before with another answer (the first answer holds). One exception: the
NBAs of a merged-away customer stay in its own ledger, so a response whose
``customer_id`` is not the canonical id it was routed to (a merged-away id) is
applied at the survivor by the response's own action, when the catalogue knows it.

>>> ledger = Ledger()
>>> ledger.add("nba-1", "dec-1", "call", "service", 1_000, 5_000)
>>> isinstance(ledger.join("nba-1", "dec-1", "call", 2_000), Issued)
True
>>> ledger.join("nba-1", "dec-1", "call", 999)
'the response at 999 ms predates its NBA (1000 ms)'
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_ISSUED = 256


@dataclass(slots=True)
class Issued:
    """One NBA sent: its decision, action and class, and when it was decided."""

    decision_id: str
    action: str
    action_class: str
    at_ms: int
    until_ms: int  # a response after this is not joined any more
    answer: str | None = None
    shown_ms: int | None = None


@dataclass(slots=True)
class Ledger:
    """One customer's NBAs a response may still answer, by NBA id."""

    issued: dict[str, Issued] = field(default_factory=dict)

    def add(  # noqa: PLR0913, PLR0917 (one NBA: ids, action and class, its time and horizon)
        self,
        nba_id: str,
        decision_id: str,
        action: str,
        action_class: str,
        at_ms: int,
        keep_ms: int,
    ) -> None:
        """Remember an NBA sent at ``at_ms``, answerable for ``keep_ms`` of event time."""
        self.issued[nba_id] = Issued(decision_id, action, action_class, at_ms, at_ms + keep_ms)
        self.prune(at_ms)

    def prune(self, now_ms: int) -> None:
        """Forget the NBAs past their horizon at ``now_ms``, and the oldest past the bound."""
        issued = self.issued
        for nba_id in [n for n, i in issued.items() if i.until_ms < now_ms]:
            del issued[nba_id]
        while len(issued) > MAX_ISSUED:
            del issued[min(issued, key=lambda n: (issued[n].at_ms, n))]

    def join(self, nba_id: str, decision_id: str, action: str, t_ms: int) -> Issued | str:
        """Return the NBA a response at ``t_ms`` answers, or why it answers none."""
        issued = self.issued.get(nba_id)
        if issued is None:
            return "the customer has no such NBA (never sent, or past its response horizon)"
        if issued.decision_id != decision_id or issued.action != action:
            return f"the NBA is {issued.action} of decision {issued.decision_id}"
        if t_ms < issued.at_ms:
            return f"the response at {t_ms} ms predates its NBA ({issued.at_ms} ms)"
        if t_ms > issued.until_ms:
            return f"the response at {t_ms} ms is past its NBA's horizon ({issued.until_ms} ms)"
        return issued
