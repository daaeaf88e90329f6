"""One HTTP endpoint per process: ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` is prometheus_client's default registry in the text format (OpenMetrics
and gzip when the scraper asks): cxstream's series from :mod:`flows.metrics`, the
process and Python collectors, and Bytewax's ``bytewax_kafka_consumer_lag`` gauge,
which its Kafka source registers there too. (Bytewax's Rust-side step metrics are
not in that registry: they are only served by its own API server, see
``BYTEWAX_DATAFLOW_API_ENABLED``.)

``/healthz`` (liveness) is 200 while the process runs and the flow has not failed,
else 503 with the reason. ``/readyz`` is 200 once the flow has started and every
dependency check passes; checks run in parallel with a timeout and their results
are cached for a few seconds, so probes never pile up on a slow dependency.

>>> health = Health({"always": lambda: None})
>>> health.readiness()[0], health.liveness()[0]
(False, True)
>>> health.started()
>>> health.readiness()
(True, {'status': 'ready', 'checks': {'always': 'ok'}})
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

import redis
from confluent_kafka.admin import AdminClient
from prometheus_client import MetricsHandler
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from flows import timing
from flows.settings import Settings
from schemas.vocabulary import SCRIPT_OPS
from state.redis_store import cluster_url

# The script operation's position in ``EVALSHA sha numkeys [keys] prefix op ...``
# (numkeys 0 on one server; 1, the hash-tagged prefix, on a cluster).
_SCRIPT_OP_ARG = 4
_NUMKEYS_ARG = 2


Check = Callable[[], None]
"""A dependency check: returns when the dependency answers, raises otherwise."""

MAX_ERROR_CHARS = 300


class Health:
    """What the runner tells the endpoint: started, failed, and how to check dependencies.

    Parameters
    ----------
    checks
        Dependency name -> check (e.g. ``{"redis": ..., "kafka": ...}``).
    timeout
        Seconds a round of checks may take; a check still running after it fails.
    cache_seconds
        Check results are reused for this long.
    clock
        Monotonic seconds, for the cache (tests pass a fake).
    """

    def __init__(
        self,
        checks: Mapping[str, Check] | None = None,
        *,
        timeout: float = 2.0,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks: dict[str, Check] = dict(checks or {})
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._started = False
        self._failure: str | None = None
        self._lock = threading.Lock()
        self._results: dict[str, str] | None = None
        self._checked_at = 0.0
        self._running: dict[str, threading.Thread] = {}

    def started(self) -> None:
        """Mark the flow as running (call right before handing control to Bytewax)."""
        self._started = True

    def failed(self, reason: str) -> None:
        """Mark the flow as stopped with an error: liveness and readiness fail from now on."""
        self._failure = reason[:MAX_ERROR_CHARS] or "failed"

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        if self._failure is not None:
            return False, {"status": "failed", "reason": self._failure}
        return True, {"status": "ok"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        results = self.check_dependencies()
        failed = sorted(name for name, result in results.items() if result != "ok")
        reasons = []
        if self._failure is not None:
            reasons.append(f"flow failed: {self._failure}")
        elif not self._started:
            reasons.append("flow not started")
        if failed:
            reasons.append(f"dependency failed: {', '.join(failed)}")
        if not reasons:
            return True, {"status": "ready", "checks": results}
        body = {"status": "not_ready", "reason": "; ".join(reasons), "failed": failed}
        return False, {**body, "checks": results}

    def check_dependencies(self) -> dict[str, str]:
        """Name -> ``"ok"`` or the error, from cache when fresh enough."""
        with self._lock:
            if self._results is not None and self._clock() - self._checked_at < self.cache_seconds:
                return self._results
            self._results = self._run_checks()
            self._checked_at = self._clock()
            return self._results

    def _run_checks(self) -> dict[str, str]:
        results: dict[str, str] = {}
        pending: dict[str, tuple[threading.Thread, list[str]]] = {}
        for name, check in self.checks.items():
            earlier = self._running.get(name)
            if earlier is not None and earlier.is_alive():
                # never stack threads on a dependency that hangs
                results[name] = f"an earlier check is still running after {self.timeout}s"
                continue
            box: list[str] = []
            thread = threading.Thread(
                target=_run_check, args=(check, box), name=f"cx-check-{name}", daemon=True
            )
            thread.start()
            pending[name] = (thread, box)
        deadline = time.monotonic() + self.timeout
        for name, (thread, box) in pending.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._running[name] = thread
                results[name] = f"timed out after {self.timeout}s"
            else:
                self._running.pop(name, None)
                results[name] = box[0] if box else "ok"
        return {name: results[name] for name in self.checks}


def _run_check(check: Check, box: list[str]) -> None:
    try:
        check()
    except Exception as exc:  # any failure is the answer
        box.append(f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or "error")


# ---------------------------------------------------------------- dependency checks


def redis_ping(client: redis.Redis) -> Check:
    """Return a check that sends PING (give the client short socket timeouts)."""

    def check() -> None:
        if not client.ping():
            msg = "PING was not answered with PONG"
            raise RuntimeError(msg)

    return check


def kafka_metadata(
    client_config: Mapping[str, str], topics: Sequence[str], timeout: float = 2.0
) -> Check:
    """Return a check that fetches cluster metadata and finds ``topics`` without errors."""
    admin: list[Any] = []  # one client, made on first use and kept (it owns threads)

    def check() -> None:
        if not admin:
            admin.append(AdminClient({**client_config}))
        # all topics: asking for named ones may auto-create them on some brokers
        found = admin[0].list_topics(timeout=timeout).topics
        missing = [name for name in topics if name not in found]
        if missing:
            msg = f"topic(s) missing: {', '.join(missing)}"
            raise RuntimeError(msg)
        for name in topics:
            if found[name].error is not None:
                msg = f"topic {name}: {found[name].error.str()}"
                raise RuntimeError(msg)

    return check


def dependency_checks(
    settings: Settings, *, use_redis: bool = True, timeout: float = 1.5
) -> dict[str, Check]:
    """Return the dependency checks of ``cxstream run``.

    Redis PING (when the store is Redis) and Kafka metadata for the input topics,
    each giving up after ``timeout`` seconds (keep it below :attr:`Health.timeout`
    so the answer names the error, not a timeout).
    """
    checks: dict[str, Check] = {}
    if use_redis:
        conf = settings.redis
        client = redis.Redis.from_url(
            cluster_url(conf.url) or conf.url,  # a cluster: its first node answers PING
            **conf.connection_kwargs(),  # credentials and TLS, as the store connects
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a probe answers now; the store's client retries
        )
        checks["redis"] = redis_ping(client)
    inputs = [settings.topics.events, settings.identity.privacy_topic]
    checks["kafka"] = kafka_metadata(settings.kafka.client_config(), inputs, timeout)
    return checks


# ---------------------------------------------------------------- instrumented Redis

#: Operations of state/lua/identity.lua; anything else is ``script_other``.
REDIS_SCRIPT_OPS = SCRIPT_OPS


def redis_op(args: Sequence[Any]) -> str:
    """Return the ``op`` label of one Redis command.

    That is the script operation for EVALSHA/EVAL (``EVALSHA sha 0 prefix op ...``),
    else the command's name.

    >>> redis_op(("EVALSHA", "ab12", 0, "cx:", "resolve", "{}"))
    'resolve'
    >>> redis_op(("SCAN", 0)), redis_op(("EVALSHA", "ab12", 0, "cx:", "drop_all"))
    ('scan', 'script_other')
    >>> redis_op(("EVALSHA", "ab12", 1, "cx:{cx:}", "cx:{cx:}", "profile"))
    'profile'
    """
    command = str(args[0]).lower() if args else "unknown"
    if command in ("evalsha", "eval", "evalsha_ro", "eval_ro"):
        numkeys = str(args[_NUMKEYS_ARG]) if len(args) > _NUMKEYS_ARG else "0"
        at = _SCRIPT_OP_ARG + (int(numkeys) if numkeys.isdigit() else 0)
        op = args[at] if len(args) > at else None
        op = op.decode(errors="replace") if isinstance(op, bytes) else op
        return op if op in REDIS_SCRIPT_OPS else "script_other"
    return command[:32]


class InstrumentedRedis(redis.Redis):
    """A ``redis.Redis`` whose every command is counted and timed in ``cx_redis_*{op}``.

    Drop-in for the client ``RedisProfileStore`` gets (``InstrumentedRedis.from_url``):
    the store itself needs no change. Pipelines are not instrumented.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        with timing.redis_call(redis_op(args)):
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


class InstrumentedRedisCluster(RedisCluster):
    """:class:`InstrumentedRedis` for a Redis Cluster (``CX_REDIS__CLUSTER``)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with timing.redis_call(redis_op(args)):
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------- the HTTP server


class _Handler(MetricsHandler):
    health: ClassVar[Health]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path == "/metrics":
            super().do_GET()
        elif path == "/healthz":
            self._json(*self.health.liveness())
        elif path == "/readyz":
            self._json(*self.health.readiness())
        else:
            self._json(False, {"error": "not found; try /metrics, /healthz or /readyz"}, 404)

    def _json(self, ok: bool, body: dict[str, Any], status: int | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status or (200 if ok else 503))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class MetricsServer:
    """A running endpoint; :meth:`close` (or ``with``) stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        """Return the server itself; it is already serving."""
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Stop serving (see :meth:`close`)."""
        self.close()


def serve(host: str, port: int, health: Health) -> MetricsServer:
    """Serve /metrics, /healthz and /readyz on ``host:port`` (0: any free port).

    The server runs on a daemon thread; this returns at once.
    """
    handler = type("CxHandler", (_Handler,), {"health": health})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("CxServer", (_Server,), {"address_family": family})
    try:
        httpd = server_class((host, port), handler)
    except OSError as exc:
        msg = f"cannot serve metrics on {host}:{port} ({exc.strerror}); set CX_METRICS__PORT"
        raise OSError(exc.errno, msg) from exc
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="cx-metrics", daemon=True
    )
    thread.start()
    return MetricsServer(httpd, thread)
