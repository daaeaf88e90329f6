"""Webhook delivery: one output as a signed CloudEvent over HTTP, with retries.

The request is the HTTP binding's binary mode: the record JSON as the body, its
attributes in ``ce-*`` headers (from the output's Kafka ``ce_*`` headers,
percent-encoded as the binding says), and two headers that let the receiver check
it and refuse replays:

- ``X-Cx-Timestamp``: the Unix time (seconds) of this attempt;
- ``X-Cx-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed by the target's secret,
  of ``timestamp + "." + body``.

>>> sign("s3cret", 1700000000, b'{"id":"a1"}')
'sha256=d1ea76a131dfb0bdcf1bd6fde2f6a1db2a1a2c6e9a1ab5ecb4b4e8c4818acd5b'

Retries (:func:`deliver`): 5xx answers, timeouts and refused connections are tried
again after a capped exponential backoff with full jitter; 429 too, after its
``Retry-After``; any other answer (a 4xx says the request itself is wrong) is final.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote, urlsplit

from sinks.webhook_config import WebhookTarget

#: Characters of an attribute value sent as they are; the rest are percent-encoded.
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
#: How much of a receiver's answer a dead letter keeps.
ANSWER_CHARS: Final = 500

Post = Callable[[WebhookTarget, bytes, dict[str, str]], "Answer"]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a receiver said: an HTTP status (None: no answer) and a short description."""

    status: int | None
    detail: str
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        """A 2xx status."""
        return self.status is not None and 200 <= self.status < 300  # noqa: PLR2004 (2xx)

    @property
    def retryable(self) -> bool:
        """No answer, a 5xx, or a 429 (too many requests)."""
        return self.status is None or self.status >= 500 or self.status == 429  # noqa: PLR2004 (HTTP statuses)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Cx-Signature`` of a body sent at ``timestamp`` (see the module)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def request_headers(
    target: WebhookTarget, body: bytes, kafka_headers: Sequence[tuple[str, bytes]], now: float
) -> dict[str, str]:
    """Return the HTTP headers of one attempt: the CloudEvent's, the timestamp and the signature."""
    headers: dict[str, str] = {}
    for name, value in kafka_headers:
        if name.startswith("ce_"):
            headers[f"ce-{name[3:]}"] = quote(value.decode("utf-8", "replace"), safe=_SAFE)
        elif name == "content-type":
            headers["Content-Type"] = value.decode("utf-8", "replace")
    timestamp = int(now)
    headers["X-Cx-Timestamp"] = str(timestamp)
    headers["X-Cx-Signature"] = sign(target.secret.get_secret_value(), timestamp, body)
    return headers


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def http_post(target: WebhookTarget, body: bytes, headers: dict[str, str]) -> Answer:
    """POST once; a timeout or a connection failure is an answer without a status."""
    url = urlsplit(target.url)
    conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_type(url.hostname or "", url.port, timeout=target.timeout_seconds)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        text = response.read(ANSWER_CHARS).decode("utf-8", "replace")
        detail = f"HTTP {response.status} {response.reason}: {text}".strip()
        retry_after = _retry_after(response.getheader("Retry-After"), time.time())
        return Answer(response.status, detail[:ANSWER_CHARS], retry_after)
    except TimeoutError:
        return Answer(None, f"no answer within {target.timeout_seconds} s (timeout)")
    except OSError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:ANSWER_CHARS])
    except http.client.HTTPException as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:ANSWER_CHARS])
    finally:
        conn.close()


def backoff(attempt: int, target: WebhookTarget, rng: random.Random) -> float:
    """Full jitter: a uniform wait up to ``base * 2**attempt``, capped.

    >>> from pydantic import SecretStr
    >>> t = WebhookTarget(name="t", kind="alerts", url="http://x", secret=SecretStr("s"),
    ...     backoff_seconds=1.0, backoff_cap_seconds=5.0)
    >>> all(0 <= backoff(n, t, random.Random(n)) <= min(5.0, 2**n) for n in range(10))
    True
    """
    ceiling = min(target.backoff_cap_seconds, target.backoff_seconds * 2**attempt)
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ended: the attempts made and the last answer."""

    attempts: int
    answer: Answer


def deliver(  # noqa: PLR0913 (what to send; the clock, randomness and transport are injectable)
    target: WebhookTarget,
    body: bytes,
    kafka_headers: Sequence[tuple[str, bytes]],
    *,
    post: Post = http_post,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> Outcome:
    """Send until delivered, refused (a final answer) or out of attempts."""
    rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
    attempt = 0
    while True:
        answer = post(target, body, request_headers(target, body, kafka_headers, clock()))
        attempt += 1
        if answer.delivered or not answer.retryable or attempt >= target.max_attempts:
            return Outcome(attempt, answer)
        wait = backoff(attempt - 1, target, rng)
        if answer.status == 429 and answer.retry_after is not None:  # noqa: PLR2004 (too many requests)
            wait = min(answer.retry_after, target.max_retry_after_seconds)
        sleep(wait)
