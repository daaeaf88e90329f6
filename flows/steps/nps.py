"""nps: touchpoint NPS and CSAT over event-time tumbling windows, with drop alerts.

One engine (one Bytewax key, see :mod:`flows.steps.ticks`) holds every touchpoint's
windows, so a quiet touchpoint's windows close when the *stream's* event time
moves on and every window boundary can be compared across touchpoints.

Windows
    Tumbling, aligned to the Unix epoch (``start = floor(t / length) * length``),
    one series per touchpoint and window length, and, with ``by_channel``, one
    per touchpoint x channel too. ``responses`` counts NPS answers (0-10); an
    answer carrying only a CSAT score counts in ``csat_responses`` alone.

Watermark and closing
    ``watermark = max event time seen (items and ticks) - allowed_lateness``. The
    flow feeds the engine one item at a time, in the canonical order of
    :mod:`flows.steps.ticks` (a tick of its lane's watermark before each answer), so the
    clock stands where it would were every event its own batch. An item is folded
    in against the watermark as it stood before it; then the watermark advances
    and every window whose end it has reached closes (``watermark >= end``) and
    goes out as revision 0. At end of input
    (``on_eof``) every window still open is emitted as it stands; should input
    resume after that (recovery), later answers revise it like any closed window.

Late data (never silently lost)
    A response whose window already went out, while the watermark has not yet
    reached ``window end + revision_horizon``, is folded in and the window goes
    out again with the SAME id and ``revision + 1``. A response older than
    that is not folded in: it is counted in :attr:`NpsEngine.late_dropped` (once
    per response, however many of its windows it missed) and reported in the
    ``late_responses`` field of the next window emitted in each series it
    missed (same touchpoint, channel and length; a revision counts). Counts
    still pending at end of input go out on a revision of the series' latest
    window still held; a series with no window held at all keeps its count in
    ``late_dropped`` only.

Cross-touchpoint analysis (``NpsWindow.analysis`` of per-touchpoint windows)
    For each boundary (length, start) that goes out: ``overall_nps`` and
    ``overall_responses`` over every touchpoint; touchpoints with at least
    ``min_responses`` answers are ranked by NPS, ties by name (``rank`` of
    ``of``); the top and bottom quintiles (``max(1, round(n / 5))`` touchpoints
    each, needing two ranked touchpoints) give ``top_quintile_nps``,
    ``bottom_quintile_nps``, ``quintile_gap`` and the window's ``quintile``
    ("top", "bottom" or None). ``impact = share_of_responses x (touchpoint NPS -
    overall NPS)``: the points the touchpoint adds to the overall NPS against
    scoring the average, so ``-impact`` is what the overall NPS would gain were
    the touchpoint brought to the average. Impacts over all touchpoints sum to 0.
    When a revision changes a boundary, every window whose figures or analysis
    changed goes out again.

Alerts
    ``touchpoint_nps_drop``: a per-touchpoint window with at least
    ``min_responses`` answers whose NPS is more than ``drop_threshold_points``
    below the mean NPS of the series' previous ``baseline_windows`` emitted
    windows (each with at least ``min_responses`` answers; at least two
    needed). At most one alert per window: the first emission that shows the
    drop (a revision may). ``detractor`` alerts (every 0-6 answer) come from
    :func:`flows.steps.detractor.detractor_alert`, which the journey step calls where
    customer ids are known.

State stays bounded: a window is forgotten once the watermark passes its end
plus the revision horizon; per series only the baseline history is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flows.step_settings import NpsSettings
from flows.steps.nps_analysis import BoundaryAnalysis, _round, analyse_boundary, nps_score
from flows.steps.ticks import EngineLogic, LaneSet, Tick, engine_builder
from flows.steps.windowed import Boundary, PickledEngine, Windowing, close_order
from flows.steps.windowed import utc as _utc
from schemas.envelope import InteractionEvent
from schemas.ids import output_id
from schemas.outputs import Alert, NpsWindow, Severity
from schemas.vocabulary import NPS_PASSIVE_MIN, NPS_PROMOTER_MIN

# A drop alert needs a baseline of at least this many past windows (one is noise).
MIN_BASELINE_WINDOWS = 2


NPS_KEY = "nps"

NpsItem = InteractionEvent | Tick
NpsOutput = NpsWindow | Alert
NpsSnapshot = bytes

Series = tuple[str, str | None]
"""(touchpoint, channel); channel None for the touchpoint as a whole."""


@dataclass(slots=True)
class _Window:
    """Running figures of one window; ``emitted`` is what last went out (None: still open)."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_sum: int = 0
    csat_responses: int = 0
    late: int = 0
    changed: bool = False
    drop_alerted: bool = False
    emitted: NpsWindow | None = None

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        return nps_score(self.promoters, self.detractors, self.responses)

    def add(self, nps: int | None, csat: int | None) -> None:
        if nps is not None:
            if nps >= NPS_PROMOTER_MIN:
                self.promoters += 1
            elif nps >= NPS_PASSIVE_MIN:
                self.passives += 1
            else:
                self.detractors += 1
        if csat is not None:
            self.csat_sum += csat
            self.csat_responses += 1
        self.changed = True


@dataclass(slots=True)
class _NpsState:
    """Everything the engine remembers; pickled whole as the snapshot."""

    max_ms: float = float("-inf")
    late_dropped: int = 0
    windows: dict[Boundary, dict[Series, _Window]] = field(default_factory=dict)
    # Boundaries that went out at least once; only those can be revised.
    closed: set[Boundary] = field(default_factory=set)
    dirty: set[Boundary] = field(default_factory=set)
    # (length ms, touchpoint, channel) -> too-late responses not yet reported on a window.
    pending_late: dict[tuple[int, str, str | None], int] = field(default_factory=dict)
    # (touchpoint, length ms) -> window start ms -> NPS, for the drop baseline.
    history: dict[tuple[str, int], dict[int, float]] = field(default_factory=dict)


def _series_order(series: Series) -> tuple[str, bool, str]:
    # The touchpoint's own window first, then its channels by name.
    return series[0], series[1] is not None, series[1] or ""


def _drop_severity(drop: float, threshold: float) -> Severity:
    if drop > 2 * threshold:
        return "critical"
    return "high" if drop > 1.5 * threshold else "medium"


class NpsEngine(PickledEngine[NpsSettings, _NpsState]):
    """Touchpoint NPS windows in event time, independent of Bytewax (see the module notes).

    Examples
    --------
    >>> def survey(n, minute, nps):
    ...     return InteractionEvent.model_validate({"id": f"s{n}", "source": "/doc",
    ...         "type": "cx.survey.nps", "time": f"2026-03-02T10:{minute:02d}:00Z",
    ...         "data": {"channel": "email", "touchpoint": "web.checkout", "nps": nps}})
    >>> engine = NpsEngine(NpsSettings(window_lengths_seconds=(3600,), by_channel=False,
    ...     allowed_lateness_seconds=0))
    >>> engine.process([survey(1, 5, 10), survey(2, 40, 3), survey(3, 50, 8)])
    []
    >>> (window,) = engine.process([Tick(ms=1772449200000)])  # 11:00, the window's end
    >>> window.window_start.isoformat(), window.responses, window.nps
    ('2026-03-02T10:00:00+00:00', 3, 0.0)
    >>> (revised,) = engine.process([survey(4, 59, 9)])  # late, within the revision horizon
    >>> revised.id == window.id, revised.revision, revised.nps
    (True, 1, 25.0)
    """

    def __init__(self, settings: NpsSettings, state: _NpsState | None = None) -> None:
        super().__init__(settings, state)
        self._windows = Windowing.of(
            settings.window_lengths_seconds, settings.allowed_lateness_seconds
        )
        self._horizon = settings.revision_horizon_seconds * 1000

    def _new_state(self) -> _NpsState:
        return _NpsState()

    @property
    def watermark_ms(self) -> float:
        """Latest event time seen minus the allowed lateness (-inf before any input)."""
        return self._windows.watermark(self._state.max_ms)

    @property
    def late_dropped(self) -> int:
        """Responses too late for at least one of their windows (not folded into it)."""
        return self._state.late_dropped

    @property
    def window_count(self) -> int:
        """Windows held in state, open or still revisable."""
        return sum(len(group) for group in self._state.windows.values())

    def process(self, items: Iterable[NpsItem]) -> list[NpsOutput]:
        """Fold a batch in, advance the watermark, emit closed and revised windows."""
        state = self._state
        watermark = self.watermark_ms
        latest = state.max_ms
        for item in items:
            if isinstance(item, Tick):
                latest = max(latest, item.ms)
            else:
                latest = max(latest, item.epoch_ms)
                self._fold(item, watermark)
        state.max_ms = latest
        out = self._flush(final=False)
        self._expire()
        return out

    def close_all(self) -> list[NpsOutput]:
        """End of input: emit every window still open and report pending late counts."""
        out = self._flush(final=True)
        if self._claim_pending_late():
            out += self._flush(final=True)
        self._expire()
        return out

    def _fold(self, event: InteractionEvent, watermark: float) -> None:
        nps, csat = event.data.nps, event.data.csat
        if nps is None and csat is None:
            return
        state = self._state
        touchpoint, at = event.data.touchpoint, event.epoch_ms
        series: list[Series] = [(touchpoint, None)]
        if self.settings.by_channel:
            series.append((touchpoint, event.data.channel))
        missed = False
        for boundary in self._windows.boundaries(at):
            length, start = boundary
            if start + length + self._horizon <= watermark:
                missed = True
                for tp, channel in series:
                    key = (length, tp, channel)
                    state.pending_late[key] = state.pending_late.get(key, 0) + 1
                continue
            group = state.windows.setdefault(boundary, {})
            for one in series:
                group.setdefault(one, _Window()).add(nps, csat)
            if boundary in state.closed:
                state.dirty.add(boundary)
        if missed:
            state.late_dropped += 1

    def _flush(self, final: bool) -> list[NpsOutput]:
        state = self._state
        watermark = self.watermark_ms
        held = (b for b in state.windows if b not in state.closed)
        due = self._windows.due(held, watermark, final)
        out: list[NpsOutput] = []
        for boundary in sorted(state.dirty.union(due), key=close_order):
            out += self._emit_boundary(boundary)
            state.closed.add(boundary)
        state.dirty.clear()
        return out

    def _emit_boundary(self, boundary: Boundary) -> list[NpsOutput]:
        state = self._state
        length, start = boundary
        group = state.windows[boundary]
        figures = {
            tp: (w.promoters, w.detractors, w.responses)
            for (tp, channel), w in group.items()
            if channel is None
        }
        analysis = analyse_boundary(figures, self.settings.min_responses)
        out: list[NpsOutput] = []
        for series in sorted(group, key=_series_order):
            window = group[series]
            if window.emitted is None or window.changed:
                window.late += state.pending_late.pop((length, *series), 0)
            window.changed = False
            model = self._model(boundary, series, window, analysis)
            if window.emitted is not None:
                if model == window.emitted:
                    continue
                model = model.model_copy(update={"revision": window.emitted.revision + 1})
            window.emitted = model
            out.append(model)
            if series[1] is None:
                alert = self._drop_alert(boundary, series[0], window, model)
                if alert is not None:
                    out.append(alert)
                nps = window.nps
                if nps is not None and window.responses >= self.settings.min_responses:
                    state.history.setdefault((series[0], length), {})[start] = nps
        return out

    def _model(
        self, boundary: Boundary, series: Series, window: _Window, analysis: BoundaryAnalysis
    ) -> NpsWindow:
        length, start = boundary
        touchpoint, channel = series
        csat_n = window.csat_responses
        return NpsWindow(
            id=output_id("nps", touchpoint, channel or "", length // 1000, start // 1000),
            touchpoint=touchpoint,
            channel=channel,
            window_start=_utc(start),
            window_end=_utc(start + length),
            revision=window.emitted.revision if window.emitted is not None else 0,
            responses=window.responses,
            promoters=window.promoters,
            passives=window.passives,
            detractors=window.detractors,
            nps=_round(window.nps, 1),
            csat_responses=csat_n,
            csat_avg=round(window.csat_sum / csat_n, 2) if csat_n else None,
            late_responses=window.late,
            analysis=analysis.for_touchpoint(touchpoint) if channel is None else {},
        )

    def _drop_alert(
        self, boundary: Boundary, touchpoint: str, window: _Window, model: NpsWindow
    ) -> Alert | None:
        settings = self.settings
        nps = window.nps
        if window.drop_alerted or nps is None or window.responses < settings.min_responses:
            return None
        length, start = boundary
        past = self._state.history.get((touchpoint, length), {})
        previous = sorted(s for s in past if s < start)[-settings.baseline_windows :]
        if len(previous) < MIN_BASELINE_WINDOWS:
            return None
        baseline = sum(past[s] for s in previous) / len(previous)
        drop = baseline - nps
        if drop <= settings.drop_threshold_points:
            return None
        window.drop_alerted = True
        return Alert(
            id=output_id("alert", "touchpoint_nps_drop", model.id, model.revision),
            kind="touchpoint_nps_drop",
            severity=_drop_severity(drop, settings.drop_threshold_points),
            touchpoint=touchpoint,
            time=model.window_end,
            message=(
                f"NPS at {touchpoint} fell to {nps:.1f} against a baseline of {baseline:.1f}"
                f" ({window.responses} responses, {length // 1000} s window)"
            ),
            evidence={
                "window_id": model.id,
                "revision": model.revision,
                "window_start": model.window_start.isoformat(),
                "window_end": model.window_end.isoformat(),
                "nps": round(nps, 1),
                "baseline": round(baseline, 1),
                "baseline_windows": len(previous),
                "drop": round(drop, 1),
                "responses": window.responses,
            },
        )

    def _claim_pending_late(self) -> bool:
        """Mark the latest held window of each series with pending late counts for re-emission."""
        state = self._state
        claimed = False
        for length, touchpoint, channel in list(state.pending_late):
            series = (touchpoint, channel)
            held = [b for b, group in state.windows.items() if b[0] == length and series in group]
            if held:
                boundary = max(held)
                state.windows[boundary][series].changed = True
                state.dirty.add(boundary)
                claimed = True
        return claimed

    def _expire(self) -> None:
        state = self._state
        watermark = self.watermark_ms
        expired = [b for b in state.closed if b[0] + b[1] + self._horizon <= watermark]
        for boundary in expired:
            del state.windows[boundary]
            state.closed.discard(boundary)
            state.dirty.discard(boundary)
        if expired:
            self._trim_history()

    def _trim_history(self) -> None:
        # A window can still be revised only while held, so the baseline of the
        # oldest held window is the oldest history anyone can still ask for.
        oldest: dict[int, int] = {}
        for length, start in self._state.windows:
            oldest[length] = min(oldest.get(length, start), start)
        keep = self.settings.baseline_windows
        for (_, length), past in self._state.history.items():
            cutoff = oldest.get(length)
            before = sorted(s for s in past if cutoff is None or s < cutoff)
            for start in before[:-keep]:
                del past[start]


def nps_key(_: object) -> str:
    """Key function: every survey response and tick goes to the one NPS engine."""
    return NPS_KEY


def nps_builder(
    settings: NpsSettings,
    lanes: LaneSet | None = None,
) -> Callable[[bytes | None], EngineLogic[NpsItem, NpsOutput]]:
    """Return the ``op.stateful_batch`` builder of the NPS step (see :func:`engine_builder`)."""
    return engine_builder(lambda snap: NpsEngine.restore(settings, snap), lanes)
