"""Next-best actions: a declarative catalogue, contact policy, consent and arbitration.

The decide step (:mod:`flows.steps.decide`) calls a :class:`~flows.nba.decider.Decider`
for each event of a customer; the actions, their rules and the class levers come from a
TOML catalogue (:mod:`flows.nba.catalogue`), the contact policy from
:class:`~flows.step_settings.NbaSettings`.

Import from the submodules: ``catalogue`` (Action, Catalogue, load_catalogue),
``context`` (FIELDS, Trigger, JourneyFigures, build_context), ``decider`` (Decider),
``policy`` (ContactHistory), ``settings`` (NbaSettings), ``conditions``, ``arbitration``.
"""
