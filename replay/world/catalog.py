"""The fixed vocabulary of the synthetic world: touchpoints, stores, products, sentences.

Touchpoint quality is the hidden effect a touchpoint has on every experience
that passes through it; the generator never writes it into an event, only into
the truth file, so a flow has to discover it (for example from touchpoint NPS).

>>> TOUCHPOINTS["call_center.billing"].channel
'call_center'
>>> from schemas.vocabulary import CHANNELS
>>> sorted(set(CHANNELS) - {tp.channel for tp in TOUCHPOINTS.values()})  # a survey is about one
['survey']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """Where an interaction happens, and how much better or worse it makes it."""

    channel: str
    quality: float


@dataclass(frozen=True, slots=True)
class Store:
    """A physical store: its touchpoint, name, country, and the UTC offset its tills stamp."""

    touchpoint: str
    name: str
    country: str
    utc_offset: str


def _tps(channel: str, **qualities: float) -> dict[str, Touchpoint]:
    return {
        f"{channel}.{name.replace('_', '-')}": Touchpoint(channel, q)
        for name, q in qualities.items()
    }


# Quality effects are on the same scale as a person's experience (about -1..1);
# billing calls and the support bot are the known pain points of this retailer.
TOUCHPOINTS: dict[str, Touchpoint] = {
    **_tps("web", home=0.05, search=-0.1, product=0.1, checkout=-0.05, account=0.0),
    **_tps("app", home=0.2, browse=0.15, checkout=0.1),
    **_tps(
        "call_center", billing=-0.45, tech_support=-0.2, orders=0.0, sales=0.2, cancellations=-0.3
    ),
    **_tps("email", newsletter=0.1, order_updates=0.15, support=-0.15),
    **_tps("chat", support_bot=-0.4, live_agent=0.2),
    **_tps("social", twitter=-0.15, facebook=-0.05, instagram=0.1),
    **_tps(
        "store",
        sf_union_square=0.25,
        nyc_soho=0.1,
        chicago_michigan_ave=-0.05,
        austin_domain=0.2,
        london_oxford_st=0.15,
        manchester_arndale=-0.3,
    ),
    **_tps("service_desk", billing=-0.35, returns=-0.15, delivery=-0.25, technical=0.05),
}

STORES: tuple[Store, ...] = (
    Store("store.sf-union-square", "the Union Square store", "US", "-08:00"),
    Store("store.nyc-soho", "the SoHo store", "US", "-05:00"),
    Store("store.chicago-michigan-ave", "the Michigan Avenue store", "US", "-06:00"),
    Store("store.austin-domain", "the Domain store in Austin", "US", "-06:00"),
    Store("store.london-oxford-st", "the Oxford Street store", "GB", "+00:00"),
    Store("store.manchester-arndale", "the Arndale store", "GB", "+00:00"),
)

# CloudEvents ``source`` and event-id prefix of each channel's system of record.
SOURCES: dict[str, tuple[str, str]] = {
    "web": ("/web/storefront", "w"),
    "app": ("/app/mobile", "a"),
    "call_center": ("/cti/contact-center", "cti"),
    "email": ("/esp/messaging", "esp"),
    "chat": ("/chat/widget", "chat"),
    "social": ("/social/listening", "soc"),
    "store": ("/pos/tills", "pos"),
    "survey": ("/survey/feedback", "svy"),
    "service_desk": ("/crm/service-desk", "sd"),
}

PRODUCTS: tuple[tuple[str, str, float], ...] = (
    ("aurora-headphones", "Aurora wireless headphones", 149.0),
    ("nimbus-speaker", "Nimbus smart speaker", 89.0),
    ("orbit-band", "Orbit fitness band", 59.0),
    ("vega-stick", "Vega 4K streaming stick", 49.0),
    ("atlas-backpack", "Atlas laptop backpack", 79.0),
    ("pulse-case", "Pulse phone case", 25.0),
    ("lumen-lamp", "Lumen desk lamp", 39.0),
    ("terra-bottle", "Terra water bottle", 19.0),
    ("zephyr-fan", "Zephyr tower fan", 119.0),
    ("halo-doorbell", "Halo video doorbell", 169.0),
    ("flux-charger", "Flux fast charger", 29.0),
    ("echo-earbuds", "Echo sport earbuds", 99.0),
    ("summit-jacket", "Summit rain jacket", 139.0),
    ("drift-kettle", "Drift electric kettle", 45.0),
    ("prism-monitor", "Prism 27-inch monitor", 289.0),
    ("nova-tablet", "Nova 10 tablet", 249.0),
)

AGENTS: tuple[str, ...] = ("Sam", "Priya", "Marco", "Aisha", "Tom", "Lena", "Jorge", "Mei", "Kofi")

# category -> (service-desk touchpoint, priority weights P1/P2/P3)
CASE_CATEGORIES: dict[str, tuple[str, tuple[float, float, float]]] = {
    "billing": ("service_desk.billing", (0.05, 0.55, 0.40)),
    "returns": ("service_desk.returns", (0.02, 0.18, 0.80)),
    "delivery": ("service_desk.delivery", (0.05, 0.35, 0.60)),
    "technical": ("service_desk.technical", (0.20, 0.40, 0.40)),
}
SLA_HOURS: dict[str, int] = {"P1": 4, "P2": 24, "P3": 72}

# Share of a day's sessions that start in each UTC hour (lunch and evening peaks).
HOUR_WEIGHTS: tuple[float, ...] = (
    1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 5, 4.5, 4, 3.5, 3.5, 4, 5, 6, 6.5, 5.5, 4, 2,
)  # fmt: skip

POSITIVE: tuple[str, ...] = (
    "Thanks {agent}, that was quick and easy!",
    "Great service today, my {product} issue was sorted in minutes.",
    "Love my new {product}, it arrived a day early.",
    "The staff at {store} were friendly and really helpful.",
    "Checkout was smooth and the app is so much faster now.",
    "Refund came through already, thank you for being so quick.",
    "Really impressed with how {agent} handled my question.",
    "Five stars, the {product} is exactly as described.",
    "Easy return at {store}, took less than five minutes.",
    "Thank you! The replacement {product} works perfectly.",
    "Super helpful chat, got my answer straight away.",
    "Delivery was fast and the packaging was great.",
    "Brilliant support, {agent} went above and beyond.",
    "So happy with the {product}, best purchase this year.",
    "Quick fix, thanks for sorting out my account so fast.",
    "The new loyalty rewards are excellent, thanks!",
    "Order {order} arrived on time and in perfect condition.",
    "Appreciate the follow-up call, problem solved.",
    "Everything worked first time, great experience.",
    "Loving the {product}, would definitely recommend it.",
    "The team at {store} found the size I needed, fantastic.",
    "Smooth process from start to finish, well done.",
    "Thanks for the discount code, very kind of you.",
    "Helpful, polite and fast. Cannot ask for more.",
    "Glad I called, {agent} explained everything clearly.",
)
NEUTRAL: tuple[str, ...] = (
    "Hi, can you tell me when order {order} will ship?",
    "What is the warranty period on the {product}?",
    "I would like to update my delivery address.",
    "Do you have the {product} in stock at {store}?",
    "How do I change my password on the app?",
    "Can I add a gift note to order {order}?",
    "Please send me a copy of the invoice for order {order}.",
    "Is there a student discount on the {product}?",
    "I am checking the opening hours for {store} this weekend.",
    "Can I pick up my order at {store} instead?",
    "What payment methods do you accept?",
    "I need to change the email on my account.",
    "Does the {product} come with a charger?",
    "Just confirming my return was received.",
    "Could you explain the loyalty points on my statement?",
    "When does the sale end?",
    "I want to know if the {product} works with my phone.",
    "Please call me back about order {order}.",
    "Is it possible to split the payment?",
    "Where can I find the manual for the {product}?",
)
NEGATIVE: tuple[str, ...] = (
    "Still waiting for my refund after {days} days, this is terrible.",
    "I have called three times and nobody helps. Very disappointed.",
    "The app keeps crashing at checkout, so frustrating.",
    "My {product} arrived broken and nobody is answering.",
    "Order {order} is {days} days late and tracking has not moved.",
    "Worst customer service I have ever had.",
    "I was on hold for {minutes} minutes and then got cut off.",
    "You charged me twice for order {order}. Fix this now.",
    "The {product} stopped working after a week, what a waste of money.",
    "Nobody at {store} could help me, staff seemed annoyed.",
    "Your chatbot is useless, it keeps sending me in circles.",
    "I am cancelling my account if this is not resolved today.",
    "The wrong {product} was delivered and the return label does not work.",
    "Promised a call back {days} days ago, still nothing.",
    "Why is it so hard to get a simple answer from you?",
    "Really unhappy, the {product} is nothing like the photos.",
    "My complaint has been ignored for over a week.",
    "The website kept logging me out and my basket was emptied.",
    "Delivery driver left my parcel in the rain, {product} ruined.",
    "I have explained the same problem to four different agents.",
    "Not impressed at all, the quality has gone downhill.",
    "Still no update on my case, this is unacceptable.",
    "Charged a late fee I never agreed to. Very annoyed.",
    "The discount code failed at checkout and support did not care.",
    "Third faulty {product} in a row. I am done.",
    "Rude staff at {store} today, will not be back.",
    "Refund was rejected with no explanation, furious.",
    "The app update deleted my saved cards, awful.",
    "Waited in the queue at {store} for {minutes} minutes, only one till open.",
    "I feel like you do not value loyal customers anymore.",
)
LEAVING: tuple[str, ...] = (
    "How do I close my account?",
    "I am thinking of switching to another store, what is your cancellation policy?",
    "Can you tell me how to cancel my membership?",
    "Please remove my saved card, I do not plan to order again.",
    "What happens to my loyalty points if I close my account?",
    "I want to cancel, this has been a bad few weeks.",
    "Honestly considering taking my business elsewhere.",
)
CASE_TEXT: dict[str, tuple[str, ...]] = {
    "billing": (
        "Customer reports a double charge on order {order}.",
        "Customer disputes a late fee on the latest statement.",
        "Refund for order {order} not received after {days} days.",
    ),
    "returns": (
        "Return label for order {order} is not working.",
        "Customer wants to return a faulty {product}.",
        "Wrong {product} delivered, customer requests an exchange.",
    ),
    "delivery": (
        "Order {order} is {days} days late, tracking not updated.",
        "Parcel marked as delivered but not received.",
        "The {product} arrived damaged in transit.",
    ),
    "technical": (
        "App crashes at checkout on the customer's phone.",
        "The {product} will not pair with the customer's device.",
        "Customer cannot log in after a password reset.",
    ),
}
# Social posts get a tag line on top of a sentence, the way people write there.
SOCIAL_TAGS: dict[str, tuple[str, ...]] = {
    "positive": (" #happycustomer", " 🙌", " Thanks!", ""),
    "neutral": (" anyone know?", "", " #help"),
    "negative": (" #fail", " 😡", " @support", " Not happy."),
}
