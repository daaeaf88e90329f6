"""A Bytewax source that plays a replay log into the flow, as fast as it can."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from replay.log import read_log
from schemas.records import RawMessage


class _LogPartition(StatefulSourcePartition[RawMessage, int]):
    def __init__(self, path: Path, batch_size: int, resume_at: int) -> None:
        self._messages: Iterator[RawMessage] = islice(read_log(path), resume_at, None)
        self._position = resume_at
        self._batch_size = batch_size

    def next_batch(self) -> list[RawMessage]:
        batch = list(islice(self._messages, self._batch_size))
        if not batch:
            raise StopIteration
        self._position += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._position


class ReplayLogSource(FixedPartitionedSource[RawMessage, int]):
    """Each log file is one partition; resumes at the record after the last snapshot."""

    def __init__(self, paths: list[Path], batch_size: int = 1000) -> None:
        self.paths = paths
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(path) for path in self.paths]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LogPartition:
        return _LogPartition(Path(for_part), self.batch_size, resume_state or 0)
