"""Counting hooks: a sink says what it wrote, the caller counts it.

Sinks import nothing of the flow; the flow passes its counters in
(:func:`flows.metrics.count_outputs`, :func:`flows.timing.observe_outputs`).

>>> written: list[tuple[str, int]] = []
>>> on_write: OnWrite = lambda kind, n: written.append((kind, n))
>>> on_write("nba", 2)
>>> written
[('nba', 2)]
"""

from __future__ import annotations

from collections.abc import Callable

#: ``(output kind, records written)``, called as records are written.
OnWrite = Callable[[str, int], None]
#: ``records of one batch``, called once the batch is acknowledged (Kafka), even if empty.
OnSent = Callable[[int], object]


def ignore_write(kind: str, n: int) -> None:
    """Ignore a write: an :data:`OnWrite` that counts nothing."""


def ignore_sent(n: int) -> object:
    """Ignore a send: an :data:`OnSent` that counts nothing."""
    return None
