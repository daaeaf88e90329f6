"""insights: live key drivers (Johnson's relative weights) and low-scoring pockets.

The engine (:mod:`flows.insights.engine`) knows nothing of Bytewax; the step
:mod:`flows.steps.insights` runs it under one key like the NPS engine.
"""
