"""The closed loop offline: a world's log plus the world's answers to the flow's own NBAs.

A recorded log cannot hold responses to NBAs that are only decided when it is
replayed, so ``cxstream replay loop`` builds one by fixed-point iteration, each round
a plain deterministic replay:

1. replay the log (round 0: the world's events alone) into ``out_dir``;
2. the world answers every NBA of that run (:mod:`replay.world.answers`: seeded by
   the world's seed and the NBA id, so an NBA answers the same in every round);
3. merge those responses into the world's events by arrival time (the response's
   event time; a response record has no offset) and replay again.

It stops when a run's NBAs get exactly the responses its log held: the log is then
self-consistent (every NBA has the world's answer, no response answers an NBA the
flow did not make), and it is left in ``out_dir/events.answered.jsonl.gz`` with that
run's outputs, so ``cxstream replay run`` of it gives those outputs byte for byte.
Responses change later decisions only, so each round fixes more of the horizon; after
``rounds`` rounds without a fixed point the last log stays and the report says so
(its stale responses are ``unknown_nba`` dead letters, its unanswered NBAs counted).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from flows.app.offline import run_offline
from flows.settings import Settings
from replay.log import read_log, write_log
from replay.world.answers import people_of_customers, response_messages
from schemas.records import RawMessage

ANSWERED_LOG = "events.answered.jsonl.gz"


@dataclass(frozen=True)
class LoopReport:
    """How the loop ended: rounds run, whether it reached its fixed point, the counts."""

    log: Path
    rounds: int
    converged: bool
    nbas: int
    responses: int

    def render(self) -> str:
        state = "a fixed point" if self.converged else "no fixed point (rounds exhausted)"
        return (
            f"closed loop: {self.rounds} round(s), {state}; {self.nbas} NBAs, "
            f"{self.responses} responses in {self.log}"
        )


def _rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _arrival(raw: RawMessage) -> int:
    return raw.timestamp_ms or 0


def _arrivals(events: list[RawMessage]) -> dict[str, int]:
    """Event id -> the log timestamp it arrived at (its first delivery)."""
    out: dict[str, int] = {}
    for raw in events:
        try:
            event_id = orjson.loads(raw.value or b"null")["id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            continue
        if isinstance(event_id, str) and raw.timestamp_ms is not None:
            out.setdefault(event_id.strip(), raw.timestamp_ms)
    return out


def close_loop(
    settings: Settings, log: Path, truth_path: Path, out_dir: Path, *, rounds: int = 6
) -> LoopReport:
    """Iterate replay and answers to a self-consistent log (see the module docstring)."""
    truth = orjson.loads(truth_path.read_bytes())
    params = truth["params"]
    seed, topic, partition = int(params["seed"]), params["topic"], int(params["partition"])
    events = list(read_log(log))
    arrivals = _arrivals(events)
    answered = out_dir / ANSWERED_LOG
    out_dir.mkdir(parents=True, exist_ok=True)
    injected: list[RawMessage] = []
    done = 0
    converged = False
    nbas: list[dict[str, Any]] = []
    while True:
        write_log(answered, heapq.merge(events, injected, key=_arrival))
        run_offline(settings, [answered], out_dir)
        nbas = _rows(out_dir / "nba.jsonl")
        people = people_of_customers(_rows(out_dir / "profiles.jsonl"), truth)
        wanted = sorted(
            response_messages(nbas, people, seed, topic, partition, arrivals),
            key=lambda r: (_arrival(r), r.value or b""),
        )
        converged = wanted == injected
        if converged or done >= rounds:
            break
        injected, done = wanted, done + 1
    return LoopReport(answered, done, converged, len(nbas), len(injected))
