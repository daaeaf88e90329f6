"""Bearer tokens with scopes, and a per-token rate limit.

A request's token is hashed (SHA-256) and compared, in constant time, with every
configured digest (``CX_API__TOKENS``): the time taken does not tell how close a
guess came nor which entry matched. No token, an unknown one -> 401; a known token
without the endpoint's scope -> 403; over its rate (a token bucket per token) -> 429
with ``Retry-After``. Neither a token nor its digest is ever logged or echoed.

>>> auth = TokenAuth({token_digest("s3cret"): frozenset({"stream:read"})}, rate=1, burst=1)
>>> auth.check("Bearer s3cret", "stream:read") == token_digest("s3cret")
True
>>> auth.check("Bearer s3cret", "stream:read")
Traceback (most recent call last):
...
api.auth.AuthError: (429, 'too many requests for this token: at most 1/s; retry after 1 s')
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Mapping


class AuthError(Exception):
    """A refused request: ``status`` (401, 403, 429) and a message that says what to do."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest of a token, as ``CX_API__TOKENS`` lists it."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenAuth:
    """Checks bearer tokens against the configured digests and their scopes."""

    def __init__(
        self,
        tokens: Mapping[str, frozenset[str]],
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tuple((d.encode(), d, scopes) for d, scopes in tokens.items())
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # digest -> (tokens, at)
        self._lock = threading.Lock()

    def _match(self, presented: str) -> tuple[str, frozenset[str]] | None:
        wanted = token_digest(presented).encode()
        found = None
        for raw, digest, scopes in self._tokens:  # every entry, match or not
            if hmac.compare_digest(raw, wanted):
                found = (digest, scopes)
        return found

    def check(self, authorization: str | None, scope: str) -> str:
        """Return the token's digest if it may use ``scope`` now, else raise :class:`AuthError`."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            msg = "missing bearer token: send the header 'Authorization: Bearer <token>'"
            raise AuthError(401, msg)
        found = self._match(presented.strip())
        if found is None:
            raise AuthError(401, "unknown bearer token: check the token, or ask for one")
        digest, scopes = found
        if scope not in scopes:
            raise AuthError(403, f"this token lacks the scope {scope!r} this endpoint needs")
        self._take(digest)
        return digest

    def _take(self, digest: str) -> None:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(digest, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[digest] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate)
                msg = (
                    f"too many requests for this token: at most {self.rate:g}/s; "
                    f"retry after {wait} s"
                )
                raise AuthError(429, msg, retry_after=wait)
            self._buckets[digest] = (tokens - 1, now)
