"""Getting in touch: support contacts, service cases and their SLAs, surveys, leaving.

A problem (a failed checkout, a late parcel) makes the person get in touch on
a support channel; a contact that does not solve it opens a case at the
service desk. When the case is opened its fate is drawn (resolved after some
multiple of its SLA, or never), and the breach and the resolution are
scheduled for the times they happen. Surveys follow some touchpoints, and an
unhappy customer looks for the exit before taking it.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from replay.world.cases import Case
from replay.world.catalog import (
    CASE_CATEGORIES,
    CASE_TEXT,
    LEAVING,
    SLA_HOURS,
    SOCIAL_TAGS,
    TOUCHPOINTS,
)
from replay.world.drafts import HOUR_MS, MINUTE_MS, SECOND_MS, Draft
from replay.world.identity import new_cookie, raw_handle
from replay.world.insights import nps_shift

if TYPE_CHECKING:
    from replay.world.journey import Journey

_CALL_QUEUES = ("call_center.billing", "call_center.tech-support", "call_center.orders")
_CATEGORY_QUEUE = {
    "billing": "call_center.billing",
    "technical": "call_center.tech-support",
    "delivery": "call_center.orders",
    "returns": "call_center.orders",
}
_QUEUE_CATEGORY = {
    "call_center.billing": "billing",
    "call_center.tech-support": "technical",
    "call_center.orders": "delivery",
    "call_center.sales": "billing",
}
_CATEGORIES = tuple(CASE_CATEGORIES)


def problem(j: Journey, t: int, category: str) -> None:
    """Something went wrong: the person gets in touch about it at ``t``."""
    rng = j.rng
    channels = ("call_center", "chat", "email", "social")
    weights = (0.45, 0.3, 0.15, 0.1 if j.who.handle is not None else 0.0)
    channel = rng.choices(channels, weights=weights)[0]
    j.later(t, lambda: contact(j, t, channel, category))


def contact(
    j: Journey, t: int, channel: str, category: str | None, case: Case | None = None
) -> None:
    """Simulate a support contact; unresolved problems become service cases."""
    rng = j.rng
    shift = -0.3 if case is not None else 0.0  # chasing a late case colours the contact
    fields: dict[str, Any] = {} if case is None else {"case_id": case.case_id}
    stage = "service" if category is not None else None
    if channel == "call_center":
        tp = (
            _CATEGORY_QUEUE[category]
            if category
            else rng.choice((*_CALL_QUEUES, "call_center.sales"))
        )
        x = j.feel(t, tp, shift)
        ids = {"phone": j.phone()}
        if rng.random() < 0.5:
            ids["crm_id"] = j.who.crm_id  # identified and verified by the agent
        if rng.random() < 0.4:
            fields["text"] = j.say(x)
        wait = int(math.exp(rng.gauss(4.8 - 1.5 * x, 0.5)))
        attrs = {
            "queue": tp.split(".")[1],
            "wait_seconds": wait,
            "talk_seconds": rng.randrange(60, 1500),
            "agent": rng.randrange(100, 400),
        }
        d = j.add(t, "cx.call_center.call.completed", tp, ids, fields, attrs, stage, tz="+00:00")
    elif channel == "chat":
        tp = rng.choice(("chat.support-bot", "chat.support-bot", "chat.live-agent"))
        x = j.feel(t, tp, shift)
        ids = {}
        if j.cookie is not None:
            ids["cookie_id"] = j.cookie
        if j.registered or not ids:  # signed in, or typed into the pre-chat form
            ids["email"] = j.email()
        conversation = f"conv-{rng.getrandbits(32):08x}"
        d = j.add(
            t,
            "cx.chat.message",
            tp,
            ids,
            {**fields, "text": j.say(x)},
            {"conversation_id": conversation},
            stage,
        )
        for _ in range(rng.randrange(3)):
            t += rng.randrange(20, 180) * SECOND_MS
            j.add(
                t,
                "cx.chat.message",
                tp,
                dict(ids),
                {**fields, "text": j.say(x)},
                {"conversation_id": conversation},
            )
    elif channel == "email":
        tp = "email.support"
        x = j.feel(t, tp, shift)
        subject = category or "question"
        d = j.add(
            t,
            "cx.email.received",
            tp,
            {"email": j.email()},
            {**fields, "text": j.say(x)},
            {"subject": subject},
            stage,
        )
    else:
        d, x = _post(j, t, fields, stage, shift)
    if case is None and category is not None and x < 0.15:
        open_case(j, t, category, channel, x)
    elif case is None and category is None and x < -0.55 and rng.random() < 0.35:
        open_case(j, t, _QUEUE_CATEGORY.get(d.touchpoint) or rng.choice(_CATEGORIES), channel, x)
    maybe_survey(j, t, d.touchpoint, x, d, 0.2 if channel in ("call_center", "chat") else 0.05)


def _post(
    j: Journey, t: int, fields: dict[str, Any], stage: str | None, shift: float
) -> tuple[Draft, float]:
    """Draft a public post about the brand, scored by the listening tool."""
    rng = j.rng
    handle = j.who.handle
    if handle is None:  # no social account: they write an email instead
        x = j.feel(t, "email.support", shift)
        d = j.add(
            t,
            "cx.email.received",
            "email.support",
            {"email": j.email()},
            {**fields, "text": j.say(x)},
            stage=stage,
        )
        return d, x
    tp = rng.choice(("social.twitter", "social.facebook", "social.instagram"))
    x = j.feel(t, tp, shift)
    valence = j.valence(x)
    score = {"negative": -0.6, "neutral": 0.0, "positive": 0.6}[valence] + rng.gauss(0.0, 0.25)
    ids = {"social_handle": raw_handle(rng, handle)}
    if j.registered and rng.random() < 0.1:
        ids["email"] = j.email()  # shared in a direct message to the care team
    text = j.say(x, valence) + rng.choice(SOCIAL_TAGS[valence])
    sentiment = round(min(1.0, max(-1.0, score)), 2)
    d = j.add(
        t,
        "cx.social.post",
        tp,
        ids,
        {**fields, "text": text, "sentiment": sentiment},
        {"platform": tp.split(".")[1]},
        stage,
    )
    return d, x


def open_case(j: Journey, t: int, category: str, origin: str, x: float) -> Case:
    """Open a case at the service desk; decide now when (or whether) it gets resolved."""
    rng = j.rng
    desk, weights = CASE_CATEGORIES[category]
    priority = rng.choices(("P1", "P2", "P3"), weights=weights)[0]
    sla_ms = SLA_HOURS[priority] * HOUR_MS
    opened = t + rng.randrange(1, 15) * MINUTE_MS
    case = Case(
        case_id=j.clock.registry.unique("case_id", rng, _case_number),
        priority=priority,
        category=category,
        opened_ms=opened,
        due_ms=opened + sla_ms,
    )
    text = j.fill(rng.choice(CASE_TEXT[category]))
    if x < -0.5:
        text += f' Customer says: "{j.say(x, "negative")}"'
    j.add(
        opened,
        "cx.service_desk.case.opened",
        desk,
        j.account_ids(),
        fields={"case_id": case.case_id, "text": text},
        attributes={"priority": priority, "category": category, "origin_channel": origin},
        stage="service",
    )
    j.cases.append(case)
    j.open_cases += 1
    quality = j.latent.experience + TOUCHPOINTS[desk].quality
    if rng.random() < min(0.35, max(0.02, 0.06 - 0.15 * quality)):
        resolve_at = None  # never resolved
    else:
        factor = math.exp(rng.gauss(math.log(0.45) - 0.6 * quality, 0.6))
        resolve_at = opened + int(sla_ms * factor)
    if resolve_at is None or resolve_at > case.due_ms:
        j.later(case.due_ms, lambda: breach(j, case))
    if resolve_at is not None:
        at = resolve_at
        j.later(at, lambda: resolve(j, case, at))
    return case


def _case_number(rng: random.Random) -> str:
    return f"CS-{rng.randrange(10**6, 10**7)}"


def breach(j: Journey, case: Case) -> None:
    """Play out an SLA that ran out with the case still open: escalate, and the customer chases."""
    rng = j.rng
    case.breached = True
    j.breached_open += 1
    j.bad += 0.7
    desk = CASE_CATEGORIES[case.category][0]
    if rng.random() < 0.5:
        j.add(
            case.due_ms,
            "cx.service_desk.case.escalated",
            desk,
            {"crm_id": j.who.crm_id},
            {"case_id": case.case_id},
            {"priority": case.priority, "reason": "sla_due"},
            "service",
        )
    if rng.random() < 0.55:
        t = case.due_ms + rng.randrange(HOUR_MS, 24 * HOUR_MS)
        channel = rng.choice(("call_center", "chat"))
        j.later(t, lambda: contact(j, t, channel, case.category, case))


def resolve(j: Journey, case: Case, at: int) -> None:
    """Have the desk resolve the case; a late resolution still disappoints."""
    case.resolved_ms = at
    j.open_cases -= 1
    if case.breached:
        j.breached_open -= 1
    desk = CASE_CATEGORIES[case.category][0]
    x = j.feel(at, desk, -0.5 if case.breached else 0.2)
    resolution = j.rng.choice(("refund_issued", "replacement_sent", "advice_given", "fixed"))
    d = j.add(
        at,
        "cx.service_desk.case.resolved",
        desk,
        j.account_ids(),
        {"case_id": case.case_id},
        {"priority": case.priority, "category": case.category, "resolution": resolution},
        "service",
    )
    maybe_survey(j, at, desk, x, d, 0.35)


def close_account(j: Journey, t: int) -> None:
    """Close the account (the churn), on the phone or online."""
    rng = j.rng
    unhappy = j.bad > 1.0 or j.breached_open > 0
    reason = (
        "service" if unhappy else rng.choice(("price", "moving", "competitor", "no_longer_needed"))
    )
    fields: dict[str, Any] = {}
    if rng.random() < 0.4:
        fields["text"] = j.say(-1.0 if unhappy else 0.0, "negative" if unhappy else "neutral")
    attrs = {"reason": reason}
    if rng.random() < 0.5:
        ids = {"phone": j.phone(), "crm_id": j.who.crm_id}
        j.add(
            t,
            "cx.account.closed",
            "call_center.cancellations",
            ids,
            fields,
            attrs,
            "churn",
            tz="+00:00",
        )
    else:
        ids = {"email": j.email(), "crm_id": j.who.crm_id}
        j.add(t, "cx.account.closed", "web.account", ids, fields, attrs, "churn")


def thinking_of_leaving(j: Journey, t: int) -> None:
    """Have an unhappy customer look for the exit before (perhaps) taking it."""
    rng = j.rng
    r = rng.random()
    text = j.fill(rng.choice(LEAVING))
    if r < 0.4:
        if j.cookie is None:
            j.cookie = new_cookie(rng, j.clock.registry, t)
        ids = {"cookie_id": j.cookie, "email": j.email()}
        j.add(t, "cx.web.page.viewed", "web.account", ids, attributes={"page": "/account/close"})
    elif r < 0.7:
        ids = {"phone": j.phone(), "crm_id": j.who.crm_id}
        attrs = {
            "queue": "cancellations",
            "wait_seconds": rng.randrange(30, 900),
            "agent": rng.randrange(100, 400),
        }
        j.feel(t, "call_center.cancellations")
        j.add(
            t,
            "cx.call_center.call.completed",
            "call_center.cancellations",
            ids,
            {"text": text},
            attrs,
            tz="+00:00",
        )
    elif r < 0.85 and j.who.handle is not None:
        ids = {"social_handle": raw_handle(rng, j.who.handle)}
        j.add(
            t,
            "cx.social.post",
            "social.twitter",
            ids,
            {"text": text, "sentiment": round(rng.uniform(-0.8, -0.2), 2)},
            {"platform": "twitter"},
        )
    elif j.consent:
        j.set_consent(t, granted=False)
    else:
        j.add(t, "cx.chat.message", "chat.support-bot", {"email": j.email()}, {"text": text})


def maybe_survey(j: Journey, t: int, touchpoint: str, x: float, about: Draft, p: float) -> None:
    """Perhaps send a survey about ``about``; answered minutes to a day later."""
    rng = j.rng
    if not j.registered or rng.random() >= p:
        return
    when = t + rng.randrange(10 * MINUTE_MS, 30 * HOUR_MS)
    shift = nps_shift(j, about.channel)  # the planted drivers (replay.world.insights)
    nps = min(10, max(0, round(7.0 + 3.5 * x + shift + rng.gauss(0.0, 1.3))))
    fields: dict[str, Any] = {"nps": nps}
    if rng.random() < 0.7:
        fields["csat"] = min(5, max(1, round(3.5 + 1.8 * x + rng.gauss(0.0, 0.7))))
    if rng.random() < 0.3:
        fields["text"] = j.say(x)
    j.add(
        when,
        "cx.survey.nps",
        touchpoint,
        {"email": j.email()},
        fields=fields,
        attributes={
            "survey": "post_interaction",
            "surveyed_event_id": about.event_id,
            "surveyed_channel": about.channel,
        },
        stage="loyalty" if nps >= 9 else None,
        channel="survey",
    )
    if nps <= 6:
        j.later(when, lambda: _detract(j))


def _detract(j: Journey) -> None:
    j.detractor += 1.0
