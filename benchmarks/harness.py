r"""Isolation and process control for the benchmark: topics, Redis keys, flow processes.

Every bench run uses a unique prefix for its topics and Redis keys
(``bench<hex>.``) and deletes them at the end, so it never touches ``cx.*`` or
another run's data. Each phase (a flow run) gets its own output topics and
Redis key prefix; the pre-filled input topic is shared.

>>> sample = parse_metrics('cx_step_seconds_sum{step="decode"} 1.5\nup 1\n')
>>> total(sample, "cx_step_seconds_sum", step="decode"), total(sample, "up")
(1.5, 1.0)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from prometheus_client.parser import text_string_to_metric_families

from schemas.records import OUTPUT_KINDS

REPO = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus text format -> ``{(sample name, labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``{label value: sum}`` of the samples called ``name``."""
    out: dict[str, float] = {}
    for (n, lab), v in samples.items():
        if n == name:
            key = dict(lab).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def free_port_pair() -> int:
    """Return a port p with p and p + 1 free (process i of a cluster serves on p + i)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    msg = "no two consecutive free ports"
    raise RuntimeError(msg)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class BenchEnv:
    """One bench run's isolated names, and their cleanup."""

    brokers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}.")
    partitions: int = 2
    # Recovery snapshots (on by default in `cxstream run`) go here, one directory per
    # phase, so no phase resumes from another's state.
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cxbench-")))

    @property
    def client_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.brokers}

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.brokers})

    def input_topic(self, name: str = "in") -> str:
        return f"{self.prefix}{name}.cx.events"

    def output_topics(self, phase: str) -> dict[str, str]:
        return {kind: f"{self.prefix}{phase}.cx.{kind}" for kind in OUTPUT_KINDS}

    def flow_env(self, phase: str, input_topic: str, metrics_port: int) -> dict[str, str]:
        """Environment of a ``cxstream run`` process for ``phase``."""
        outputs = self.output_topics(phase)
        return {
            **os.environ,
            "CX_KAFKA__BROKERS": self.brokers,
            "CX_REDIS__URL": self.redis_url,
            "CX_REDIS__PREFIX": f"{self.prefix}{phase}:",
            "CX_IDENTITY__STORE": "redis",
            "CX_IDENTITY__PRIVACY_TOPIC": f"{self.prefix}cx.privacy",
            "CX_TOPICS__EVENTS": input_topic,
            "CX_TOPICS__PARTITIONS": str(self.partitions),
            "CX_METRICS__ENABLED": "true",
            "CX_METRICS__PORT": str(metrics_port),
            "CX_RECOVERY__DIRECTORY": str(self.workdir / phase / "recovery"),
            **{f"CX_TOPICS__{kind.upper()}": name for kind, name in outputs.items()},
        }

    def create_topic(self, name: str) -> None:
        admin = self._admin()
        future = admin.create_topics([NewTopic(name, self.partitions, 1)])[name]
        future.result(timeout=30)

    def cleanup(self) -> None:
        """Delete this run's topics, Redis keys and recovery snapshots."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        admin = self._admin()
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result(timeout=60)
        client = redis.Redis.from_url(self.redis_url)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        finally:
            client.close()


def reset_redis_stats(url: str) -> float:
    """``CONFIG RESETSTAT`` (per-command counters to zero); the server's main-thread CPU s."""
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
        return _main_thread_cpu(client)
    finally:
        client.close()


def _main_thread_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def redis_server_time(url: str, cpu_at_reset: float) -> tuple[float, dict[str, float]]:
    """Server main-thread CPU microseconds since the reset, and ``{command: microseconds}``.

    The first is what the server spent (commands, replies, its own housekeeping); the
    second comes from ``INFO commandstats``, where a command a script runs is counted
    both on its own and within the script's EVALSHA: read it per command, do not add
    it up. Commands of under 1 ms in all are left out.
    """
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        cpu_us = (_main_thread_cpu(client) - cpu_at_reset) * 1e6
    finally:
        client.close()
    out = {}
    for name, row in stats.items():
        cmd = name.removeprefix("cmdstat_")
        if cmd not in {"info", "config|resetstat", "ping"} and float(row["usec"]) >= 1000:
            out[cmd] = float(row["usec"])
    return cpu_us, dict(sorted(out.items(), key=lambda kv: -kv[1]))


class FlowCluster:
    """``cxstream run`` as 1 or N local processes (one Bytewax cluster).

    They start as ``cxstream run -p N`` starts them; the cluster knows their
    /metrics endpoints and process ids.
    """

    def __init__(self, env: dict[str, str], processes: int, *, tail: bool) -> None:
        self.port = int(env["CX_METRICS__PORT"])
        self.processes = processes
        base = [sys.executable, "-m", "flows.app.cli", "run"]
        if not tail:
            base.append("--no-tail")
        if processes == 1:
            commands = [base]
        else:
            ports = [free_port_pair() + 1000 for _ in range(processes)]
            addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
            commands = [
                [*base, "--process-id", str(i), "--addresses", addresses] for i in range(processes)
            ]
        # stderr to files, not pipes: a chatty process must never block on a full pipe
        self._logs = [tempfile.TemporaryFile("w+") for _ in commands]  # noqa: SIM115 (closed in stop)
        self.children = [
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
            for cmd, log in zip(commands, self._logs, strict=True)
        ]

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of every process's output, for error messages."""
        tails = []
        for log in self._logs:
            log.seek(0)
            tails.append(log.read()[-chars:])
        return "\n".join(tails)

    def scrape(self) -> Samples:
        """Every process's /metrics, summed; processes not (or no longer) serving add nothing."""
        merged: Samples = {}
        for i in range(self.processes):
            try:
                url = f"http://127.0.0.1:{self.port + i}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                continue
            for key, value in parse_metrics(text).items():
                merged[key] = merged.get(key, 0.0) + value
        return merged

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Until every process serves /metrics (the flow is being built)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            served = 0
            for i in range(self.processes):
                try:
                    url = f"http://127.0.0.1:{self.port + i}/healthz"
                    with urllib.request.urlopen(url, timeout=2):
                        served += 1
                except OSError:
                    pass
            if served == self.processes:
                return
            time.sleep(0.2)
        msg = f"the flow did not serve /metrics within {timeout} s"
        raise RuntimeError(msg)

    def rss(self) -> int:
        return sum(rss_bytes(child.pid) for child in self.children)

    def running(self) -> bool:
        return any(child.poll() is None for child in self.children)

    def check_alive(self) -> None:
        for child in self.children:
            code = child.poll()
            if code not in (None, 0):
                msg = f"the flow exited with {code}: {self.log_tail()}"
                raise RuntimeError(msg)

    def wait(self, timeout: float) -> None:
        """Until every process has exited; raise if one failed."""
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                msg = f"the flow did not finish within {timeout} s"
                raise RuntimeError(msg) from None
            if child.returncode != 0:
                msg = f"the flow exited with {child.returncode}: {self.log_tail()}"
                raise RuntimeError(msg)

    def stop(self) -> None:
        """SIGTERM every process still running, then wait (SIGKILL after 30 s)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for log in self._logs:
            log.close()
