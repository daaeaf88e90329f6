"""The hidden drivers of the world's NPS answers and its planted low pockets.

A survey answer is ``7 + 3.5 x + shift + noise`` on the 0-10 scale
(:func:`replay.world.service.maybe_survey`), where ``x`` is the felt
experience of the surveyed interaction (the person's latent experience plus
the touchpoint's hidden quality) and :func:`nps_shift` adds the planted
effects below, named as the flow's drivers (``flows.insights.settings``), in
points of the 0-10 answer:

* ``sla_breached``: a case of theirs is open past its SLA;
* ``open_case``: a case of theirs is open;
* ``assisted``: the surveyed interaction was on an assisted channel.

and the planted pocket (``stage x channel``, in the flow's terms): answers
about a chat while a case is open (the journey stage is then ``service``) lose
:data:`POCKET_POINTS` more. truth.json lists both (``nps_drivers``,
``nps_pockets``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.world.journey import Journey

NPS_DRIVERS: dict[str, float] = {"sla_breached": -2.5, "open_case": -1.5, "assisted": -0.8}
ASSISTED = frozenset({"call_center", "chat", "store", "service_desk"})
POCKET_POINTS = -3.0
POCKETS: tuple[tuple[str, str, str], ...] = (("stage x channel", "service", "chat"),)


def nps_shift(j: Journey, channel: str) -> float:
    """Return the planted drivers' and pockets' effect on an answer about ``channel``."""
    shift = 0.0
    if j.breached_open > 0:
        shift += NPS_DRIVERS["sla_breached"]
    if j.open_cases > 0:
        shift += NPS_DRIVERS["open_case"]
        if channel == "chat":
            shift += POCKET_POINTS
    if channel in ASSISTED:
        shift += NPS_DRIVERS["assisted"]
    return shift


def insights_truth() -> dict[str, Any]:
    """Return the ``nps_drivers`` and ``nps_pockets`` entries of truth.json."""
    return {
        "nps_drivers": {
            "points": NPS_DRIVERS,
            "experience_points_per_unit": 3.5,
            "note": "planted on top of the felt experience (latent + touchpoint quality)",
        },
        "nps_pockets": [
            {"kind": kind, "cell": [first, second], "points": POCKET_POINTS}
            for kind, first, second in POCKETS
        ],
    }
