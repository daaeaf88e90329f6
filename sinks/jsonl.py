"""JSON-lines file sink for offline runs: one file per output kind.

Each file holds every record of its kind; when the run ends,
:func:`canonical_order` sorts it (by event time, then output id and revision;
dead letters by their input coordinates), because the order in which a flow
produces records of different customers depends on the batching and on the
worker count, while the records themselves do not. ``profiles.jsonl`` is the
final snapshot of every profile, read from the store when the run ends
(:func:`write_profiles`), sorted by customer id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from schemas.outputs import ProfileSnapshot
from schemas.records import OUTPUT_KINDS, Emitted
from sinks.hooks import OnWrite

OFFLINE_FILES: dict[str, str] = {kind: f"{kind}.jsonl" for kind in OUTPUT_KINDS}
_SORTED_KINDS = sorted(OUTPUT_KINDS)


class _AppendPartition(StatefulSinkPartition[Emitted, None]):
    def __init__(self, path: Path, on_write: OnWrite) -> None:
        self._file: BinaryIO = path.open("wb")
        self._on_write = on_write

    def write_batch(self, values: list[Emitted]) -> None:
        self._file.write(b"".join(out.value + b"\n" for out in values if out.value is not None))
        if values:
            self._on_write(values[0].kind, len(values))

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._file.close()


class _DiscardPartition(StatefulSinkPartition[Emitted, None]):
    """Profiles of an offline run come from the store when it ends, not from the stream."""

    def write_batch(self, values: list[Emitted]) -> None:
        return None

    def snapshot(self) -> None:
        return None


def _record_order(line: bytes) -> tuple[Any, ...]:
    record = orjson.loads(line)
    if "original_b64" in record:  # a dead letter: where it was read
        coordinates = (record.get("topic") or "", record.get("partition") or 0)
        return (*coordinates, record.get("offset") or 0, record["id"], 0)
    time = record.get("time") or record.get("window_end") or ""
    return (time, record["id"], record.get("revision") or 0)


def canonical_order(path: Path) -> int:
    """Sort a finished output file into its canonical order; return its record count.

    The sort is stable, so revisions of one window keep the order they came in.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "alerts.jsonl"
    >>> rows = [orjson.dumps({"id": i, "time": f"2026-03-02T{h}:00:00Z"}) for i, h in
    ...     [("b", 10), ("a", 11), ("a", 10)]]
    >>> _ = path.write_bytes(b"".join(row + bytes([10]) for row in rows))
    >>> canonical_order(path), [orjson.loads(row)["id"] for row in path.read_bytes().splitlines()]
    (3, ['a', 'b', 'a'])
    """
    lines = path.read_bytes().splitlines()
    lines.sort(key=_record_order)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return len(lines)


def write_profiles(path: Path, profiles: Iterable[ProfileSnapshot]) -> int:
    """Write final profiles, one JSON line each, in the order given; return how many."""
    lines = [profile.model_dump_json().encode() + b"\n" for profile in profiles]
    path.write_bytes(b"".join(lines))
    return len(lines)


class JsonlDirSink(FixedPartitionedSink[Emitted, None]):
    """Writes ``(kind, Emitted)`` items to ``<out_dir>/<kind>.jsonl``; ``on_write`` counts them."""

    def __init__(self, out_dir: Path, *, on_write: OnWrite) -> None:
        self.out_dir = out_dir
        self._on_write = on_write

    def list_parts(self) -> list[str]:
        return list(OUTPUT_KINDS)

    def part_fn(self, item_key: str) -> int:
        # Bytewax indexes this into the *sorted* global list of partitions.
        return _SORTED_KINDS.index(item_key)

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[Emitted, None]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / OFFLINE_FILES[for_part]
        if for_part in ("profiles", "households"):  # final state, written at the end
            return _DiscardPartition()
        return _AppendPartition(path, self._on_write)
