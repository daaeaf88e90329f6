"""``cxstream demo --serve``: the demo's results served with the embedded store, no servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from schemas.records import OUTPUT_KINDS
from tests.api.conftest import DEMO_EMAIL, free_port

REPO = Path(__file__).resolve().parents[2]


def test_demo_serve_prints_the_desktop_and_serves_the_results(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CX_KAFKA__BROKERS": "127.0.0.1:1", "CX_REDIS__URL": "redis://127.0.0.1:1"}
    command = [sys.executable, "-m", "flows.app.cli", "demo", "--serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--out", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,  # no Kafka, no Redis: the demo needs neither
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = None
        deadline = time.monotonic() + 240
        lines = []
        while address is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            address = re.search(r"(http://127\.0\.0\.1:\d+/desktop/)#token=(\S+)", line)
        assert address is not None, "".join(lines)
        url, token = address.group(1), address.group(2)
        base = url.removesuffix("/desktop/")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert "cxstream agent desktop" in httpx.get(url).text
        auth = {"Authorization": f"Bearer {token}"}
        found = httpx.post(
            f"{base}/v1/profiles/lookup", json={"type": "email", "value": DEMO_EMAIL}, headers=auth
        )
        assert found.status_code == 200
        cid = found.json()["customer_id"]
        actions = httpx.get(f"{base}/v1/customers/{cid}/actions", headers=auth).json()
        assert len(actions["nbas"]) == 2
        assert httpx.get(f"{base}/v1/customers/{cid}/actions").status_code == 401
        assert (tmp_path / "demo" / "nba.jsonl").stat().st_size > 0  # the demo's outputs too
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_runs_on_the_real_services(
    kafka_brokers: str, redis_url: str, topic_prefix: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CX_KAFKA__BROKERS": kafka_brokers,
        "CX_REDIS__URL": redis_url,
        "CX_REDIS__PREFIX": f"test:{topic_prefix}",
        **{f"CX_TOPICS__{k.upper()}": f"{topic_prefix}cx.{k}" for k in (*OUTPUT_KINDS, "events")},
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                if health["stream"] == "ready":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.stderr else ""
        assert (health["status"], health["store"], health["stream"]) == ("ok", "ok", "ready")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/customers/x").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_without_redis_says_what_to_do() -> None:
    env = {**os.environ, "CX_REDIS__URL": "redis://127.0.0.1:1"}
    run = subprocess.run(
        [sys.executable, "-m", "flows.app.cli", "serve", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1:1" in run.stderr
    assert "Traceback" not in run.stderr
