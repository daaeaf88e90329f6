"""Arbitration: rank the eligible actions of one trigger as decision hubs do.

``priority = propensity x value x lever``: the *propensity* is the
likelihood the action works for this customer (a context field named by the
action, see :mod:`flows.nba.catalogue`: churn probability for retention,
category propensity for marketing and sales, 1.0 for service), the *value*
what it is worth when it does, the *lever* the business's weight on the
action class (``[levers]`` of the catalogue). With responses learnt, the adaptive acceptance
model's *lift* (its acceptance estimate for the customer's segment over the
action's ``acceptance_prior``, :mod:`online_models.acceptance`) multiplies the
propensity; without, it is 1 and the priority is the fixed rules'. Ties go to the action id, so
the order never depends on anything but the inputs.

>>> from flows.nba.catalogue import load_catalogue
>>> cat = load_catalogue(None)
>>> ranked = rank(cat, {"churn": 0.9, "category_propensity": 0.5}, cat.actions)
>>> [(c.action.id, c.priority) for c in ranked][:3]
[('retention_call', 135.0), ('service_recovery', 100.0), ('sentiment_outreach', 30.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flows.nba.catalogue import Action, Catalogue
from flows.records import Context


@dataclass(frozen=True)
class Candidate:
    """An eligible action with its arbitration figures."""

    action: Action
    propensity: float
    lever: float
    priority: float
    lift: float = 1.0  # the adaptive acceptance model's, already in propensity

    def reason(self) -> str:
        """Return the arbitration reason code.

        For example ``priority=35 (churn 0.7 x value 50 x lever 1)``.
        """
        source = self.action.propensity
        name = "propensity" if isinstance(source, float) else source
        factor = f"{name} {self.propensity:g}"
        if self.lift != 1.0:
            base = round(self.propensity / self.lift, 6)
            factor = f"{name} {base:g} x acceptance lift {self.lift:g}"
        return (
            f"priority={self.priority:g} ({factor} x value "
            f"{self.action.value:g} x lever {self.lever:g})"
        )


def propensity(action: Action, ctx: Context) -> float | None:
    """Return the action's propensity factor in ``ctx``; None when its field is unknown."""
    source = action.propensity
    if isinstance(source, float):
        return source
    value = ctx.get(source)
    if value is None or isinstance(value, str | bool):
        return None
    return float(value)


def rank(
    catalogue: Catalogue,
    ctx: Context,
    eligible: Iterable[Action],
    lifts: Mapping[str, float] | None = None,
) -> list[Candidate]:
    """``eligible`` actions with a known propensity, best priority first.

    An action whose propensity field is unknown (e.g. ``churn`` before the
    model is warm) is left out: the caller counts it as ``no_score``. ``lifts``:
    the adaptive acceptance model's lift per action
    (:meth:`online_models.acceptance.AcceptanceModel.lift`, 1.0 when absent)
    multiplies the propensity.
    """
    ranked = []
    for action in eligible:
        p = propensity(action, ctx)
        if p is None:
            continue
        lift = lifts.get(action.id, 1.0) if lifts else 1.0
        if lift != 1.0:
            p = round(p * lift, 6)
        lever = catalogue.lever(action.action_class)
        ranked.append(Candidate(action, p, lever, round(p * action.value * lever, 6), lift))
    ranked.sort(key=lambda c: (-c.priority, c.action.id))
    return ranked
