"""People and their identifiers, fragmented the way channel systems see them.

Each person owns canonical identifier values (unique across the world) and each
channel writes them its own way: agents type phone numbers in national format,
tills add spaces, people capitalise their email. :func:`raw_phone` and
:func:`raw_email` produce such spellings; every one of them normalises back to
the canonical value with :func:`schemas.identifiers.normalise_identifier`.

>>> import random
>>> rng = random.Random(3)
>>> {normalise_identifier("phone", raw_phone(rng, "+14155550100")) for _ in range(20)}
{'+14155550100'}
>>> {normalise_identifier("email", raw_email(rng, "ann.lee@example.com")) for _ in range(20)}
{'ann.lee@example.com'}

Some values are deliberately *not* one person's: a family tablet several
people log in on, a store kiosk many people sign in on (see
:mod:`replay.world.sharing`), and junk that tills and phone systems type when they have
nothing better (``test@test.com``, ``0000000000``). Identity resolution must
not merge people through them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.identifiers import normalise_identifier

FIRST_NAMES: tuple[str, ...] = (
    "ann", "bob", "chen", "dara", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lea",
    "maya", "noah", "omar", "pia", "quinn", "rosa", "sven", "tara", "uma", "vik", "wen", "xena",
    "yusuf", "zoe", "amir", "bea", "carlos", "dev", "emma", "finn", "grace", "hugo", "isla",
    "jack", "lina", "mateo", "nia", "oscar",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "lee", "smith", "okafor", "garcia", "novak", "tanaka", "berg", "rossi", "khan", "patel",
    "murphy", "silva", "nguyen", "kowalski", "dubois", "jones", "brown", "muller", "haddad",
    "ito", "walsh", "reyes", "fischer", "cohen", "ali", "moreau", "santos", "kim", "olsen",
    "adeyemi",
)  # fmt: skip
EMAIL_DOMAINS: dict[str, tuple[tuple[str, float], ...]] = {
    "US": (
        ("gmail.com", 0.45), ("yahoo.com", 0.15), ("outlook.com", 0.12), ("icloud.com", 0.12),
        ("aol.com", 0.04), ("comcast.net", 0.05), ("proton.me", 0.07),
    ),
    "GB": (
        ("gmail.com", 0.4), ("hotmail.co.uk", 0.2), ("btinternet.com", 0.12),
        ("outlook.com", 0.13), ("yahoo.co.uk", 0.15),
    ),
}  # fmt: skip
WORK_DOMAINS: tuple[str, ...] = ("acme-corp.com", "northwind.io", "globex.co", "initech.net")
US_AREA_CODES: tuple[int, ...] = (
    206, 212, 213, 303, 305, 310, 312, 404, 415, 503, 512, 617, 646, 702, 718, 773,
)  # fmt: skip

# Junk values systems type when they have nothing better: (type, raw value).
JUNK_IDENTIFIERS: tuple[tuple[str, str], ...] = (
    ("email", "test@test.com"),
    ("email", "noemail@noemail.com"),
    ("phone", "0000000000"),
    ("phone", "(555) 555-5555"),
)


class Registry:
    """Normalised identifier values already given out, so every person's are their own."""

    def __init__(self) -> None:
        self._used: set[tuple[str, str]] = {
            (t, normalise_identifier(t, v)) for t, v in JUNK_IDENTIFIERS
        }

    def claim(self, id_type: str, value: str) -> bool:
        """Take ``value`` if nobody has it yet; False if it is taken."""
        key = (id_type, normalise_identifier(id_type, value))
        if key in self._used:
            return False
        self._used.add(key)
        return True

    def unique(self, id_type: str, rng: random.Random, draw: Callable[[random.Random], str]) -> str:
        """Draw values until one is free."""
        while True:
            value = draw(rng)
            if self.claim(id_type, value):
                return value


@dataclass(frozen=True, slots=True)
class SharedDevice:
    """A device several people use: a family tablet, or a kiosk in a store.

    ``use`` is the chance that a session it suits (an app session on the tablet,
    a store visit at the kiosk) happens on it; a kiosk has its store's
    ``touchpoint`` and ``country``.
    """

    group_id: str
    device_id: str
    use: float
    touchpoint: str | None = None
    country: str | None = None


@dataclass(slots=True)
class Identity:
    """The canonical identifiers one person owns, plus the shared ones they use."""

    country: str
    first: str
    last: str
    emails: list[str]
    phone: str
    crm_id: str
    loyalty_id: str | None
    handle: str | None
    # (from event time in ms, device id, platform); a person may switch phones.
    devices: list[tuple[int, str, str]] = field(default_factory=list)
    household: SharedDevice | None = None
    kiosk: SharedDevice | None = None
    junk: list[tuple[str, str]] = field(default_factory=list)

    def device_at(self, t_ms: int) -> tuple[str, str]:
        """Return the (device id, platform) the person uses at ``t_ms``."""
        current = self.devices[0]
        for dev in self.devices:
            if dev[0] <= t_ms:
                current = dev
        return current[1], current[2]


def _email_local(rng: random.Random, first: str, last: str) -> str:
    style = rng.randrange(5)
    if style == 0:
        return f"{first}.{last}"
    if style == 1:
        return f"{first}{last}{rng.randrange(1, 100)}"
    if style == 2:
        return f"{first[0]}{last}{rng.randrange(60, 100)}"
    if style == 3:
        return f"{first}_{last}{rng.randrange(1, 1000)}"
    return f"{last}.{first}{rng.randrange(1, 10)}"


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _us_phone(rng: random.Random) -> str:
    area, exchange = rng.choice(US_AREA_CODES), rng.randrange(201, 990)
    return f"+1{area}{exchange}{rng.randrange(10_000):04d}"


def _uk_mobile(rng: random.Random) -> str:
    return f"+447{rng.randrange(10**9):09d}"


def _crm_id(rng: random.Random) -> str:
    return f"C{rng.randrange(10**7, 10**8)}"


def _loyalty_id(rng: random.Random) -> str:
    return f"LY{rng.randrange(10**9, 10**10)}"


def make_identity(
    rng: random.Random,
    registry: Registry,
    start_ms: int,
    end_ms: int,
    uses_app: bool,
    country: str | None = None,
) -> Identity:
    """Make a new person with fresh, unique identifiers (in ``country`` if given, else US or GB)."""
    country = country or ("US" if rng.random() < 0.8 else "GB")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domains = EMAIL_DOMAINS[country]

    def personal(r: random.Random) -> str:
        return f"{_email_local(r, first, last)}@{_weighted(r, domains)}"

    def work(r: random.Random) -> str:
        return f"{first}.{last}{r.randrange(100)}@{r.choice(WORK_DOMAINS)}"

    def handle(r: random.Random) -> str:
        return make_handle(r, first, last)

    emails = [registry.unique("email", rng, personal)]
    if rng.random() < 0.15:  # a work address, used for some emails and chats
        emails.append(registry.unique("email", rng, work))
    phone = registry.unique("phone", rng, _us_phone if country == "US" else _uk_mobile)
    identity = Identity(
        country=country,
        first=first,
        last=last,
        emails=emails,
        phone=phone,
        crm_id=registry.unique("crm_id", rng, _crm_id),
        loyalty_id=registry.unique("loyalty_id", rng, _loyalty_id) if rng.random() < 0.55 else None,
        handle=registry.unique("social_handle", rng, handle) if rng.random() < 0.4 else None,
    )
    if uses_app:
        identity.devices.append((start_ms, *new_device(rng, registry)))
        if rng.random() < 0.15:  # a new phone some time in the horizon
            identity.devices.append((rng.randrange(start_ms, end_ms), *new_device(rng, registry)))
    return identity


def make_handle(rng: random.Random, first: str, last: str) -> str:
    """Make a social handle as the person styles it (normalisation lower-cases it)."""
    style = rng.randrange(3)
    if style == 0:
        return f"{first.title()}{last.title()}{rng.randrange(100)}"
    if style == 1:
        return f"the_{first}_{rng.randrange(1000)}"
    return f"{first}{last[:3]}_{rng.randrange(10, 100)}"


def _ios_vendor_id(rng: random.Random) -> str:
    return (
        f"{rng.getrandbits(32):08X}-{rng.getrandbits(16):04X}-{rng.getrandbits(16):04X}-"
        f"{rng.getrandbits(16):04X}-{rng.getrandbits(48):012X}"
    )


def _android_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def new_device(rng: random.Random, registry: Registry) -> tuple[str, str]:
    """Return a fresh (device id, platform): an iOS vendor id or an Android id."""
    if rng.random() < 0.55:
        return registry.unique("device_id", rng, _ios_vendor_id), "ios"
    return registry.unique("device_id", rng, _android_id), "android"


def new_cookie(rng: random.Random, registry: Registry, t_ms: int) -> str:
    """Return a fresh analytics cookie, stamped (like GA's) with its creation second."""
    return registry.unique(
        "cookie_id", rng, (lambda r: f"GA1.2.{r.randrange(10**8, 10**10)}.{t_ms // 1000}")
    )


def raw_email(rng: random.Random, email: str) -> str:
    """``email`` as a person or a form might have typed it."""
    r = rng.random()
    if r < 0.88:
        return email
    if r < 0.94:
        local, domain = email.split("@")
        return f"{local.title()}@{domain.title()}"
    if r < 0.97:
        return email.upper()
    return f" {email} "


def raw_phone(rng: random.Random, e164: str) -> str:
    """Return ``e164`` as a phone system or an agent might have written it."""
    if e164.startswith("+44"):
        national = e164[3:]
        style = rng.randrange(3)
        if style == 0:
            return e164
        prefix = "+44" if style == 1 else "0044"
        return f"{prefix} {national[:4]} {national[4:]}"
    digits = e164[2:]
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    styles = (
        e164,
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        digits,
        f"+1 {area} {exchange} {line}",
    )
    return styles[rng.randrange(len(styles))]


def raw_handle(rng: random.Random, handle: str) -> str:
    """Return ``handle`` with or without its ``@``, as the listening tool reports it."""
    return f"@{handle}" if rng.random() < 0.7 else handle.lower()
