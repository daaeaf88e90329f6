"""What the insights (#20) cost per event: ``python scripts/insights_cost.py WORLD_DIR``.

WORLD_DIR is a ``cxstream generate`` output. Prints, in microseconds per input event:

* ``driver_vector``: the journey step's :func:`flows.insights.drivers.observe` on every
  event, timed alone over the log's events (against each customer's final features);
* ``answers``: the selector putting the answers and their lanes' ticks on the way
  to the engine (the flow's own ``cx_step_seconds{step="answers"}``);
* ``co_moments``: the engine (``cx_step_seconds{step="insights"}``) without its window
  closes: the co-moments, reservoirs and pocket counts of each answer (with each pocket
  cell's co-moments, for the adjusted test), and the ticks;

their sum (the per-event cost), then ``window_closes``: the weights, bootstrap and
pockets computed when windows close (timed around ``InsightsEngine._emit``), a cost
per window that the number of events per window spreads, and ``decision_summaries``:
the decision summaries' resequencer and engine (``cx_step_seconds{step="summary"}``;
not part of the insights' budget, which is the driver vector and co-moments). The flow
runs offline, in this process (one worker, this thread), with the in-memory store. Every
figure is CPU time of this thread (``time.thread_time``, also under the flow's step
timers): on a loaded machine, the time the thread waits for a core does not count.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from flows import timing
from flows.app.offline import run_offline
from flows.insights.drivers import DriverMemory, observe
from flows.insights.engine import InsightsEngine
from flows.insights.settings import InsightsSettings
from flows.settings import Settings
from online_models.features import CustomerFeatures
from replay.log import read_log
from schemas.envelope import InteractionEvent


def _step_seconds(step: str) -> float:
    return REGISTRY.get_sample_value("cx_step_seconds_sum", {"step": step}) or 0.0


def _driver_vector_seconds(log: Path) -> tuple[float, int]:
    events = []
    for message in read_log(log):
        try:
            events.append(InteractionEvent.model_validate_json(message.value or b""))
        except ValueError:
            continue
    conf = InsightsSettings()
    keys = [str(next(iter(sorted(e.data.identifiers.items())), "")) for e in events]
    features: dict[str, CustomerFeatures] = {}
    for key, event in zip(keys, events, strict=True):  # each customer's features, untimed
        features.setdefault(key, CustomerFeatures()).update(event, None, None)
    pairs = [(features[key], event) for key, event in zip(keys, events, strict=True)]

    def one_pass(with_drivers: bool) -> float:
        memories: dict[int, DriverMemory] = {}
        start = time.thread_time()
        for feats, event in pairs:
            memory = memories.setdefault(id(feats), DriverMemory())
            if with_drivers:
                observe(memory, event, None, feats, conf)
        return time.thread_time() - start

    # observe() over every event, less the same loop without it; best of 7 each
    spent = min(one_pass(True) for _ in range(7)) - min(one_pass(False) for _ in range(7))
    return spent, len(events)


def main(world: Path) -> None:
    """Measure and print the figures for the world in ``world``."""
    log = world / "events.jsonl.gz"
    vector, events = _driver_vector_seconds(log)
    closes = [0.0, 0]
    emit = InsightsEngine._emit  # noqa: SLF001 (timing the engine's window close from outside)

    def timed_emit(self: InsightsEngine, *args: Any) -> Any:
        start = time.thread_time()
        try:
            return emit(self, *args)
        finally:
            closes[0] += time.thread_time() - start
            closes[1] += 1

    InsightsEngine._emit = timed_emit  # type: ignore[method-assign,assignment]  # noqa: SLF001
    setattr(timing, "perf_counter", time.thread_time)  # noqa: B010 (the step timers' clock: CPU time)
    with tempfile.TemporaryDirectory() as out:
        run_offline(Settings(), [log], Path(out))
    parts = {
        "driver_vector": vector,
        "answers": _step_seconds("answers"),
        "co_moments": _step_seconds("insights") - closes[0],
    }
    for name, seconds in parts.items():
        print(f"{name:<14} {1e6 * seconds / events:8.2f} us per event")
    print(f"{'per event':<14} {1e6 * sum(parts.values()) / events:8.2f} us ({events} events)")
    print(
        f"{'window_closes':<14} {1e6 * closes[0] / events:8.2f} us per event "
        f"({closes[1]} windows, {1e3 * closes[0] / max(1, closes[1]):.1f} ms each)"
    )
    summaries = _step_seconds("summary")
    print(f"{'decision_summaries':<14} {1e6 * summaries / events:8.2f} us per event")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
