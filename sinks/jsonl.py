"""JSON-lines file sink for offline runs: one file per output kind.

Each file holds every record of its kind in the order it was produced, except
``profiles.jsonl``: the final snapshot of every profile, read from the store
when the run ends (:func:`write_profiles`), sorted by customer id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows import metrics
from schemas.outputs import ProfileSnapshot
from schemas.records import OUTPUT_KINDS, Emitted

OFFLINE_FILES: dict[str, str] = {kind: f"{kind}.jsonl" for kind in OUTPUT_KINDS}
_SORTED_KINDS = sorted(OUTPUT_KINDS)


class _AppendPartition(StatefulSinkPartition[Emitted, None]):
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")

    def write_batch(self, values: list[Emitted]) -> None:
        self._file.write(b"".join(out.value + b"\n" for out in values if out.value is not None))
        if values:
            metrics.OUTPUTS.labels(values[0].kind).inc(len(values))

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


def write_profiles(path: Path, profiles: Iterable[ProfileSnapshot]) -> int:
    """Write final profiles, one JSON line each, in the order given; return how many."""
    lines = [profile.model_dump_json().encode() + b"\n" for profile in profiles]
    path.write_bytes(b"".join(lines))
    return len(lines)


class JsonlDirSink(FixedPartitionedSink[Emitted, None]):
    """Writes ``(kind, Emitted)`` items to ``<out_dir>/<kind>.jsonl``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

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
        if for_part == "profiles":
            return _DiscardPartition()
        return _AppendPartition(path)
