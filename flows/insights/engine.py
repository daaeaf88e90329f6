"""The insights engine: key drivers and pockets per event-time window, under one key.

It runs like the NPS engine (:mod:`flows.steps.nps`): one Bytewax key, fed the
lanes' survey answers in a canonical order with ticks of each lane's
watermark (:mod:`flows.steps.ticks`), so what it emits depends on event time only.

Windows
    Tumbling, aligned to the Unix epoch, one per length
    (``window_lengths_seconds``, 1 d and 7 d). Each window keeps, per
    touchpoint and overall, the running co-moments of ``[drivers..., nps,
    detractor]`` and a seeded reservoir of rows (:mod:`flows.insights.moments`),
    and the answer counts of every pocket cell and every channel x stage.
    ``watermark = latest event time seen - allowed_lateness``; a window
    closes when the watermark reaches its end, or at end of input.

At a window's close
    A :class:`~schemas.outputs.KeyDrivers` record overall (always, with the
    pockets and the NPS by channel) and one per touchpoint with at least
    ``min_answers`` answers (weights need as many; the overall record of a
    smaller window has no weights either); an ``nps_pocket``
    :class:`~schemas.outputs.Alert` per significantly low cell
    (:mod:`flows.insights.pockets`).

Late answers
    An answer whose window has closed is not folded in (a closed window is
    final, no revisions): it is counted in :attr:`InsightsEngine.late_dropped`
    and in ``late_answers`` of the next overall record of that length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flows.insights.keydrivers import driver_rows, estimate, seed_of
from flows.insights.moments import Comoments, Reservoir
from flows.insights.pockets import Adjustment, Cell, Counts, channel_mix, find_pockets, nps_of
from flows.insights.settings import ALL_DRIVERS, InsightsSettings
from flows.steps.ticks import Tick
from flows.steps.windowed import Boundary, PickledEngine, Windowing
from flows.steps.windowed import utc as _utc
from schemas.ids import output_id
from schemas.outputs import Alert, KeyDrivers
from schemas.vocabulary import NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN

OVERALL = ""
"""The series key of every answer of a window."""
SEGMENT_TOUCHPOINT = "segment x touchpoint"
STAGE_CHANNEL = "stage x channel"
NO_STAGE = "none"


@dataclass(frozen=True, slots=True)
class Answer:
    """One survey answer with its full driver vector (:data:`ALL_DRIVERS` order)."""

    event_id: str
    ms: int
    drivers: tuple[float, ...]
    nps: int
    touchpoint: str
    channel: str
    stage: str | None
    segment: str


InsightsItem = Answer | Tick
InsightsOutput = KeyDrivers | Alert


@dataclass(slots=True)
class _Series:
    moments: Comoments
    reservoir: Reservoir
    promoters: int = 0
    detractors: int = 0


@dataclass(slots=True)
class _Window:
    series: dict[str, _Series] = field(default_factory=dict)
    cells: dict[Cell, Counts] = field(default_factory=dict)
    cell_moments: dict[Cell, Comoments] = field(default_factory=dict)
    mix: dict[tuple[str, str], Counts] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    max_ms: float = float("-inf")
    late_dropped: int = 0
    windows: dict[Boundary, _Window] = field(default_factory=dict)
    late: dict[int, int] = field(default_factory=dict)  # length ms -> not yet reported


KeyT = TypeVar("KeyT", Cell, tuple[str, str])


def _count(counts: dict[KeyT, Counts], key: KeyT, nps: int) -> None:
    row = counts.setdefault(key, [0, 0, 0])
    row[0] += nps >= NPS_PROMOTER_MIN
    row[1] += nps <= NPS_DETRACTOR_MAX
    row[2] += 1


class InsightsEngine(PickledEngine[InsightsSettings, _State]):
    """Key drivers and pockets per window (see the module notes); a ticked engine."""

    def __init__(self, settings: InsightsSettings, state: _State | None = None) -> None:
        super().__init__(settings, state)
        self._windows = Windowing.of(
            settings.window_lengths_seconds, settings.allowed_lateness_seconds
        )
        self._pick = [ALL_DRIVERS.index(d) for d in settings.drivers]

    def _new_state(self) -> _State:
        return _State()

    @property
    def watermark_ms(self) -> float:
        """Latest event time seen minus the allowed lateness (-inf before any input)."""
        return self._windows.watermark(self._state.max_ms)

    @property
    def late_dropped(self) -> int:
        """Answers that came after a window of theirs closed (once per answer)."""
        return self._state.late_dropped

    def process(self, items: Iterable[InsightsItem]) -> list[InsightsOutput]:
        """Fold a batch in, advance the watermark, emit the windows it closed."""
        state = self._state
        watermark = self.watermark_ms
        for item in items:
            state.max_ms = max(state.max_ms, item.ms)
            if not isinstance(item, Tick):
                self._fold(item, watermark)
        return self._close(final=False)

    def close_all(self) -> list[InsightsOutput]:
        """End of input: close every window still open."""
        return self._close(final=True)

    def _fold(self, answer: Answer, watermark: float) -> None:
        state, conf = self._state, self.settings
        drivers = answer.drivers
        detractor = 1.0 if answer.nps <= NPS_DETRACTOR_MAX else 0.0
        values = (*(drivers[i] for i in self._pick), float(answer.nps), detractor)
        stage = answer.stage or NO_STAGE
        missed = False
        for boundary in self._windows.boundaries(answer.ms):
            length, start = boundary
            if self._windows.closed(boundary, watermark):
                missed = True
                state.late[length] = state.late.get(length, 0) + 1
                continue
            window = state.windows.setdefault(boundary, _Window())
            for key in (OVERALL, answer.touchpoint):
                series = window.series.get(key)
                if series is None:
                    seed = seed_of(conf.seed, f"reservoir:{key}:{length}:{start}")
                    series = _Series(Comoments(len(values)), Reservoir(conf.reservoir_rows, seed))
                    window.series[key] = series
                series.moments.add(values)
                series.reservoir.add(values)
                series.promoters += answer.nps >= NPS_PROMOTER_MIN
                series.detractors += answer.nps <= NPS_DETRACTOR_MAX
            for cell in (
                (SEGMENT_TOUCHPOINT, answer.segment, answer.touchpoint),
                (STAGE_CHANNEL, stage, answer.channel),
            ):
                _count(window.cells, cell, answer.nps)
                moments = window.cell_moments.get(cell)
                if moments is None:
                    moments = window.cell_moments[cell] = Comoments(len(values))
                moments.add(values)
            _count(window.mix, (answer.channel, stage), answer.nps)
        state.late_dropped += missed

    def _close(self, final: bool) -> list[InsightsOutput]:
        state = self._state
        watermark = self.watermark_ms
        out: list[InsightsOutput] = []
        for boundary in self._windows.due(state.windows, watermark, final):
            out += self._emit(boundary, state.windows.pop(boundary))
        return out

    def _emit(self, boundary: Boundary, window: _Window) -> list[InsightsOutput]:
        conf = self.settings
        length = boundary[0]
        overall = window.series[OVERALL]
        total = (overall.promoters, overall.detractors, overall.moments.n)
        adjust = Adjustment(overall.moments, window.cell_moments, conf.drivers)
        pockets = find_pockets(
            window.cells, total, conf.pocket_min_answers, conf.pocket_fdr, adjust
        )
        out: list[InsightsOutput] = []
        for key in sorted(window.series):
            series = window.series[key]
            if key != OVERALL and series.moments.n < conf.min_answers:
                continue
            record = self._record(boundary, key, series)
            if key == OVERALL:
                late = self._state.late.pop(length, 0)
                record = record.model_copy(
                    update={
                        "pockets": pockets,
                        "channels": channel_mix(window.mix),
                        "late_answers": late,
                    }
                )
            out.append(record)
        out += [self._alert(boundary, p) for p in pockets if p["significant"]]
        return out

    def _record(self, boundary: Boundary, key: str, series: _Series) -> KeyDrivers:
        conf = self.settings
        length, start = boundary
        record_id = output_id("insights", key, length // 1000, start // 1000)
        n = series.moments.n
        fields: dict[str, Any] = {}
        if n >= conf.min_answers:
            nps, detractor = estimate(
                series.moments,
                series.reservoir,
                len(self._pick),
                resamples=conf.bootstrap,
                confidence=conf.confidence,
                seed=seed_of(conf.seed, record_id),
            )
            fields = {
                "r2": round(nps.r2, 10),
                "detractor_r2": round(detractor.r2, 10),
                "sample": len(series.reservoir.rows),
                "bootstrap": conf.bootstrap,
                "drivers": driver_rows(conf.drivers, series.moments, nps, detractor),
            }
        return KeyDrivers(
            id=record_id,
            touchpoint=key or None,
            window_start=_utc(start),
            window_end=_utc(start + length),
            answers=n,
            nps=round(nps_of(series.promoters, series.detractors, n), 2),
            **fields,
        )

    def _alert(self, boundary: Boundary, pocket: dict[str, Any]) -> Alert:
        length, start = boundary
        kind, (first, second) = pocket["kind"], pocket["cell"]
        gap = float(pocket["nps"]) - float(pocket["complement_nps"])
        end = _utc(start + length)
        adjusted = pocket["adjusted_gap"] is not None
        below = (
            f", {-pocket['adjusted_gap']:.2f} answer points below what its drivers explain"
            if adjusted
            else ""
        )
        return Alert(
            id=output_id(
                "alert", "nps_pocket", str(kind), first, second, length // 1000, start // 1000
            ),
            kind="nps_pocket",
            severity="high" if gap < -30 else "medium",  # noqa: PLR2004 (30 NPS points)
            touchpoint=second if kind == SEGMENT_TOUCHPOINT else None,
            time=end,
            message=(
                f"{kind} {first} / {second}: NPS {pocket['nps']} against "
                f"{pocket['complement_nps']} for the rest{below} "
                f"({pocket['answers']} answers, q={pocket['q']})"
            ),
            evidence={
                **pocket,
                "window_start": _utc(start).isoformat(),
                "window_end": end.isoformat(),
                "fdr": self.settings.pocket_fdr,
                # the test compares residuals of the answer after regressing it on these
                "adjusted_for": list(self.settings.drivers) if adjusted else [],
            },
        )
