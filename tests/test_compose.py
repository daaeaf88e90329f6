"""docker-compose.yml is durable and closed by default (issue #17): read as text, since the
machines that run the tests have no Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

COMPOSE = (Path(__file__).parents[1] / "docker-compose.yml").read_text(encoding="utf-8")


def _published() -> list[str]:
    ports, inside = [], False
    for line in COMPOSE.splitlines():
        if re.fullmatch(r"\s+ports:", line):
            inside = True
        elif inside and re.match(r"\s+- ", line):
            ports.append(line.split("- ", 1)[1].split("#")[0].strip().strip('"'))
        else:
            inside = False
    return ports


def test_every_published_port_is_bound_to_localhost() -> None:
    ports = _published()
    assert len(ports) == 5  # kafka, redis, cxstream metrics, prometheus, grafana
    assert all(p.startswith("127.0.0.1:") for p in ports), ports


def test_redis_keeps_an_aof_and_wants_a_password() -> None:
    assert re.search(r"--appendonly\n\s+- \"yes\"\n\s+- --appendfsync\n\s+- everysec", COMPOSE)
    assert "- default off" in COMPOSE
    assert "cxstream on >${CX_REDIS_PASSWORD:?" in COMPOSE
    assert "CX_REDIS__PASSWORD: ${CX_REDIS_PASSWORD:?" in COMPOSE
    assert "redis-data:/data" in COMPOSE


def test_grafana_has_no_default_password() -> None:
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?" in COMPOSE
    assert 'GF_AUTH_ANONYMOUS_ENABLED: "false"' in COMPOSE
