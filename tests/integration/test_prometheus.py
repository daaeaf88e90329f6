"""The real Prometheus scrapes cxstream's endpoint while the real flow runs.

The module starts ``flows.app.health.serve`` on an ephemeral port, replays the
shipped demo log through the flow in a loop (``run_offline``, in-memory store), and
starts Prometheus with ``scripts/prometheus.sh`` (which installs the Debian package
when it is missing) scraping that port every second, with its own port and state
directory. Then it asks Prometheus's HTTP API for the series the dashboard and the
alerting rules use, and stops Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows import timing
from flows.app.health import Health, MetricsServer, serve
from flows.app.offline import SAMPLE_LOG, run_offline
from flows.app.run import free_ports
from flows.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "prometheus.sh"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "cxstream.json"
HOW_TO = (
    "Prometheus is needed: `bash scripts/prometheus.sh start` installs the Debian package "
    "(apt-get, as root or with sudo) and starts it; elsewhere put prometheus and promtool "
    ">= 2.42 on PATH"
)
WAIT_SECONDS = 30


def _script(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[MetricsServer]:
    """/metrics served while the real flow replays the demo log, over and over."""
    health = Health()
    server = serve("127.0.0.1", 0, health)
    stop = threading.Event()
    failures: list[BaseException] = []

    def replay() -> None:
        settings = Settings()
        with tempfile.TemporaryDirectory() as out:
            while not stop.is_set():
                try:
                    with timing.timed("offline_run"):
                        run_offline(settings, [SAMPLE_LOG], Path(out))
                except Exception as exc:  # reported by the test, not lost in the thread
                    failures.append(exc)
                    health.failed(repr(exc))
                    return
                stop.wait(0.2)

    thread = threading.Thread(target=replay, name="replay-loop", daemon=True)
    health.started()
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=30)
    server.close()
    assert not failures, f"the flow failed while being scraped: {failures[0]!r}"


@pytest.fixture(scope="module")
def prometheus(endpoint: MetricsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real Prometheus scraping ``endpoint`` every second."""
    port = free_ports(1)[0]
    env = {
        **os.environ,
        "CX_PROMETHEUS_PORT": str(port),
        "CX_PROMETHEUS_TARGET": f"127.0.0.1:{endpoint.port}",
        "CX_PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "CX_PROMETHEUS_STATE": str(tmp_path_factory.mktemp("prometheus")),
    }
    try:
        started = _script("start", env, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/prometheus.sh start did not finish in 300 s. {HOW_TO}", pytrace=False)
    if started.returncode != 0:
        output = (started.stdout + started.stderr)[-3000:]
        pytest.fail(
            f"scripts/prometheus.sh start failed (exit {started.returncode}):\n{output}\n{HOW_TO}",
            pytrace=False,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopped = _script("stop", env, timeout=60)
        assert stopped.returncode == 0, stopped.stderr


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """Result vector of an instant query; a PromQL error fails the test with its message."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        pytest.fail(f"Prometheus rejected {promql!r}: {exc.read().decode()}", pytrace=False)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(base: str, promql: str, seconds: float = WAIT_SECONDS) -> list[dict[str, Any]]:
    """Poll until the query returns something; fail naming the query otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        result = query(base, promql)
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no result for {promql!r} after {seconds} s of scraping", pytrace=False)
        time.sleep(0.5)


def values(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def test_prometheus_scrapes_the_endpoint(prometheus: str) -> None:
    up = wait_for(prometheus, 'up{job="cxstream"} == 1')
    assert len(up) == 1
    build = wait_for(prometheus, 'cx_build_info{job="cxstream"}')
    assert build[0]["metric"]["version"] and build[0]["value"][1] == "1"
    assert float(wait_for(prometheus, "process_resident_memory_bytes")[0]["value"][1]) > 1e6


def test_event_rates_are_non_zero_by_channel_and_family(prometheus: str) -> None:
    total = wait_for(prometheus, "sum(rate(cx_events_total[30s])) > 0")
    assert float(total[0]["value"][1]) > 0
    by_channel = values(
        wait_for(prometheus, "sum by (channel) (rate(cx_events_total[30s])) > 0"), "channel"
    )
    assert {"web", "call_center", "email", "chat"} <= by_channel.keys()
    outputs = values(
        wait_for(prometheus, "sum by (kind) (rate(cx_outputs_total[30s])) > 0"), "kind"
    )
    assert {"dlq", "identity", "alerts"} <= outputs.keys()


def test_dead_letters_by_reason(prometheus: str) -> None:
    reasons = values(
        wait_for(prometheus, "sum by (reason) (rate(cx_dead_letters_total[30s])) > 0"), "reason"
    )
    # the demo log carries a few broken messages of each of these kinds
    assert {"not_json", "not_utf8", "invalid_event"} <= reasons.keys()
    share = wait_for(
        prometheus,
        "sum(rate(cx_dead_letters_total[30s]))"
        " / (sum(rate(cx_events_total[30s])) + sum(rate(cx_dead_letters_total[30s])))",
    )
    assert 0 < float(share[0]["value"][1]) < 0.1


def test_histograms_give_quantiles(prometheus: str) -> None:
    p99 = wait_for(
        prometheus,
        "histogram_quantile(0.99, sum by (le, step)"
        ' (rate(cx_step_seconds_bucket{step="offline_run"}[30s])))',
    )
    assert 0 < float(p99[0]["value"][1]) < 60


def test_alerting_rules_load_and_evaluate(prometheus: str) -> None:
    wait_for(prometheus, 'up{job="cxstream"} == 1')
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=5) as response:
            groups = json.load(response)["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        evaluated = all(r["health"] == "ok" for r in rules.values())
        if rules and evaluated:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"rules not evaluated cleanly: {json.dumps(rules)[:2000]}", pytrace=False)
        time.sleep(0.5)
    assert set(rules) == {
        "CxTargetDown",
        "CxConsumerLagGrowing",
        "CxDeadLetterRateHigh",
        "CxNoInput",
        "CxE2ELatencyHigh",
    }
    assert rules["CxTargetDown"]["state"] == "inactive"
    assert rules["CxNoInput"]["state"] == "inactive"  # events are flowing


def test_every_dashboard_query_is_valid_promql(prometheus: str) -> None:
    wait_for(prometheus, 'up{job="cxstream"} == 1')
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    substitutions = {"$__rate_interval": "30s", "$job": "cxstream", "$instance": ".*"}
    answered = 0
    for expr in exprs:
        promql = expr
        for variable, value in substitutions.items():
            promql = promql.replace(variable, value)
        assert not re.search(r"\$\w", promql), f"unsubstituted variable in {expr!r}"
        answered += bool(query(prometheus, promql))
    assert answered >= len(exprs) // 2  # most panels already have data from the demo replay


def test_promtool_accepts_the_shipped_config_rules_and_rule_tests() -> None:
    checked = _script("check", dict(os.environ), timeout=300)
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:] + "\n" + HOW_TO
    assert "SUCCESS" in checked.stdout + checked.stderr
