"""River online models: churn, next-category propensity, segments.

The flow's journey step (keyed by customer) keeps, per customer, a
:class:`CustomerFeatures` (and a :class:`CategoryInterest` for propensity); its
score step (``flows.steps.score``, keyed by input partition: a *lane*) holds ONE
:class:`ChurnEngine` (and one :class:`PropensityModel`, one :class:`Segmenter`)
per lane and feeds them the lane's events in input order. The models' own
per-event API, for use outside the flow::

    score, alerts = churn.step(customer_id, event, state.features, sentiment, stage)
    segment = segmenter.assign(state.features, event.epoch_ms)    # "seg-2"
    propensity.observe(state.interest, event)
    top = propensity.top_k(state.interest, event.epoch_ms)          # when needed

and the split the flow uses (the per-customer part in the journey step, the
shared part in the score step): ``features.update`` / ``features.vector``, then
``churn.observe``, ``churn.score``, ``churn.risk_check``;
``segmenter.assign_vector``; ``fold_interest``, ``propensity.learn_purchase``,
``propensity.top_k_vector``.

River models are global models: a lane's engines learn from every customer of
that lane, whatever the number of worker processes. They are Bytewax state of
the score step, so a restored run continues with them as they were at the
snapshot; :func:`export_model` / :func:`import_model` move them between runs.

Everything runs on event time and is seeded: the same events in the same
order give the same scores, alerts and figures.

Import from the submodules (``churn``, ``evaluation``, ``factory``, ``features``,
``labels``, ``persistence``, ``propensity``, ``segmentation``, ``settings``): the package
imports nothing, so reading the settings does not import River.
"""
