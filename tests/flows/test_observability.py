"""The metrics endpoint (real HTTP on an ephemeral port), the metrics helpers, the dashboard."""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource
from prometheus_client import REGISTRY

from flows import metrics, timing
from flows.app.health import (
    REDIS_SCRIPT_OPS,
    Health,
    InstrumentedRedis,
    MetricsServer,
    dependency_checks,
    redis_op,
    serve,
)
from flows.settings import KafkaSettings, RedisSettings, Settings
from schemas.envelope import KNOWN_CHANNELS
from tests.conftest import run_dataflow

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/cxstream.json"


def get(server: MetricsServer, path: str, accept: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, errors included."""
    request = urllib.request.Request(server.url + path)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health: Health) -> Iterator[MetricsServer]:
    with serve("127.0.0.1", 0, health) as running:
        yield running


# ---------------------------------------------------------------- /healthz


def test_healthz_is_ok_while_the_flow_has_not_failed(server: MetricsServer) -> None:
    status, content_type, body = get(server, "/healthz")
    assert (status, content_type, json.loads(body)) == (200, "application/json", {"status": "ok"})


def test_healthz_is_503_with_the_reason_once_the_flow_failed(
    server: MetricsServer, health: Health
) -> None:
    health.started()
    health.failed("KafkaDeliveryError: 3 messages were not delivered")
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert json.loads(body) == {
        "status": "failed",
        "reason": "KafkaDeliveryError: 3 messages were not delivered",
    }
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert "flow failed: KafkaDeliveryError" in json.loads(body)["reason"]


# ---------------------------------------------------------------- /readyz


def test_readyz_waits_for_the_flow_to_start(server: MetricsServer, health: Health) -> None:
    health.checks = {"redis": lambda: None}
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body)["reason"] == "flow not started"
    health.started()
    status, _, body = get(server, "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready", "checks": {"redis": "ok"}})


def test_readyz_names_the_dependency_that_failed(server: MetricsServer, health: Health) -> None:
    def kafka() -> None:
        msg = "topic(s) missing: cx.events"
        raise RuntimeError(msg)

    health.checks = {"redis": lambda: None, "kafka": kafka}
    health.started()
    status, _, body = get(server, "/readyz")
    answer = json.loads(body)
    assert status == 503
    assert answer["failed"] == ["kafka"]
    assert answer["reason"] == "dependency failed: kafka"
    assert answer["checks"] == {"redis": "ok", "kafka": "RuntimeError: topic(s) missing: cx.events"}


def test_a_hanging_check_times_out_and_is_not_started_again() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hangs() -> None:
        calls.append(1)
        release.wait(10)

    health = Health({"redis": hangs}, timeout=0.2, cache_seconds=0)
    health.started()
    try:
        start = time.monotonic()
        ok, body = health.readiness()
        assert time.monotonic() - start < 1.5
        assert not ok
        assert body["checks"]["redis"] == "timed out after 0.2s"
        ok, body = health.readiness()
        assert "still running" in body["checks"]["redis"]
        assert len(calls) == 1  # no second thread on a dependency that hangs
    finally:
        release.set()


def test_check_results_are_cached() -> None:
    clock = FakeClock()
    calls: list[int] = []
    health = Health({"redis": lambda: calls.append(1)}, cache_seconds=5, clock=clock)
    health.started()
    for _ in range(3):
        assert health.readiness()[0]
    assert len(calls) == 1
    clock.now += 5.1
    assert health.readiness()[0]
    assert len(calls) == 2


def test_dependency_checks_name_unreachable_redis_and_kafka() -> None:
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1/0"),
        kafka=KafkaSettings(brokers="127.0.0.1:1"),
    )
    health = Health(dependency_checks(settings, timeout=0.5), timeout=2)
    health.started()
    start = time.monotonic()
    ok, body = health.readiness()
    assert time.monotonic() - start < 2.5
    assert not ok
    assert body["failed"] == ["kafka", "redis"]
    assert body["checks"]["redis"].startswith("ConnectionError")
    assert body["checks"]["kafka"].startswith("KafkaException")
    assert not dependency_checks(settings, use_redis=False).keys() - {"kafka"}


# ---------------------------------------------------------------- /metrics


def test_metrics_serves_the_default_registry_in_text_format(server: MetricsServer) -> None:
    import bytewax.connectors.kafka  # noqa: F401 - registers bytewax_kafka_consumer_lag

    metrics.count_event("web", "cx.web.page.viewed")
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'cx_events_total{channel="web"}' in body
    assert 'cx_events_by_type_total{channel="web",family="page"}' in body
    assert 'cx_dead_letters_total{reason="not_json"} ' in body  # exists from start, at 0
    assert "cx_build_info{" in body
    assert "process_resident_memory_bytes " in body  # Linux process collector
    assert "# TYPE bytewax_kafka_consumer_lag gauge" in body  # same registry as Bytewax
    assert "# TYPE cx_e2e_latency_seconds histogram" in body


def test_metrics_speaks_openmetrics_when_asked(server: MetricsServer) -> None:
    status, content_type, body = get(server, "/metrics", accept="application/openmetrics-text")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_unknown_paths_are_404(server: MetricsServer) -> None:
    status, _, body = get(server, "/nope")
    assert status == 404
    assert "/metrics" in json.loads(body)["error"]


def test_a_taken_port_says_which_setting_to_change(server: MetricsServer) -> None:
    with pytest.raises(OSError, match="CX_METRICS__PORT"):
        serve("127.0.0.1", server.port, Health())


# ---------------------------------------------------------------- label cardinality


def _random_word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + "_-", k=rng.randint(1, 12)))


def test_random_channels_and_types_keep_the_label_sets_bounded() -> None:
    rng = random.Random(8)
    known = sorted(KNOWN_CHANNELS)
    for _ in range(1000):
        channel = rng.choice([*known, _random_word(rng)])
        parts = [_random_word(rng) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.5:
            parts[0] = rng.choice([*known, *sorted(metrics.KNOWN_TYPE_FAMILIES)])
        metrics.count_event(channel, "cx." + ".".join(parts))

    channels = set(KNOWN_CHANNELS) | {"other"}
    families = set(metrics.KNOWN_TYPE_FAMILIES) | {"other"}
    by_type = {
        (s.labels["channel"], s.labels["family"])
        for s in next(iter(metrics.EVENTS_BY_TYPE.collect())).samples
        if s.name == "cx_events_by_type_total"
    }
    by_channel = {
        s.labels["channel"]
        for s in next(iter(metrics.EVENTS_IN.collect())).samples
        if s.name == "cx_events_total"
    }
    assert by_channel <= channels
    assert {c for c, _ in by_type} <= channels
    assert {f for _, f in by_type} <= families
    assert len(by_type) <= len(channels) * len(families)
    assert len(metrics._event_children) <= len(channels) * len(families)
    assert metrics.type_family.cache_info().currsize <= 4096


def test_redis_op_labels_stay_in_the_script_vocabulary() -> None:
    rng = random.Random(3)
    seen = {redis_op(("EVALSHA", "sha", 0, "cx:", _random_word(rng).encode())) for _ in range(1000)}
    assert seen <= REDIS_SCRIPT_OPS | {"script_other"}


# ---------------------------------------------------------------- timing helpers


def test_timed_as_a_context_manager_observes_the_block() -> None:
    before = sample("cx_step_seconds_count", step="t_block")
    before_sum = sample("cx_step_seconds_sum", step="t_block")
    with timing.timed("t_block"):
        time.sleep(0.01)
    assert sample("cx_step_seconds_count", step="t_block") == before + 1
    assert sample("cx_step_seconds_sum", step="t_block") - before_sum >= 0.009


def test_timed_as_a_decorator_keeps_the_function_and_times_failures() -> None:
    @timing.timed("t_deco")
    def double(x: int) -> int:
        """Twice x."""
        if x < 0:
            raise ValueError(x)
        return 2 * x

    assert double(21) == 42
    assert (double.__name__, double.__doc__) == ("double", "Twice x.")
    with pytest.raises(ValueError):
        double(-1)
    assert sample("cx_step_seconds_count", step="t_deco") == 2


def test_timed_batch_and_timed_map_observe_once_per_batch_and_count_items() -> None:
    def inc(x: int) -> int:
        return x + 1

    def total(batch: list[int]) -> list[int]:
        return [sum(batch)]

    mapped = timing.timed_map("t_map", inc)
    assert mapped([1, 2, 3]) == [2, 3, 4]
    assert mapped([]) == []
    assert sample("cx_step_seconds_count", step="t_map") == 2
    assert sample("cx_step_items_total", step="t_map") == 3
    batched = timing.timed_batch("t_batch", total)
    assert batched([1, 2, 3]) == [6]
    assert sample("cx_step_items_total", step="t_batch") == 3


class _Sum(op.StatefulBatchLogic[int, int, int]):
    def __init__(self, total: int | None) -> None:
        self.total = total or 0

    def on_batch(self, values: list[int]) -> tuple[list[int], bool]:
        self.total += sum(values)
        return [self.total], self.RETAIN

    def snapshot(self) -> int:
        return self.total


def test_timed_logic_runs_in_a_real_stateful_batch_step() -> None:
    out: list[tuple[str, int]] = []
    flow = Dataflow("timed_logic")
    keyed = op.key_on("key", op.input("in", flow, TestingSource([1, 2, 3, 4], 2)), lambda x: "k")
    summed = op.stateful_batch("sum", keyed, timing.timed_logic("t_logic", _Sum))
    op.output("out", summed, TestingSink(out))
    run_dataflow(flow)
    assert out == [("k", 3), ("k", 10)]
    assert sample("cx_step_items_total", step="t_logic") == 4
    assert sample("cx_step_seconds_count", step="t_logic") >= 2  # on_batch twice, on_eof


def test_map_step_as_timed_flat_map_batch_gives_the_same_stream() -> None:
    out: list[int] = []
    flow = Dataflow("timed_map")
    up = op.input("in", flow, TestingSource(list(range(10)), 4))
    doubled = op.flat_map_batch("double", up, timing.timed_map("t_fmb", lambda x: 2 * x))
    op.output("out", doubled, TestingSink(out))
    run_dataflow(flow)
    assert out == [2 * x for x in range(10)]
    assert sample("cx_step_seconds_count", step="t_fmb") == 3  # batches of 4, 4, 2


def test_observe_e2e_buckets_and_clamps_clock_skew() -> None:
    def bucket(le: str) -> float:
        return sample("cx_e2e_latency_seconds_bucket", le=le)

    before = {le: bucket(le) for le in ("0.0", "0.001", "0.02", "0.035")}
    timing.observe_e2e(1_000_000, now_ms=1_000_025)  # 25 ms
    timing.observe_e2e(1_000_100, now_ms=1_000_000)  # broker clock ahead: counts as 0
    assert bucket("0.001") - before["0.001"] == 1
    assert bucket("0.02") - before["0.02"] == 1
    assert bucket("0.035") - before["0.035"] == 2
    count = sample("cx_e2e_latency_seconds_count")
    timing.observe_e2e_many([int(time.time() * 1000), None, int(time.time() * 1000) - 5000])
    assert sample("cx_e2e_latency_seconds_count") == count + 2


def test_redis_call_counts_times_and_counts_errors() -> None:
    with timing.redis_call("t_op"):
        pass
    with pytest.raises(redis.ConnectionError), timing.redis_call("t_op"):
        msg = "down"
        raise redis.ConnectionError(msg)
    assert sample("cx_redis_calls_total", op="t_op") == 2
    assert sample("cx_redis_errors_total", op="t_op") == 1
    assert sample("cx_redis_seconds_count", op="t_op") == 2


def test_instrumented_redis_labels_script_calls_by_operation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[Any, ...]] = []

    def fake_execute(self: redis.Redis, *args: Any, **options: Any) -> Any:
        sent.append(args)
        return b"+c-1"

    monkeypatch.setattr(redis.Redis, "execute_command", fake_execute)
    client = InstrumentedRedis()
    before = sample("cx_redis_calls_total", op="resolve")
    assert client.evalsha("sha", 0, "cx:", "resolve", "{}") == b"+c-1"
    client.evalsha("sha", 0, "cx:", "drop_everything")
    assert sent[0][:5] == ("EVALSHA", "sha", 0, "cx:", "resolve")
    assert sample("cx_redis_calls_total", op="resolve") == before + 1
    assert sample("cx_redis_calls_total", op="script_other") >= 1


# ---------------------------------------------------------------- the dashboard


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_panels_are_laid_out_and_query_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    names = {m.name for m in REGISTRY.collect()}  # counters collect without "_total"
    for expr in _exprs(dashboard):
        for metric in re.findall(r"\b(cx_[a-z0-9_]+)", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
            assert base in names, f"{metric} in {expr!r} is not defined in flows/metrics.py"
        assert 'job="$job"' in expr or expr.startswith("count(ALERTS"), expr
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("channel", "dead letter", "duplicates", "identity", "redis", "step", "end-to-end",
                  "alerts", "next-best", "auc", "lag", "memory"):  # fmt: skip
        assert topic in titles, topic


def test_every_alert_kind_has_its_series_from_the_start() -> None:
    from typing import get_args

    from prometheus_client import REGISTRY, generate_latest

    from schemas.outputs import AlertKind

    text = generate_latest(REGISTRY).decode()
    for kind in get_args(AlertKind):  # churn_risk and model_drift were missing once
        assert f'cx_alerts_total{{kind="{kind}"}}' in text
