"""Contact policy and consent: one customer's contact history, kept in journey state.

Per customer the journey state holds a :class:`ContactHistory`: the actions
sent over the last week of event time, or the longest cool-down if longer
(for the day and week caps and the cool-downs), and the customer's consent,
folded from ``data.consent`` of their events (purpose -> granted; the latest
by event time wins). It is small and bounded: at most :data:`MAX_SENT` sends
and ``max_consent_purposes`` purposes.

An action is held back, checked in this order, for:

``consent``
    it needs a consent purpose (marketing: ``marketing`` by default) and the
    customer opted out of that purpose or of ``<purpose>_<channel>`` (an opt
    out of ``marketing_email`` stops marketing by email); a purpose never
    mentioned counts as allowed. Service and retention actions need none.
``open_case``
    its class is in ``blocked_by_open_case`` (marketing and sales) and the
    customer has a service case open;
``cooldown``
    the same action went to this customer within its ``cooldown_hours``
    before or after the trigger (events may arrive out of order);
``rejected``
    the customer rejected or dismissed the action (a response, see
    :mod:`flows.nba.responses`) within its cool-down before the trigger;
``daily_cap`` / ``weekly_cap``
    the customer already got ``max_per_day`` actions in the 24 h, or
    ``max_per_week`` in the 7 days, up to the trigger's event time (the
    actions chosen for this trigger count too); classes in ``cap_exempt``
    (service) pass but are counted.

Like the rest of the journey state, the history is per customer id: when two
customers merge, the merged-away id's history (and consent) stays behind and
the survivor keeps its own. Consent given under a merged-away id still counts:
the profile store merges consent (latest by event time) and resolve reports the
survivor's withdrawn purposes with their event times, which
:meth:`ContactHistory.consents` honours next to this history. The rule: an
action is held back when this history's latest entry for the purpose withdraws
it, or the store's does and this history holds no strictly newer grant (one
folded here before the profile step stored it). So a later opt-in under the
survivor wins over an older opt-out under the merged id, and an opt-out wins
otherwise; the store reports no grants, so an older opt-out in this history
still blocks when a merged id later opted in (privacy errs on holding back).

>>> from flows.step_settings import NbaSettings
>>> h = ContactHistory()
>>> h.fold_consent(1_000, {"marketing_email": False}, NbaSettings())
>>> h.consents("marketing", "email"), h.consents("marketing", "sms"), h.consents(None, "email")
(False, True, True)
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flows.step_settings import NbaSettings

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MAX_SENT = 256  # hard bound on remembered sends, whatever the settings


@dataclass(slots=True)
class ContactHistory:
    """One customer's sends and consent (see the module docstring)."""

    sent: list[tuple[int, str, str]] = field(default_factory=list)  # (ms, action, class), sorted
    consent: dict[str, tuple[int, bool]] = field(default_factory=dict)  # purpose -> (ms, granted)
    refused: dict[str, int] = field(default_factory=dict)  # action -> latest rejection ms

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Unpickle, giving a snapshot of an earlier version (no ``refused``) none."""
        slots = state[1]
        self.sent, self.consent = slots["sent"], slots["consent"]
        self.refused = slots.get("refused", {})

    def refuse(self, action_id: str, t_ms: int, keep_ms: int) -> None:
        """Remember a rejection of ``action_id`` at ``t_ms``; forget those past ``keep_ms``."""
        if self.refused.get(action_id, -1) < t_ms:
            self.refused[action_id] = t_ms
        horizon = max(self.refused.values()) - keep_ms
        for name in [a for a, ms in self.refused.items() if ms < horizon]:
            del self.refused[name]

    def fold_consent(self, t_ms: int, changes: dict[str, bool], conf: NbaSettings) -> None:
        """Take in an event's consent changes; an older change never overrides a newer one."""
        for purpose, granted in sorted(changes.items()):
            known = self.consent.get(purpose)
            if known is None or known[0] <= t_ms:
                self.consent[purpose] = (t_ms, bool(granted))
        while len(self.consent) > conf.max_consent_purposes:
            del self.consent[min(self.consent, key=lambda p: (self.consent[p][0], p))]

    def consents(
        self, purpose: str | None, channel: str, withdrawn: Mapping[str, int] | None = None
    ) -> bool:
        """Whether an action needing ``purpose`` may go out by ``channel``.

        ``withdrawn`` holds the opt-outs the profile store reports for the
        customer (purpose -> event time; :attr:`flows.records.Resolved.opted_out`),
        merged-away ids' included. One blocks unless this history holds a grant
        of the same purpose strictly newer by event time (folded here before the
        profile step stored it): the latest by event time wins, a tie withdraws.

        >>> h = ContactHistory()
        >>> h.consents("marketing", "email", {"marketing": 5})
        False
        >>> h.consent["marketing"] = (9, True)  # a newer opt-in under this id
        >>> h.consents("marketing", "email", {"marketing": 5})
        True
        """
        if purpose is None:
            return True
        for key in (purpose, f"{purpose}_{channel}"):
            known = self.consent.get(key)
            if known is not None and not known[1]:
                return False
            at = withdrawn.get(key) if withdrawn else None
            if at is not None and (known is None or known[0] <= at):
                return False
        return True

    def blocked(  # noqa: PLR0913 (the action, the clock, then keyword-only context)
        self,
        action_id: str,
        action_class: str,
        cooldown_ms: int,
        now_ms: int,
        *,
        chosen: int,
        conf: NbaSettings,
    ) -> str | None:
        """Return the contact-policy reason holding an action back at ``now_ms``, or None.

        ``chosen`` actions were already picked for this trigger (they count towards
        the caps). Consent and open cases are checked by the caller, first.
        """
        if cooldown_ms and any(
            name == action_id and abs(now_ms - ms) < cooldown_ms for ms, name, _ in self.sent
        ):
            return "cooldown"
        refused = self.refused.get(action_id) if self.refused else None
        if refused is not None and 0 <= now_ms - refused < cooldown_ms:
            return "rejected"
        if action_class in conf.cap_exempt:
            return None
        if self._count(now_ms - DAY_MS, now_ms) + chosen >= conf.max_per_day:
            return "daily_cap"
        if self._count(now_ms - WEEK_MS, now_ms) + chosen >= conf.max_per_week:
            return "weekly_cap"
        return None

    def record(self, action_id: str, action_class: str, now_ms: int, keep_ms: int) -> None:
        """Remember a send, and forget sends older than ``keep_ms`` before the latest.

        ``keep_ms`` is the longer of a week and the longest cool-down: no cap or
        cool-down needs the older sends.
        """
        bisect.insort(self.sent, (now_ms, action_id, action_class))
        horizon = self.sent[-1][0] - max(keep_ms, WEEK_MS)
        drop = bisect.bisect_left(self.sent, (horizon + 1,))
        if drop or len(self.sent) > MAX_SENT:
            del self.sent[: max(drop, len(self.sent) - MAX_SENT)]

    def _count(self, after_ms: int, until_ms: int) -> int:
        """Count the sends in (after_ms, until_ms]."""
        sent = self.sent
        return bisect.bisect_right(sent, (until_ms, "\U0010ffff")) - bisect.bisect_right(
            sent, (after_ms, "\U0010ffff")
        )
