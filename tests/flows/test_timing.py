"""End-to-end latency in the flow: input notes append times, the Kafka sink observes."""

from __future__ import annotations

import threading

from bytewax.connectors.kafka import KafkaSourceMessage
from prometheus_client import REGISTRY

from flows import timing
from flows.app.inputs import KafkaItem, from_kafka_batch


def _bucket(le: str) -> float:
    value = REGISTRY.get_sample_value("cx_e2e_latency_seconds_bucket", {"le": le})
    return value or 0.0


def _count() -> float:
    return REGISTRY.get_sample_value("cx_e2e_latency_seconds_count") or 0.0


def _fresh() -> None:
    timing.observe_outputs(1, now_ms=0.0)  # take whatever earlier tests left pending
    timing._appends.pending.clear()
    timing._appends.last = []


def test_outputs_are_spread_over_the_inputs_in_arrival_order() -> None:
    _fresh()
    timing.note_appends([10_000, 10_000])
    timing.note_appends([10_040, 10_040])  # a second batch before the sink wrote
    low, high, count = _bucket("0.005"), _bucket("0.05"), _count()
    # now = 10_045: the first two inputs are 45 ms old, the last two 5 ms
    assert timing.observe_outputs(4, now_ms=10_045) == 4
    assert _count() - count == 4
    assert _bucket("0.005") - low == 2
    assert _bucket("0.05") - high == 4


def test_more_outputs_than_inputs_and_reuse_window() -> None:
    _fresh()
    timing.note_appends([5_000])
    count = _count()
    assert timing.observe_outputs(3, now_ms=5_010) == 3  # three outputs of one input
    assert timing.observe_outputs(2, now_ms=5_500) == 2  # same activation, second write
    assert timing.observe_outputs(2, now_ms=7_000) == 0  # no input for over a second
    assert timing.observe_outputs(0, now_ms=7_000) == 0
    assert _count() - count == 5


def test_pending_inputs_are_capped() -> None:
    _fresh()
    timing.note_appends(list(range(timing.MAX_PENDING_APPENDS + 10)))
    assert len(timing._appends.pending) == timing.MAX_PENDING_APPENDS
    assert timing._appends.pending[0] == 10  # the oldest went first
    _fresh()


def test_each_worker_thread_has_its_own_inputs() -> None:
    _fresh()
    timing.note_appends([1_000])
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(len(timing._appends.pending)))
    other.start()
    other.join()
    assert seen == [0] and timing._appends.pending == [1_000]
    _fresh()


def test_kafka_input_batch_notes_append_times() -> None:
    _fresh()
    batch: list[KafkaItem] = [
        KafkaSourceMessage(None, b"{}", "t", [], None, 7, 0, (1, 1_700_000_000_123)),
        KafkaSourceMessage(None, b"{}", "t", [], None, 8, 1, (0, -1)),  # no timestamp
    ]
    raws = from_kafka_batch(batch)
    assert [r.offset for r in raws] == [7, 8]
    assert [r.timestamp_ms for r in raws] == [1_700_000_000_123, None]
    assert timing._appends.pending == [1_700_000_000_123]
    _fresh()
