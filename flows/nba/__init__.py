"""Next-best actions: a declarative catalogue, contact policy, consent and arbitration.

The decide step (:mod:`flows.steps.decide`) calls a :class:`Decider` for each event of a
customer; the actions, their rules and the class levers come from a TOML catalogue
(:mod:`flows.nba.catalogue`), the contact policy from :class:`NbaSettings`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.nba.catalogue import Action, Catalogue, CatalogueError, load_catalogue
    from flows.nba.context import FIELDS, build_context
    from flows.nba.decider import Decider
    from flows.nba.policy import ContactHistory
    from flows.nba.settings import NbaSettings

# Re-exports resolve on first use: flows.settings imports NbaSettings, and every
# command reads the settings; the decider pulls in metrics and Bytewax.
_HOMES = {
    "catalogue": ("Action", "Catalogue", "CatalogueError", "load_catalogue"),
    "context": ("FIELDS", "build_context"),
    "decider": ("Decider",),
    "policy": ("ContactHistory",),
    "settings": ("NbaSettings",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        msg = f"module 'flows.nba' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(import_module(f"flows.nba.{module}"), name)


__all__ = [
    "FIELDS",
    "Action",
    "Catalogue",
    "CatalogueError",
    "ContactHistory",
    "Decider",
    "NbaSettings",
    "build_context",
    "load_catalogue",
]
