"""The parts of the synthetic CX world; :mod:`replay.synthetic` is the public entry point.

``catalog`` holds the fixed vocabulary (touchpoints, products, sentences),
``identity`` makes people and their identifiers, ``journey`` simulates one
person's weeks, ``noise`` turns events into messages as Kafka would deliver
them, ``stream`` stores and merges the messages, and ``truth`` is the answer
key written next to them.
"""
