"""The process around the dataflow: command line, Kafka run, offline run, stores, health.

Imports point down: app -> :mod:`flows.dataflow` -> :mod:`flows.steps`.
"""
