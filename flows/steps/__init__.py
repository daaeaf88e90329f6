"""The steps of the dataflow: one module per named step (decode, dedupe, resolve, ...).

Each step knows nothing of the process around the flow (:mod:`flows.app`).
"""
