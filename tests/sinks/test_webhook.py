"""The webhook sink against a real HTTP receiver on 127.0.0.1 that fails, hangs and recovers."""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource
from cloudevents.core.bindings import http as ce_http
from pydantic import SecretStr

from flows.app.stores import make_store
from flows.dataflow import build_flow
from flows.settings import Settings
from flows.steps.encode import encode
from schemas.outputs import Alert, DeadLetter
from schemas.records import Emitted
from sinks.webhook import KafkaDeadLetters, WebhookSink, webhook_dead_letter
from sinks.webhook_config import WebhookSettings, WebhookTarget
from sinks.webhook_delivery import Answer, Outcome, deliver
from tests.conftest import make_event, raw, run_dataflow
from tests.integration.verifier import consume_all

PORT = 18418
SECRET = "whsec-test-only"
MAX_AGE_SECONDS = 300


def verify(headers: dict[str, str], body: bytes, secret: str, now: float) -> bool:
    """What the README tells receivers to do: recompute, compare in constant time, refuse stale."""
    timestamp = headers["x-cx-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    signature_ok = hmac.compare_digest(f"sha256={expected.hexdigest()}", headers["x-cx-signature"])
    return signature_ok and abs(now - int(timestamp)) <= MAX_AGE_SECONDS


class Receiver:
    """A real HTTP server whose next answers the test scripts: status codes or 'hang'."""

    def __init__(self, port: int) -> None:
        self.script: list[Any] = []
        self.requests: list[tuple[dict[str, str], bytes, float]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    outer.requests.append((headers, body, time.time()))
                    step = outer.script.pop(0) if outer.script else 200
                if step == "hang":
                    time.sleep(1.5)
                    step = 200
                status, extra = step if isinstance(step, tuple) else (step, {})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                answer = b"ok" if status < 300 else f"no: {status}".encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(PORT)
    yield server
    server.close()


def target(**overrides: Any) -> WebhookTarget:
    values: dict[str, Any] = {
        "name": "desk",
        "kind": "alerts",
        "url": f"http://127.0.0.1:{PORT}/hooks/cx?team=care",
        "secret": SecretStr(SECRET),
        "match": {"kind": ["detractor"], "severity": ["high"]},
        "timeout_seconds": 0.5,
        "max_attempts": 5,
        "backoff_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
        **overrides,
    }
    return WebhookTarget(**values)


def alert(n: int, kind: str = "detractor", severity: str = "high") -> Emitted:
    model = Alert.model_validate(
        {
            "id": f"alert-{n}",
            "kind": kind,
            "severity": severity,
            "customer_id": f"c{n}",
            "time": "2026-03-02T10:00:00Z",
            "message": "NPS 2 from a customer",
        }
    )
    ((_, out),) = encode(model)
    return out


def test_a_receiver_that_fails_then_hangs_then_recovers_gets_the_record_signed(
    receiver: Receiver,
) -> None:
    receiver.script = [503, 500, "hang", 200]
    out = alert(1)
    outcome = deliver(target(), out.value or b"", out.headers, rng=random.Random(1))
    assert outcome.answer.delivered and outcome.attempts == 4
    assert len(receiver.requests) == 4
    for headers, body, received in receiver.requests:
        assert body == out.value  # the record JSON, unchanged
        assert verify(headers, body, SECRET, received)
        assert not verify(headers, body, "another secret", received)
        assert not verify(headers, body + b" ", SECRET, received)  # a changed body fails
    # A CloudEvent in binary mode, as the official SDK reads it.
    headers, body, _ = receiver.requests[-1]
    event = ce_http.from_http_event(ce_http.HTTPMessage(headers=headers, body=body))
    assert event.get_id() == "alert-1" and event.get_type() == "cx.alert.raised"
    assert event.get_subject() == "c1" and event.get_source() == "/cxstream"
    sent_at = event.get_time()
    assert sent_at is not None and sent_at.isoformat() == "2026-03-02T10:00:00+00:00"
    assert event.get_data() == orjson.loads(out.value or b"")


def test_a_4xx_is_final_but_429_waits_for_retry_after(receiver: Receiver) -> None:
    receiver.script = [400]
    out = alert(2)
    refused = deliver(target(), out.value or b"", out.headers)
    assert refused.attempts == 1 and refused.answer.status == 400
    assert "no: 400" in refused.answer.detail
    receiver.script = [(429, {"Retry-After": "1"}), 200]
    start = time.monotonic()
    waited = deliver(target(), out.value or b"", out.headers)
    assert waited.answer.delivered and waited.attempts == 2
    assert time.monotonic() - start >= 1.0
    first, second = receiver.requests[-2][2], receiver.requests[-1][2]
    assert second - first >= 1.0


def test_backoff_is_capped_exponential_with_jitter() -> None:
    waits: list[float] = []
    answers = iter([Answer(503, "HTTP 503")] * 6)
    outcome = deliver(
        target(backoff_seconds=1.0, backoff_cap_seconds=4.0, max_attempts=6),
        b"{}",
        (),
        post=lambda *_: next(answers),
        sleep=waits.append,
        rng=random.Random(7),
    )
    assert outcome.attempts == 6 and not outcome.answer.delivered
    assert len(waits) == 5
    assert all(0 <= w <= min(4.0, 2.0**n) for n, w in enumerate(waits))
    assert len(set(waits)) == 5  # jittered


def _sink(dead: list[Emitted], **overrides: Any) -> WebhookSink:
    settings = WebhookSettings(targets=[target(**overrides)], concurrency=2)
    return WebhookSink(settings, dead.append)


def test_the_sink_never_blocks_and_dead_letters_what_is_never_taken(receiver: Receiver) -> None:
    dead: list[Emitted] = []
    sink = _sink(dead, max_attempts=2)
    part = sink.build_part("webhooks", "webhooks", None)
    receiver.script = ["hang", "hang", "hang", "hang", 503, 503]
    items = [alert(10), alert(11), alert(12, severity="low"), alert(13, kind="sla_breach")]
    assert [sink.wants(("alerts", o)) for o in items] == [True] * 4
    start = time.monotonic()
    part.write_batch(items)
    assert time.monotonic() - start < 0.2  # handed to the pool, not sent
    assert part.pending() == 2  # only high detractors match
    assert len(part.snapshot()) == 2
    part.close()  # end of input: waits for the deliveries
    assert part.pending() == 0
    assert {orjson.loads(d.value or b"")["reason"] for d in dead} == {"webhook_failed"}
    letters = [DeadLetter.model_validate_json(d.value or b"") for d in dead]
    assert sorted(len(letter.error) > 0 for letter in letters) == [True, True]
    assert all("timeout" in letter.error for letter in letters)


def test_pending_deliveries_survive_a_crash(receiver: Receiver) -> None:
    dead: list[Emitted] = []
    stuck = threading.Event()

    def never_answers(*_: Any) -> Outcome:
        stuck.wait(10)  # the process dies before this delivery ends
        return Outcome(1, Answer(None, "killed"))

    settings = WebhookSettings(targets=[target()])
    before = WebhookSink(settings, dead.append, send=never_answers).build_part(
        "w", "webhooks", None
    )
    before.write_batch([alert(20), alert(21, severity="low")])
    snapshot = before.snapshot()  # what Bytewax's recovery store keeps at the epoch's end
    assert [pending[3] for pending in snapshot] == ["alert-20"]
    # the resumed run, from that snapshot, with the real receiver
    after = WebhookSink(settings, dead.append).build_part("w", "webhooks", snapshot)
    after.close()
    assert [orjson.loads(body)["id"] for _, body, _ in receiver.requests] == ["alert-20"]
    assert dead == []
    stuck.set()
    before.close()


def test_a_full_queue_dead_letters_at_once_with_the_record() -> None:
    dead: list[Emitted] = []
    settings = WebhookSettings(targets=[target(url="http://127.0.0.1:9/")], max_pending=1)
    release = threading.Event()

    def slow(*_: Any) -> Outcome:
        release.wait(5)
        return Outcome(1, Answer(200, "HTTP 200"))

    part = WebhookSink(settings, dead.append, send=slow).build_part("w", "webhooks", None)
    part.write_batch([alert(30), alert(31)])
    assert len(dead) == 1 and "max_pending" in (dead[0].value or b"").decode()
    letter = DeadLetter.model_validate_json(dead[0].value or b"")
    assert letter.original_b64 and letter.headers[0][0] == "cx-id"
    release.set()
    part.close()


def test_a_dead_letter_is_deterministic_and_keeps_the_record() -> None:
    out = alert(40)
    outcome = Outcome(3, Answer(503, "HTTP 503 Service Unavailable: down"))
    first, again = (
        webhook_dead_letter(target(), out, outcome),
        webhook_dead_letter(target(), out, outcome),
    )
    assert first == again
    assert dict(first.headers)["ce_type"] == b"cx.event.dead_lettered"
    assert "last answer: HTTP 503" in orjson.loads(first.value or b"")["error"]


def test_secrets_are_never_shown() -> None:
    settings = WebhookSettings(targets=[target()])
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_in_the_flow_the_matching_outputs_reach_the_receiver(receiver: Receiver) -> None:
    collected: list[tuple[str, Emitted]] = []
    dead: list[Emitted] = []
    # every profile the flow publishes, to the real receiver
    webhooks = WebhookSink(
        WebhookSettings(targets=[target(kind="profiles", match={})]), dead.append
    )
    messages = [raw(make_event(n), offset=n) for n in range(5)]

    def inputs(flow: Dataflow) -> Any:
        return op.input("input", flow, TestingSource(messages, 2))

    settings = Settings()
    flow = build_flow(
        settings, inputs, TestingSink(collected), make_store(settings, default="memory"),
        webhooks=webhooks,
    )  # fmt: skip
    run_dataflow(flow)
    profiles = {out.id for kind, out in collected if kind == "profiles" and out.value}
    assert profiles
    got = {headers["ce-id"] for headers, _, _ in receiver.requests}
    assert got == profiles and dead == []


def test_dead_letters_reach_the_dead_letter_topic_on_the_real_broker(
    kafka_brokers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}cx.dlq"
    written: list[tuple[str, int]] = []
    dead = KafkaDeadLetters(
        {"bootstrap.servers": kafka_brokers}, topic, on_write=lambda k, n: written.append((k, n))
    )
    out = alert(50)
    letter = webhook_dead_letter(target(), out, Outcome(6, Answer(None, "no answer (timeout)")))
    dead(letter)
    (message,) = consume_all(kafka_brokers, topic)
    assert message.value() == letter.value and message.key() == letter.key.encode()
    assert dict(message.headers())["cx-reason"] == b"webhook_failed"
    assert written == [("dlq", 1)]
