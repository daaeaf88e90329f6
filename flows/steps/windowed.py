"""The windowing shared by the single-key engines (nps, insights, decision summaries).

:class:`Windowing` is the NPS step's windowing: tumbling event-time windows aligned to
the Unix epoch, ``watermark = latest event time seen - allowed lateness``, a window
closed once the watermark reaches its end; :meth:`Windowing.due` lists the windows to
close, in the one order every engine emits them (end, then length, then start).
:class:`PickledEngine` is the snapshot / restore of an engine whose whole memory is
one picklable state object (what :class:`flows.steps.ticks.TickedEngine` asks for).

>>> w = Windowing.of((3600, 86400), allowed_lateness_seconds=600)
>>> w.boundaries(5_400_000)  # 01:30 on day 0: (length ms, start ms) per length
[(3600000, 3600000), (86400000, 0)]
>>> w.watermark(7_800_000), w.closed((3600000, 3600000), w.watermark(7_800_000))
(7200000, True)
>>> w.due([(86400000, 0), (3600000, 3600000), (3600000, 0)], 7_200_000, final=False)
[(3600000, 0), (3600000, 3600000)]
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Self, TypeVar

Boundary = tuple[int, int]
"""(window length ms, window start ms)."""


def utc(ms: int) -> datetime:
    """Return the UTC datetime of ``ms`` since the Unix epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def close_order(boundary: Boundary) -> tuple[int, int, int]:
    """Sort key of windows as they close: by end, then length, then start."""
    return boundary[0] + boundary[1], boundary[0], boundary[1]


@dataclass(frozen=True, slots=True)
class Windowing:
    """Tumbling event-time windows aligned to the Unix epoch, and when they close."""

    lengths_ms: tuple[int, ...]
    lateness_ms: int

    @classmethod
    def of(cls, lengths_seconds: tuple[int, ...], allowed_lateness_seconds: int) -> Windowing:
        """Windowing from settings in seconds."""
        return cls(tuple(s * 1000 for s in lengths_seconds), allowed_lateness_seconds * 1000)

    def watermark(self, max_ms: float) -> float:
        """Return the watermark when the latest event time seen is ``max_ms``."""
        return max_ms - self.lateness_ms

    def boundaries(self, at_ms: int) -> list[Boundary]:
        """``(length, start)`` of the window of each length that holds ``at_ms``."""
        return [(length, at_ms // length * length) for length in self.lengths_ms]

    @staticmethod
    def closed(boundary: Boundary, watermark: float) -> bool:
        """Whether the window ``(length, start)`` has closed at ``watermark``."""
        return boundary[0] + boundary[1] <= watermark

    def due(self, held: Iterable[Boundary], watermark: float, final: bool) -> list[Boundary]:
        """Return the windows of ``held`` closed at ``watermark`` (all when final), in order."""
        return sorted((b for b in held if final or self.closed(b, watermark)), key=close_order)


SettingsT = TypeVar("SettingsT")
StateT = TypeVar("StateT")


class PickledEngine(Generic[SettingsT, StateT]):
    """An engine made of its settings and one state object, pickled whole as its snapshot."""

    def __init__(self, settings: SettingsT, state: StateT | None = None) -> None:
        self.settings = settings
        self._state = state if state is not None else self._new_state()

    def _new_state(self) -> StateT:
        raise NotImplementedError

    def snapshot(self) -> bytes:
        """Return the engine's state as bytes, for Bytewax recovery."""
        return pickle.dumps(self._state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, settings: SettingsT, snap: bytes | None) -> Self:
        """Return the engine anew (None) or from its own :meth:`snapshot`."""
        # Bytewax's own recovery store is the only source of these bytes.
        state = pickle.loads(snap) if snap is not None else None  # noqa: S301 (our own recovery snapshot)
        return cls(settings, state)
