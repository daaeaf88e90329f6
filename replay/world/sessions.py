"""What a person does in one session on each channel.

Each function appends drafts to a :class:`~replay.world.journey.Journey` and
lets it feel the experience. The identifiers are what that channel's system
really knows: a cookie before login, a phone number on a call, a loyalty card
at the till, a handle on social.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from replay.world.catalog import PRODUCTS, STORES
from replay.world.drafts import HOUR_MS, MINUTE_MS, SECOND_MS, Draft
from replay.world.identity import new_cookie
from replay.world.service import contact, maybe_survey, problem

if TYPE_CHECKING:
    from replay.world.journey import Journey

_STORE_OFFSETS = {s.touchpoint: s.utc_offset for s in STORES}


def web(j: Journey, t: int) -> None:
    """Simulate a browsing session: pages, perhaps a login or sign-up, perhaps an order."""
    rng = j.rng
    if j.cookie is None or rng.random() < 0.06:  # cleared cookies or a new browser
        j.cookie = new_cookie(rng, j.clock.registry, t)
    ids = {"cookie_id": j.cookie}
    session = f"s-{rng.getrandbits(40):010x}"
    tp = "web.home"
    for k in range(1 + min(int(rng.expovariate(0.7)), 6)):
        tp = rng.choice(("web.home", "web.search", "web.product", "web.product"))
        slug = rng.choice(PRODUCTS)[0]
        page = {
            "web.home": "/",
            "web.search": f"/search?q={slug.split('-')[1]}",
            "web.product": f"/products/{slug}",
        }[tp]
        stage = ("awareness" if not j.registered else "consideration") if k == 0 else None
        j.add(
            t,
            "cx.web.page.viewed",
            tp,
            dict(ids),
            attributes={"session_id": session, "page": page},
            stage=stage,
        )
        t += rng.randrange(8, 150) * SECOND_MS
        if k == 0 and j.registered and rng.random() < 0.6:
            ids = {"cookie_id": j.cookie, "email": j.email()}
            j.add(t, "cx.web.login", "web.account", dict(ids), attributes={"session_id": session})
            t += rng.randrange(2, 20) * SECOND_MS
        elif k == 0 and not j.registered and j.sessions > 0 and rng.random() < 0.3:
            ids = {"cookie_id": j.cookie, "email": j.email()}
            j.registered = True
            signup_ids = {**ids, "crm_id": j.who.crm_id}
            j.add(t, "cx.web.account.created", "web.account", signup_ids, stage="consideration")
            j.set_consent(t + rng.randrange(5, 60) * SECOND_MS, granted=rng.random() < 0.6)
    x = j.feel(t, tp)
    if "email" not in ids or rng.random() >= 0.18 + 0.1 * x:
        return
    xc = j.feel(t, "web.checkout")
    if xc < -0.6 and rng.random() < 0.5:
        error = rng.choice(("PAYMENT_DECLINED", "TIMEOUT", "HTTP_500"))
        j.add(
            t,
            "cx.web.checkout.failed",
            "web.checkout",
            dict(ids),
            attributes={"session_id": session, "error": error},
        )
        if rng.random() < 0.5:
            problem(
                j,
                t + rng.randrange(10 * MINUTE_MS, 6 * HOUR_MS),
                rng.choice(("technical", "billing")),
            )
        return
    order(j, t, "web.checkout", {**ids, "crm_id": j.who.crm_id}, xc)


def app(j: Journey, t: int, device: str | None = None) -> None:
    """Simulate an app session; a household member may pick up the family tablet."""
    rng = j.rng
    if not j.latent.uses_app:
        web(j, t)
        return
    own, platform = j.who.device_at(t)
    tablet = j.who.household
    if device is None:
        device = tablet.device_id if tablet is not None and rng.random() < tablet.use else own
    source = f"/app/{platform}"
    version = rng.choice(("5.2.1", "5.2.1", "5.3.0"))
    login = {"device_id": device, "email": j.email()} if j.registered else {"device_id": device}
    j.add(
        t,
        "cx.app.session.started",
        "app.home",
        login,
        attributes={"app_version": version},
        source=source,
    )
    tp = "app.home"
    for _ in range(rng.randrange(4)):
        t += rng.randrange(5, 90) * SECOND_MS
        tp = rng.choice(("app.home", "app.browse", "app.browse"))
        j.add(
            t,
            "cx.app.screen.viewed",
            tp,
            {"device_id": device},
            attributes={"screen": tp.split(".")[1]},
            source=source,
        )
    x = j.feel(t, tp)
    if x < -0.6 and rng.random() < 0.5:
        j.add(
            t,
            "cx.app.crashed",
            tp,
            {"device_id": device},
            attributes={"app_version": version},
            source=source,
        )
        if rng.random() < 0.3:
            problem(j, t + rng.randrange(10 * MINUTE_MS, 4 * HOUR_MS), "technical")
    elif j.registered and rng.random() < 0.12 + 0.05 * x:
        ids = {"device_id": device, "crm_id": j.who.crm_id}
        order(j, t + 30 * SECOND_MS, "app.checkout", ids, j.feel(t, "app.checkout"), source=source)


def email(j: Journey, t: int) -> None:
    """Simulate a marketing email opened (if they said yes to them) or a support email written."""
    rng = j.rng
    if not j.registered:
        return
    if not j.consent:  # no newsletters to open: now and then a support email
        if rng.random() < 0.3:
            contact(j, t, "email", None)
        return
    if rng.random() < 0.05:
        contact(j, t, "email", None)
        return
    campaign = rng.choice(("spring_sale", "new_arrivals", "loyalty_rewards", "weekly_picks"))
    ids = {"email": j.email()}
    j.add(t, "cx.email.opened", "email.newsletter", ids, attributes={"campaign": campaign})
    if rng.random() < 0.25 + 0.2 * j.latent.experience:
        link = f"/products/{rng.choice(PRODUCTS)[0]}"
        t += rng.randrange(1, 10) * MINUTE_MS
        j.add(
            t,
            "cx.email.clicked",
            "email.newsletter",
            dict(ids),
            attributes={"campaign": campaign, "link": link},
            stage="consideration",
        )


def store(j: Journey, t: int, receipt: str | None = None) -> None:
    """Simulate a till transaction: a loyalty card, or an email typed in for the e-receipt.

    A kiosk user may order at the store's kiosk instead.
    """
    rng = j.rng
    if receipt is None and j.who.kiosk is not None and rng.random() < j.who.kiosk.use:
        kiosk(j, t)
        return
    tp = (
        j.store
        if rng.random() < 0.8
        else rng.choice([s.touchpoint for s in STORES if s.country == j.who.country])
    )
    ids: dict[str, str] = {}
    if j.who.loyalty_id is not None:
        ids["loyalty_id"] = j.who.loyalty_id
    if receipt is None:
        junk = [v for kind, v in j.who.junk if kind == "email"]
        receipt = junk[0] if junk and rng.random() < 0.25 else None
    if receipt is not None:
        ids.update({"crm_id": j.who.crm_id, "email": receipt})  # looked up, then junk typed
    elif not ids or rng.random() < 0.4:
        ids["crm_id"] = j.who.crm_id
    x = j.feel(t, tp)
    tz = _STORE_OFFSETS[tp]
    if rng.random() < 0.85:
        order(j, t, tp, ids, x, tz=tz)
    else:
        d = j.add(t, "cx.store.return.processed", tp, ids, attributes={"sku": j.product[0]}, tz=tz)
        maybe_survey(j, t, tp, x, d, 0.15)
    if x < -0.5 and rng.random() < 0.25:
        problem(j, t + rng.randrange(HOUR_MS, 20 * HOUR_MS), "returns")


def kiosk(j: Journey, t: int) -> None:
    """Simulate an order at a store's self-service kiosk.

    It carries the kiosk's device id and the person's own crm_id (they sign in with
    their member number).
    """
    shared = j.who.kiosk
    if shared is None:
        return
    tp = shared.touchpoint or j.store
    ids = {"device_id": shared.device_id, "crm_id": j.who.crm_id}
    order(j, t, tp, ids, j.feel(t, tp), tz=_STORE_OFFSETS[tp], source="/pos/kiosk")


def order(
    j: Journey,
    t: int,
    tp: str,
    ids: dict[str, str],
    x: float,
    tz: str = "Z",
    source: str | None = None,
) -> Draft:
    """Simulate an order, its confirmation email, and (online) a delivery that may go wrong."""
    rng = j.rng
    j.product = product = rng.choice(PRODUCTS)
    quantity = 1 if rng.random() < 0.8 else 2
    gbp = j.who.country == "GB"
    amount = round(product[2] * quantity * (0.8 if gbp else 1.0) * rng.uniform(0.85, 1.0), 2)
    j.order_id = order_id = j.order_number()
    d = j.add(
        t,
        "cx.order.placed",
        tp,
        ids,
        fields={"amount": amount, "currency": "GBP" if gbp else "USD"},
        attributes={"order_id": order_id, "items": [{"sku": product[0], "quantity": quantity}]},
        stage="loyalty" if j.orders >= 2 else "purchase",
        tz=tz,
        source=source,
    )
    j.orders += 1
    if d.channel != "store":
        if rng.random() < 0.45:
            opened = t + rng.randrange(1, 120) * MINUTE_MS
            j.add(
                opened,
                "cx.email.opened",
                "email.order-updates",
                {"email": j.email()},
                attributes={"template": "order_confirmation", "order_id": order_id},
            )
        arrives = t + rng.randrange(40 * HOUR_MS, 140 * HOUR_MS)
        j.later(arrives, lambda: _delivered(j, arrives))
    maybe_survey(j, t, tp, x, d, 0.12)
    return d


def _delivered(j: Journey, t: int) -> None:
    x = j.feel(t, "service_desk.delivery")
    if x < -0.5 and j.rng.random() < 0.6:
        problem(
            j, t + j.rng.randrange(HOUR_MS, 30 * HOUR_MS), j.rng.choice(("delivery", "returns"))
        )


def first_visit(j: Journey, t: int) -> None:
    """Simulate the first day.

    The family tablet, the store kiosk, junk typed by a till or phone system, a
    first browse.
    """
    if j.who.household is not None:
        app(j, t, j.who.household.device_id)
    if j.who.kiosk is not None:
        t += 30 * MINUTE_MS
        kiosk(j, t)
    for kind, value in j.who.junk:
        t += 20 * MINUTE_MS
        if kind == "email":
            store(j, t, receipt=value)
        else:
            ids = {"phone": value, "crm_id": j.who.crm_id}
            j.add(
                t,
                "cx.call_center.call.completed",
                "call_center.orders",
                ids,
                attributes={"queue": "orders"},
                tz="+00:00",
            )
    if not j.latent.existing:
        web(j, t + 5 * MINUTE_MS)


def _support(channel: str) -> Callable[[Journey, int], None]:
    def session(j: Journey, t: int) -> None:
        contact(j, t, channel, None)

    return session


SESSIONS: dict[str, Callable[[Journey, int], None]] = {
    "web": web,
    "app": app,
    "email": email,
    "store": store,
    "call_center": _support("call_center"),
    "chat": _support("chat"),
    "social": _support("social"),
}
