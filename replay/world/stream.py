"""The message stream in bounded memory: sorted, compressed runs merged by arrival time.

Messages are produced person by person but must come out in arrival order.
They are buffered up to ``run_size``, sorted by ``(arrival, seq)`` and kept as
one zlib blob per run beside compact arrays of their keys; reading merges the
runs with a heap and inflates each blob a little at a time. ``seq`` is unique,
so the order (and the offsets) never depend on ties.

>>> s = Stream(run_size=2)
>>> for arrival, value in [(30, b"c"), (10, b"a"), (20, b""), (15, b"b")]:
...     _ = s.add(arrival, 0, value)
>>> [(arrival, value) for arrival, value in s.messages()]
[(10, b'a'), (15, b'b'), (20, b''), (30, b'c')]
>>> [arrival for arrival, _seq, _flags, _ref in s.index()]
[10, 15, 20, 30]
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

# Flags of a message; a message may carry several.
HAS_DUPLICATE = 1  # re-delivered later (its copy carries DUPLICATE)
DUPLICATE = 2  # the re-delivered copy; ``ref`` is the seq of the first delivery
LATE = 4  # arrives hours after its event time
DELAYED = 8  # arrives minutes after its event time
INVALID = 16  # not a valid event; ``ref`` is the index of its kind

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Run:
    """Messages sorted by (arrival, seq): key arrays and one compressed blob of values."""

    arrivals: array[int]
    seqs: array[int]
    flags: bytes
    refs: array[int]
    lengths: array[int]
    blob: bytes

    def keys(self) -> Iterator[tuple[int, int, int, int]]:
        return zip(self.arrivals, self.seqs, self.flags, self.refs, strict=True)

    def values(self) -> Iterator[tuple[int, int, bytes]]:
        """(arrival, seq, value), inflating the blob one chunk at a time."""
        inflate = zlib.decompressobj()
        blob = memoryview(self.blob)
        buf, pos, fed = bytearray(), 0, 0
        for arrival, seq, size in zip(self.arrivals, self.seqs, self.lengths, strict=True):
            while len(buf) - pos < size:
                del buf[:pos]
                pos = 0
                chunk = blob[fed : fed + _CHUNK]
                fed += _CHUNK
                buf += inflate.decompress(chunk) if chunk else inflate.flush()
            yield arrival, seq, bytes(buf[pos : pos + size])
            pos += size


class Stream:
    """All messages of a world, added in any order, read in arrival order."""

    def __init__(self, run_size: int = 50_000) -> None:
        self.run_size = run_size
        self.runs: list[Run] = []
        # Values are copied into one bytearray: a small ``bytes`` from orjson can
        # hold a 4 KiB allocation, ten times its length.
        self._buffer: list[tuple[int, int, int, int, int, int]] = []
        self._data = bytearray()
        self._seq = 0

    def __len__(self) -> int:
        """Return how many messages were added."""
        return self._seq

    def add(self, arrival: int, flags: int, value: bytes, ref: int = -1) -> int:
        """Add one message; return its seq."""
        seq = self._seq
        self._seq += 1
        self._buffer.append((arrival, seq, flags, ref, len(self._data), len(value)))
        self._data += value
        if len(self._buffer) >= self.run_size:
            self.seal()
        return seq

    def seal(self) -> None:
        """Sort and compress what is buffered into a run."""
        if not self._buffer:
            return
        items = sorted(self._buffer)
        with memoryview(self._data) as data:
            blob = zlib.compress(b"".join(data[i[4] : i[4] + i[5]] for i in items), 1)
        self._buffer, self._data = [], bytearray()
        self.runs.append(
            Run(
                arrivals=array("q", [item[0] for item in items]),
                seqs=array("q", [item[1] for item in items]),
                flags=bytes(item[2] for item in items),
                refs=array("q", [item[3] for item in items]),
                lengths=array("q", [item[5] for item in items]),
                blob=blob,
            )
        )

    def index(self) -> Iterator[tuple[int, int, int, int]]:
        """(arrival, seq, flags, ref) of every message, in offset order."""
        self.seal()
        return heapq.merge(*(run.keys() for run in self.runs))

    def messages(self) -> Iterator[tuple[int, bytes]]:
        """(arrival, value) of every message, in offset order."""
        self.seal()
        # (arrival, seq) is unique, so the heap never compares two values.
        for arrival, _seq, value in heapq.merge(*(run.values() for run in self.runs)):
            yield arrival, value
