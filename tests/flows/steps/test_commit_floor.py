"""CommitFloor reads the dedupe step's committed ``seq`` from real Bytewax recovery files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.lanes import Tracked
from flows.settings import DedupeSettings
from flows.steps.dedupe import dedupe_builder
from flows.steps.parking import CommitFloor
from schemas.envelope import InteractionEvent
from tests.conftest import make_event


def _run(recovery: Path, events: list[InteractionEvent]) -> list[Tracked]:
    flow = Dataflow("cxstream")  # the step id the floor reads: cxstream.dedupe
    items = op.input("in", flow, TestingSource([("cx.events:0", e) for e in events], 3))
    laned = op.key_on("lane", items, lambda item: item[0])
    fresh = op.stateful_batch("dedupe", laned, dedupe_builder(DedupeSettings()))
    out: list[tuple[str, Tracked]] = []
    op.output("out", fresh, TestingSink(out))
    run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(recovery))  # type: ignore[no-untyped-call]
    return [t for _, t in out]


def test_the_floor_is_the_next_seq_of_the_last_committed_snapshot(tmp_path: Path) -> None:
    floor = CommitFloor(tmp_path, refresh_seconds=0)
    assert floor() == {}  # no recovery files yet: nothing committed
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    assert floor() == {}
    events = [InteractionEvent.model_validate(make_event(n)) for n in (1, 2, 2, 3, 4, 5, 6)]
    tracked = _run(tmp_path, events)
    assert [t.seq for t in tracked] == [0, 1, 2, 3, 4, 5]
    committed = floor()["cx.events:0"]
    assert committed == 6  # the run ended: all six numbered events are behind the resume point
