"""The customer profile as a flat hash, the same in Redis and in memory.

A profile is one hash of string fields plus a small sorted set of recent
interactions. Events change it through a :class:`ProfileDelta`; the rules are
implemented twice, here (for the in-memory store) and in ``lua/profile.lua``
(for Redis), and the store contract tests hold the two to the same results.

Fields: ``v`` version (events applied), ``count`` and ``n:<channel>`` counters,
``first`` (ms), ``ltv_c`` lifetime value in cents, ``orders``; groups whose value
is the one of the latest event by event time, each with a ``<name>@`` stamp:
``last`` (``last_ms``, ``last_event``, ``last_channel``, ``last_touchpoint``),
``nps``, ``csat``, ``sent``, ``stage``, ``consent:<purpose>``, ``case:<id>``;
``emit`` is the event time of the last publication.

Consent is kept twice. ``consent:<purpose>`` (with its stamp) is the profile
step's, what a published profile shows. ``rconsent:<purpose>`` (with its
stamp) is resolve's: each event's consent changes are folded in by the resolve
call that resolves it (:func:`record_consent`), in input order, before the next
request of the batch is resolved, so a later event of the customer sees them
whatever the profile step's progress (it runs later in the flow, on other
workers). ``optout`` lists the withdrawn purposes with the event time of each
withdrawal, ``"<purpose>=<ms>"`` lines sorted by purpose (byte order): per
purpose the latest by stamp of both sets wins (:func:`withdrawn_field`; the
profile step's entries are ones resolve recorded first, so they change nothing,
except in profiles written before resolve recorded consent). It is rewritten
whenever a consent field may change (resolve, a delta with consent, a merge):
resolve reads this one field to tell the decide step about opt-outs the journey
state of the customer id cannot know (given under a merged-away id). Neither
set is ever dropped but by erase; merges pool both, latest by stamp. A hash
holding only resolve's fields is no profile yet (no ``v``: no snapshot).

Next to the hash each store keeps the ids of the events applied to the profile
with their event time, for ``ProfileRules.idempotence_window_ms`` before the
customer's latest event (:func:`applied_horizon`): a replayed or retried event
changes nothing the second time. Merges pool them; erase drops them. That window
alone fails a restore after a backlog: an event more than the window before its
customer's later events is forgotten as soon as those are applied, so a flow
that re-processes the backlog from its start (killed before its first snapshot)
would count it twice. So each store also marks every applied event, with the
customer it was applied to, for ``ProfileRules.outcome_retention_ms`` of
*wall-clock* time (like recorded resolve outcomes, :mod:`state.outcomes`): an
event is applied again only when it is neither in its customer's window nor
marked, applied to it or to a customer merged into it since (an erased
customer's marks name nobody live, so a re-created customer counts its events
afresh). A window of 0 turns both off.

A stamp is ``"<15-digit ms>|<event id>"``: comparing stamps as strings orders
by event time, then by event id, so the order of arrival never matters.

>>> h: dict[str, str] = {}
>>> d = ProfileDelta("c1", "e1", 1_000, "web", "web.home", amount_cents=1999, nps="9")
>>> apply_delta(h, d, emit_interval_ms=60_000)
True
>>> h["count"], h["ltv_c"], h["nps"], h["last_channel"]
('1', '1999', '9', 'web')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from schemas.envelope import InteractionEvent
from schemas.vocabulary import CASE_FINISHED, CASE_OPENED, action_of

WINDOW_FIELD = re.compile(r"^sent_[0-9.]+h$")
# case action -> "1" open / "0" closed
_CASE_ACTIONS = {CASE_OPENED: "1", **dict.fromkeys(CASE_FINISHED, "0")}
_COUNTERS = ("v", "count", "ltv_c", "orders")
OPTOUT = "optout"
#: The fields of the ``last`` group (one stamp for all four).
LAST_FIELDS = ("last_ms", "last_event", "last_channel", "last_touchpoint")
_CONSENT = "consent:"
#: resolve's record of consent changes (:func:`record_consent`)
RESOLVED_CONSENT = "rconsent:"


@dataclass(frozen=True, slots=True)
class ProfileRules:
    """How profiles are kept.

    The publication rate limit (event time), the recent-list size, how long applied
    event ids are remembered (idempotence window), and how long resolve outcomes and
    applied-event marks are kept (wall-clock retention).
    """

    emit_interval_ms: int = 60_000
    recent_limit: int = 10
    # False: keep profiles without publishing them (offline runs read them at the end)
    publish: bool = True
    # How much event time (before the customer's latest event) the ids of applied
    # events are remembered, so a re-applied event changes nothing; 0: not at all.
    # The default is the dedupe step's TTL: a duplicate older than both passes both.
    idempotence_window_ms: int = 7 * 86_400_000
    # Wall-clock ms a resolve outcome (state/outcomes.py) and an applied-event mark
    # are kept after they were recorded, so a restore within it re-processes every
    # event with its first decisions however much event time it spans; 0: not
    # recorded (the profile step then relies on the window alone).
    outcome_retention_ms: int = 3_600_000


def stamp(ms: int, event_id: str) -> str:
    """Return the ordering key of a value: event time first, then event id."""
    return f"{ms:015d}|{event_id}"


@dataclass(frozen=True, slots=True)
class ProfileDelta:
    """What one event changes in its customer's profile (values already as strings)."""

    customer_id: str
    event_id: str
    ms: int
    channel: str
    touchpoint: str
    amount_cents: int = 0
    order: bool = False
    nps: str | None = None
    csat: str | None = None
    sentiment: str | None = None
    stage: str | None = None
    consent: dict[str, str] = field(default_factory=dict)
    case: tuple[str, str] | None = None  # (case id, "1" open / "0" closed)
    recent: str = ""  # JSON of the recent-interaction entry
    latest: dict[str, str] = field(default_factory=dict)  # more latest-wins fields

    def latest_fields(self) -> list[tuple[str, str]]:
        """Return the single-field latest-wins groups this delta sets, in the order they apply."""
        fields = [
            (name, value)
            for name, value in (
                ("nps", self.nps),
                ("csat", self.csat),
                ("sent", self.sentiment),
                ("stage", self.stage),
            )
            if value is not None
        ]
        fields += [("consent:" + p, g) for p, g in sorted(self.consent.items())]
        if self.case is not None:
            fields.append(("case:" + self.case[0], self.case[1]))
        fields += sorted(self.latest.items())
        return fields

    def to_args(self) -> list[str | int]:
        """Return the delta as the Lua script's plain arguments (see ``lua/profile.lua``).

        Customer, event id, stamp, ms, channel, touchpoint, amount in cents, order
        (0/1), recent entry, then n and n name/value pairs (:meth:`latest_fields`).

        >>> ProfileDelta("c1", "e1", 5, "web", "web.home", nps="9").to_args()
        ['c1', 'e1', '000000000000005|e1', 5, 'web', 'web.home', 0, 0, '', 1, 'nps', '9']
        """
        latest = self.latest_fields()
        args: list[str | int] = [
            self.customer_id,
            self.event_id,
            stamp(self.ms, self.event_id),
            self.ms,
            self.channel,
            self.touchpoint,
            self.amount_cents,
            1 if self.order else 0,
            self.recent,
            len(latest),
        ]
        for name, value in latest:
            args += (name, value)
        return args


#: The value of a latest-wins field before it is stored (see :func:`figure_text`).
Figure = float | int | str


def figure_text(value: Figure) -> str:
    """How a latest-wins field is stored: a float to 4 places, an int or text as is.

    >>> figure_text(-0.123456), figure_text(3), figure_text("seg-2")
    ('-0.1235', '3', 'seg-2')
    """
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def delta_for(
    customer_id: str,
    event: InteractionEvent,
    *,
    stage: str | None = None,
    sentiment: float | None = None,
    latest: Mapping[str, Figure] | None = None,
) -> ProfileDelta:
    """Return the profile change of one resolved event.

    ``stage`` and ``sentiment`` are what the journey step made of the event (they
    default to the event's own hints); ``latest`` holds more latest-wins fields,
    stored as :func:`figure_text` writes them.
    """
    data = event.data
    stage = stage if stage is not None else data.journey_stage
    sentiment = sentiment if sentiment is not None else data.sentiment
    ms = event.epoch_ms
    action = action_of(event.type)
    case = None
    if data.case_id is not None and action in _CASE_ACTIONS:
        case = (data.case_id, _CASE_ACTIONS[action])
    recent = orjson.dumps(
        {
            "time": event.time.isoformat(),
            "id": event.id,
            "type": event.type,
            "channel": data.channel,
            "touchpoint": data.touchpoint,
            **({"stage": stage} if stage is not None else {}),
        }
    ).decode()
    return ProfileDelta(
        customer_id=customer_id,
        event_id=event.id,
        ms=ms,
        channel=data.channel,
        touchpoint=data.touchpoint,
        amount_cents=round(data.amount * 100) if data.amount is not None else 0,
        order=action == "order.placed",
        nps=str(data.nps) if data.nps is not None else None,
        csat=str(data.csat) if data.csat is not None else None,
        sentiment=repr(float(sentiment)) if sentiment is not None else None,
        stage=stage,
        consent={k: "1" if v else "0" for k, v in (data.consent or {}).items()},
        case=case,
        recent=recent,
        latest={name: figure_text(value) for name, value in (latest or {}).items()},
    )


def _set_latest(h: dict[str, str], name: str, st: str, values: Mapping[str, str]) -> None:
    current = h.get(name + "@")
    if current is None or st > current:
        h[name + "@"] = st
        h.update(values)


def _incr(h: dict[str, str], name: str, by: int) -> None:
    h[name] = str(int(h.get(name, "0")) + by)


def fold_delta(h: dict[str, str], d: ProfileDelta) -> None:
    """Fold the fields of ``d`` into the hash ``h`` (publication aside: see :func:`publish_due`)."""
    st = stamp(d.ms, d.event_id)
    _incr(h, "v", 1)
    _incr(h, "count", 1)
    _incr(h, "n:" + d.channel, 1)
    _incr(h, "ltv_c", d.amount_cents)
    _incr(h, "orders", 1 if d.order else 0)
    if "first" not in h or d.ms < int(h["first"]):
        h["first"] = str(d.ms)
    _set_latest(
        h,
        "last",
        st,
        {
            "last_ms": str(d.ms),
            "last_event": d.event_id,
            "last_channel": d.channel,
            "last_touchpoint": d.touchpoint,
        },
    )
    for name, value in d.latest_fields():
        _set_latest(h, name, st, {name: value})
    if d.consent:
        h[OPTOUT] = withdrawn_field(h)


def withdrawn_field(h: Mapping[str, str]) -> str:
    """Return the ``optout`` field of profile ``h``: ``"<purpose>=<ms>"`` per withdrawn purpose.

    Per purpose the latest by stamp of ``consent:`` and ``rconsent:`` wins (a tie,
    which two records of one event make, withdraws if either does).

    >>> h = {"consent:sms": "0", "consent:sms@": stamp(7, "e2"), "consent:email": "1"}
    >>> withdrawn_field(h)
    'sms=7'
    >>> h |= {"rconsent:sms": "1", "rconsent:sms@": stamp(9, "e3")}  # a newer grant
    >>> h |= {"rconsent:email": "0", "rconsent:email@": stamp(8, "e4")}
    >>> withdrawn_field(h)
    'email=8'
    """
    latest: dict[str, tuple[str, str]] = {}
    for name, value in h.items():
        if name[-1:] == "@":
            continue
        if name.startswith(_CONSENT):
            purpose = name[len(_CONSENT) :]
        elif name.startswith(RESOLVED_CONSENT):
            purpose = name[len(RESOLVED_CONSENT) :]
        else:
            continue
        at = h.get(name + "@", "")
        known = latest.get(purpose)
        if known is None or at > known[0] or (at == known[0] and value == "0"):
            latest[purpose] = (at, value)
    # the withdrawal's own stamp: "<15-digit ms>|<event id>"
    return "\n".join(
        f"{p}={int(at[:15] or 0)}" for p, (at, value) in sorted(latest.items()) if value == "0"
    )


def record_consent(h: dict[str, str], st: str, changes: Sequence[tuple[str, str]]) -> None:
    """Fold one event's consent changes into profile ``h`` and rewrite ``optout``.

    The changes are ``(purpose, "1" granted / "0" withdrawn)``, stamped ``st``, and
    go into resolve's fields of ``h``: latest by stamp per purpose, so folding an
    event twice changes nothing.

    >>> h: dict[str, str] = {}
    >>> record_consent(h, stamp(5, "e1"), [("marketing", "0")])
    >>> record_consent(h, stamp(3, "e0"), [("marketing", "1")])  # older: no effect
    >>> h["optout"], h["rconsent:marketing@"]
    ('marketing=5', '000000000000005|e1')
    """
    for purpose, granted in changes:
        name = RESOLVED_CONSENT + purpose
        _set_latest(h, name, st, {name: granted})
    h[OPTOUT] = withdrawn_field(h)


def parse_withdrawn(text: str | None) -> tuple[tuple[str, int], ...]:
    r"""``(purpose, ms)`` pairs from an ``optout`` field (None or empty: none).

    >>> parse_withdrawn("marketing=5\nsms=7"), parse_withdrawn(None)
    ((('marketing', 5), ('sms', 7)), ())
    """
    if not text:
        return ()
    # rpartition: the time never holds "=", a purpose might
    return tuple((p, int(ms)) for p, _, ms in (line.rpartition("=") for line in text.split("\n")))


def publish_due(h: dict[str, str], ms: int, emit_interval_ms: int) -> bool:
    """Tell whether profile ``h`` is due for publication; if so, record it in ``emit``.

    Due when ``emit_interval_ms`` of event time passed since the last publication,
    or the profile was never published.
    """
    if "emit" not in h or ms - int(h["emit"]) >= emit_interval_ms:
        h["emit"] = str(ms)
        return True
    return False


def apply_delta(h: dict[str, str], d: ProfileDelta, emit_interval_ms: int) -> bool:
    """Apply ``d`` to the hash ``h``; return True when the profile is due for publication."""
    fold_delta(h, d)
    return publish_due(h, d.ms, emit_interval_ms)


def applied_horizon(h: Mapping[str, str], window_ms: int) -> int:
    """Return the time (ms) before which applied event ids are forgotten.

    That is ``window_ms`` before the customer's latest event.

    >>> applied_horizon({"last_ms": "900000"}, 600_000)
    300000
    """
    return int(h["last_ms"]) - window_ms


def fold(into: dict[str, str], src: Mapping[str, str]) -> None:
    """Merge profile ``src`` into ``into``: counters add, latest-by-stamp wins, first is the min."""
    for name, value in src.items():
        if name in _COUNTERS or name.startswith("n:"):
            _incr(into, name, int(value))
    if "first" in src and ("first" not in into or int(src["first"]) < int(into["first"])):
        into["first"] = src["first"]
    groups = {name[:-1] for name in src if name.endswith("@")}
    for group in sorted(groups):
        members = LAST_FIELDS if group == "last" else (group,)
        _set_latest(into, group, src[group + "@"], {m: src[m] for m in members if m in src})
    if any(name.startswith((_CONSENT, RESOLVED_CONSENT)) for name in into):
        into[OPTOUT] = withdrawn_field(into)
