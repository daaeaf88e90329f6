"""The board steps: keep the action board (:mod:`state.actions`) as the flow emits.

Two pass-through steps of the flow: ``timeline`` records each interaction the
profile step folds (time, event, channel, touchpoint, stage, sentiment, NPS), and
``board`` records the NBAs and customer alerts on their way to the sinks, moves a
merged-away customer's items to the survivor, and forgets erased customers. (An
item of the merged-away id still in flight when its merge passes stays under that
id: the API reads the survivor's.) Neither changes what flows on: outputs stay byte-identical
with or without a board.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.api_settings import ApiSettings
from flows.records import Journeyed, Tombstone
from schemas.outputs import Alert, IdentityErasure, IdentityMerge, NextBestAction
from state.actions import ActionBoard, BoardItem, BoardRules
from state.redis_actions import board_for
from state.store import ProfileStore

T = TypeVar("T")
R = TypeVar("R")


def board_rules(conf: ApiSettings) -> BoardRules:
    """Build the board's bounds from the ``CX_API__BOARD_*`` settings."""
    return BoardRules(
        max_nbas=conf.board_max_nbas,
        max_alerts=conf.board_max_alerts,
        timeline_length=conf.board_timeline_length,
        nba_ttl_ms=round(conf.board_nba_ttl_seconds * 1000),
        alert_ttl_ms=round(conf.board_alert_ttl_seconds * 1000),
        retention_seconds=conf.board_retention_seconds,
    )


def _ms(item: NextBestAction | Alert) -> int:
    return round(item.time.timestamp() * 1000)


class Retrier(Protocol):
    """Retries a store call through an outage (:class:`flows.app.retry.Retrier`)."""

    def call(self, op: str, fn: Callable[..., R], *args: object) -> R: ...


class BoardWriter:
    """Writes one batch at a time to the board, then passes the batch on unchanged.

    With a ``retrier`` (the flow's, when its store retries), each write retries as the
    store's calls do.
    """

    def __init__(self, board: ActionBoard, retrier: Retrier | None = None) -> None:
        self.board = board
        self.retrier = retrier

    def _call(self, op: str, fn: Callable[..., None], *args: object) -> None:
        if self.retrier is None:
            fn(*args)
        else:
            self.retrier.call(op, fn, *args)

    def journeys(self, batch: list[Journeyed | Tombstone]) -> list[Journeyed | Tombstone]:
        """Record each known customer's interaction on their timeline (tombstones pass)."""
        items = []
        for j in batch:
            if isinstance(j, Tombstone):
                continue
            cid, event = j.resolved.customer_id, j.resolved.event
            if cid is None:
                continue
            data = event.data
            entry = {
                "time": event.time.isoformat(),
                "id": event.id,
                "type": event.type,
                "channel": data.channel,
                "touchpoint": data.touchpoint,
                "stage": j.stage,
                "sentiment": j.sentiment,
                "nps": data.nps,
            }
            items.append(BoardItem("t", cid, event.id, event.epoch_ms, entry))
        if items:
            self._call("board", self.board.record, items)
        return batch

    def outputs(self, batch: list[T]) -> list[T]:
        """Record the batch's NBAs and customer alerts; follow merges; forget erased customers."""
        items, erased, merges = [], [], []
        for out in batch:
            if isinstance(out, NextBestAction):
                body = out.model_dump(mode="json")
                items.append(BoardItem("n", out.customer_id, out.id, _ms(out), body))
            elif isinstance(out, Alert) and out.customer_id is not None:
                body = out.model_dump(mode="json")
                items.append(BoardItem("a", out.customer_id, out.id, _ms(out), body))
            elif isinstance(out, IdentityErasure):
                erased.append(out.customer_id)
            elif isinstance(out, IdentityMerge):
                merges.append((out.survivor_id, out.merged_id))
        if items:
            self._call("board", self.board.record, items)
        if merges:  # one call for the batch's merges (two round trips in Redis)
            self._call("board", self.board.merge_all, merges)
        if erased:
            self._call("board", self.board.forget, erased)
        return batch


def board_writer(conf: ApiSettings, store: ProfileStore) -> BoardWriter | None:
    """Return the writer of the board kept next to ``store`` (None: ``CX_API__BOARD`` off)."""
    if not conf.board:
        return None
    retrier = getattr(store, "retrier", None)  # flows.app.retry.RetryingStore's
    return BoardWriter(board_for(store, board_rules(conf)), retrier)


def board_timeline(
    board: BoardWriter | None, journeys: Stream[Journeyed | Tombstone]
) -> Stream[Journeyed | Tombstone]:
    """Add the ``timeline`` step to the profile step's input (unchanged without a board)."""
    return journeys if board is None else op.flat_map_batch("timeline", journeys, board.journeys)


def board_outputs(board: BoardWriter | None, outputs: Stream[T]) -> Stream[T]:
    """Add the ``board`` step before the encoder (unchanged without a board)."""
    return outputs if board is None else op.flat_map_batch("board", outputs, board.outputs)
