"""journey: per customer, fold events into the profile and publish it.

Issue 4 adds the stage machine, sentiment windows and alerts here. What exists
now: the profile is updated on every event and sent on (to ``cx.profiles``)
at most once per ``emit_interval_seconds`` of event time per customer; a
pending change is flushed after that long in wall-clock time when the stream is
quiet, and at end of input.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from flows.resolve import Resolved
from flows.settings import ProfileSettings
from schemas.outputs import ProfileSnapshot
from state.profile import CustomerProfile


class JourneyLogic(StatefulBatchLogic[Resolved, ProfileSnapshot, bytes]):
    """Bytewax logic for one customer."""

    def __init__(self, settings: ProfileSettings, profile: CustomerProfile | None) -> None:
        self.settings = settings
        self.profile = profile
        self._last_emit_ts: float | None = None
        self._pending_since: datetime | None = None

    def on_batch(self, values: list[Resolved]) -> tuple[Iterable[ProfileSnapshot], bool]:
        for resolved in values:
            if self.profile is None:
                assert resolved.customer_id is not None
                self.profile = CustomerProfile(
                    resolved.customer_id, recent_limit=self.settings.recent_interactions
                )
            self.profile.apply(resolved.event)
        assert self.profile is not None and self.profile.last_seen is not None
        now_ts = self.profile.last_seen.timestamp()
        due = (
            self._last_emit_ts is None
            or now_ts - self._last_emit_ts >= self.settings.emit_interval_seconds
        )
        if due:
            return [self._emit(now_ts)], StatefulBatchLogic.RETAIN
        if self._pending_since is None:
            self._pending_since = datetime.now(UTC)
        return [], StatefulBatchLogic.RETAIN

    def _emit(self, now_ts: float) -> ProfileSnapshot:
        assert self.profile is not None
        self._last_emit_ts = now_ts
        self._pending_since = None
        return self.profile.snapshot()

    def notify_at(self) -> datetime | None:
        if self._pending_since is None:
            return None
        return self._pending_since + timedelta(seconds=self.settings.emit_interval_seconds)

    def on_notify(self) -> tuple[Iterable[ProfileSnapshot], bool]:
        return self._flush()

    def on_eof(self) -> tuple[Iterable[ProfileSnapshot], bool]:
        return self._flush()

    def _flush(self) -> tuple[Iterable[ProfileSnapshot], bool]:
        if self._pending_since is None or self.profile is None:
            return [], StatefulBatchLogic.RETAIN
        assert self.profile.last_seen is not None
        return [self._emit(self.profile.last_seen.timestamp())], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        # Pickled bytes are immutable and cheaper than a deep copy of the profile.
        return pickle.dumps(self.profile, protocol=pickle.HIGHEST_PROTOCOL)


def journey_builder(
    settings: ProfileSettings,
) -> Callable[[bytes | None], JourneyLogic]:
    def build(resume: bytes | None) -> JourneyLogic:
        profile = pickle.loads(resume) if resume is not None else None  # our own snapshot
        return JourneyLogic(settings, profile)

    return build
