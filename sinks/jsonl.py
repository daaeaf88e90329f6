"""JSON-lines file sink for offline runs: one file per output kind.

``profiles.jsonl`` is the final snapshot of every profile (the latest version
per customer, sorted by customer id), written when the run ends. The other
files hold every record in the order it was produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows import metrics
from schemas.records import OUTPUT_KINDS, Emitted

OFFLINE_FILES: dict[str, str] = {kind: f"{kind}.jsonl" for kind in OUTPUT_KINDS}
_SORTED_KINDS = sorted(OUTPUT_KINDS)


class _AppendPartition(StatefulSinkPartition[Emitted, None]):
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")

    def write_batch(self, values: list[Emitted]) -> None:
        self._file.write(b"".join(out.value + b"\n" for out in values))
        if values:
            metrics.OUTPUTS.labels(values[0].kind).inc(len(values))

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._file.close()


class _LatestProfilePartition(StatefulSinkPartition[Emitted, None]):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._latest: dict[str, tuple[int, bytes]] = {}

    def write_batch(self, values: list[Emitted]) -> None:
        for out in values:
            version = orjson.loads(out.value)["version"]
            current = self._latest.get(out.key)
            if current is None or version >= current[0]:
                self._latest[out.key] = (version, out.value)
        metrics.OUTPUTS.labels("profiles").inc(len(values))

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        lines = (self._latest[key][1] + b"\n" for key in sorted(self._latest))
        self._path.write_bytes(b"".join(lines))


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
            return _LatestProfilePartition(path)
        return _AppendPartition(path)
