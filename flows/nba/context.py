"""The decision context: one flat dict of named fields that rules and messages read.

Every rule condition and message template of the catalogue names fields of
this context; :data:`FIELDS` is the full list, with the kind of value each
holds. A field whose value is unknown (no NPS answer yet, a model that is not
warm, ...) is ``None``: every comparison with it is false, and a message shows
it as ``n/a``.

The context is built per trigger event by :func:`build_context` in the journey
step (what the customer's state says), and the decide step adds the shared
models' fields with :func:`with_scores`.

>>> from online_models.features import CustomerFeatures
>>> trigger = Trigger("c-1", "cx.survey.nps", channel="survey", touchpoint="store.till", nps=3)
>>> ctx = build_context(trigger, NO_JOURNEY, CustomerFeatures())
>>> ctx["nps"], ctx["nps_group"], ctx["open_cases"], ctx["churn_ready"], ctx["churn"]
(3, 'detractor', 0, False, None)
>>> sorted(set(ctx) ^ set(FIELDS))
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flows.records import Context
from online_models.features import CustomerFeatures
from online_models.settings import DAY_MS
from schemas.vocabulary import NPS_PASSIVE_MIN, NPS_PROMOTER_MIN
from state.household_figures import HouseholdView

Kind = Literal["number", "text", "bool"]

#: Field name -> (kind, meaning). The README lists the same table.
FIELDS: dict[str, tuple[Kind, str]] = {
    # the trigger event
    "customer_id": ("text", "the customer id"),
    "event_type": ("text", "type of the trigger event, e.g. cx.survey.nps"),
    "channel": ("text", "channel of the trigger event"),
    "touchpoint": ("text", "touchpoint of the trigger event"),
    "nps": ("number", "NPS answer (0-10) carried by the trigger event"),
    "nps_group": ("text", "promoter (9-10), passive (7-8) or detractor (0-6) of that answer"),
    "csat": ("number", "CSAT answer (1-5) carried by the trigger event"),
    "sentiment": ("number", "sentiment (-1..1) of the trigger event"),
    "amount": ("number", "amount of the trigger event"),
    # the journey
    "stage": ("text", "journey stage after the event"),
    "sentiment_trend": ("number", "exponentially weighted sentiment trend"),
    "sentiment_short": ("number", "mean sentiment over the shortest window (24 h)"),
    "sentiment_long": ("number", "mean sentiment over the longest window (7 d)"),
    # the profile
    "lifetime_value": ("number", "total spend"),
    "orders": ("number", "orders placed"),
    "days_since_order": ("number", "days since the last order (None: never ordered)"),
    "tenure_days": ("number", "days since the customer was first seen"),
    "last_nps": ("number", "latest NPS answer"),
    "last_csat": ("number", "latest CSAT answer"),
    "open_cases": ("number", "service cases open"),
    "breached_cases": ("number", "open cases past their SLA"),
    "segment": ("text", "online segment, e.g. seg-2"),
    # the models
    "churn": ("number", "churn probability (None before the churn model is warm)"),
    "churn_ready": ("bool", "whether the churn model is past its warm-up"),
    "top_category": ("text", "category the customer is likeliest to buy next"),
    "category_propensity": ("number", "probability of that category"),
    # the household (state.households), as the store holds it at decision time
    "household_id": ("text", "the customer's household (None: none known)"),
    "household_members": ("number", "customers in the household"),
    "household_ltv": ("number", "the household's total spend"),
    "household_open_case": ("bool", "whether any member has a service case open"),
    "household_detractor": ("bool", "whether any member's latest NPS is a detractor's"),
}


def nps_group(nps: int | None) -> str | None:
    """``promoter``, ``passive`` or ``detractor``; None without an answer.

    >>> [nps_group(n) for n in (10, 7, 6, None)]
    ['promoter', 'passive', 'detractor', None]
    """
    if nps is None:
        return None
    if nps >= NPS_PROMOTER_MIN:
        return "promoter"
    return "passive" if nps >= NPS_PASSIVE_MIN else "detractor"


@dataclass(frozen=True)
class Trigger:
    """The trigger event's fields, as the context shows them."""

    customer_id: str
    event_type: str
    channel: str
    touchpoint: str
    nps: int | None = None
    csat: int | None = None
    sentiment: float | None = None
    amount: float | None = None


@dataclass(frozen=True)
class JourneyFigures:
    """The journey after the trigger event: its stage and sentiment figures."""

    stage: str | None = None
    sentiment_trend: float | None = None
    sentiment_short: float | None = None
    sentiment_long: float | None = None


#: No journey yet: no stage, no sentiment.
NO_JOURNEY = JourneyFigures()


def build_context(
    trigger: Trigger,
    journey: JourneyFigures,
    features: CustomerFeatures,
    now_ms: int = 0,
) -> Context:
    """Return the context of one decision (see :data:`FIELDS`), as of ``now_ms``.

    The models' fields are blank (``churn_ready`` false): the decide step
    fills them in with :func:`with_scores`.
    """
    f = features
    last_order = f.last_order_ms
    return {
        "customer_id": trigger.customer_id,
        "event_type": trigger.event_type,
        "channel": trigger.channel,
        "touchpoint": trigger.touchpoint,
        "nps": trigger.nps,
        "nps_group": nps_group(trigger.nps),
        "csat": trigger.csat,
        "sentiment": _round(trigger.sentiment),
        "amount": trigger.amount,
        "stage": journey.stage,
        "sentiment_trend": _round(journey.sentiment_trend),
        "sentiment_short": _round(journey.sentiment_short),
        "sentiment_long": _round(journey.sentiment_long),
        "lifetime_value": round(f.spend, 2),
        "orders": f.orders,
        "days_since_order": (
            round(max(0, now_ms - last_order) / DAY_MS, 2) if last_order is not None else None
        ),
        "tenure_days": (
            round(max(0, now_ms - f.first_ms) / DAY_MS, 2) if f.first_ms is not None else 0.0
        ),
        "last_nps": f.nps_last,
        "last_csat": f.csat_last,
        "open_cases": len(f.open_cases),
        "breached_cases": sum(1 for opened, sla in f.open_cases.values() if now_ms - opened > sla),
        "segment": None,
        "churn": None,
        "churn_ready": False,
        "top_category": None,
        "category_propensity": None,
        **NO_HOUSEHOLD,
    }


#: The household fields of a customer without a household.
NO_HOUSEHOLD: Context = {
    "household_id": None,
    "household_members": None,
    "household_ltv": None,
    "household_open_case": False,
    "household_detractor": False,
}


def with_household(ctx: Context, household: HouseholdView | None) -> Context:
    """Return ``ctx`` with the household fields of ``household`` (None or no id: none)."""
    if household is None or not household.household_id:
        return ctx
    return {
        **ctx,
        "household_id": household.household_id,
        "household_members": household.members,
        "household_ltv": household.ltv_cents / 100,
        "household_open_case": household.open_cases > 0,
        "household_detractor": household.detractors > 0,
    }


def with_scores(
    ctx: Context,
    *,
    segment: str | None,
    churn: float | None,
    churn_ready: bool,
    top_category: tuple[str, float] | None,
) -> Context:
    """``ctx`` (built without the models) with the shared models' fields filled in.

    >>> from online_models.features import CustomerFeatures
    >>> base = build_context(Trigger("c", "t", "web", "web.home"), NO_JOURNEY, CustomerFeatures())
    >>> ctx = with_scores(base, segment="seg-1", churn=0.81234, churn_ready=True,
    ...     top_category=("shoes", 0.4))
    >>> ctx["segment"], ctx["churn"], ctx["top_category"], base["segment"]
    ('seg-1', 0.8123, 'shoes', None)
    """
    return {
        **ctx,
        "segment": segment,
        "churn": _round(churn) if churn_ready else None,
        "churn_ready": churn_ready,
        "top_category": top_category[0] if top_category else None,
        "category_propensity": top_category[1] if top_category else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
