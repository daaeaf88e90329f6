"""The adaptive acceptance model of a catalogue: its priors and response timeouts.

>>> from flows.nba.catalogue import load_catalogue
>>> from online_models.settings import AcceptanceSettings
>>> new = acceptance_builder(Decider(load_catalogue(None)), AcceptanceSettings())
>>> model = new() if new is not None else None
>>> model.timeouts["service_recovery"], model.priors["service_recovery"]
(86400000, 0.3)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flows.nba.decider import Decider
from online_models.acceptance import AcceptanceModel
from online_models.settings import AcceptanceSettings


def acceptance_builder(
    decider: Decider | None, settings: AcceptanceSettings
) -> Callable[[], AcceptanceModel] | None:
    """Return what starts a lane's acceptance model for the decider's actions.

    None when the flow decides nothing or the adaptive model is off.
    """
    if decider is None or not settings.enabled:
        return None
    catalogue = decider.catalogue
    priors = {a.id: a.acceptance_prior for a in catalogue.actions}
    timeouts = {a.id: a.response_timeout_ms for a in catalogue.actions}
    return partial(AcceptanceModel, priors, timeouts, settings)
