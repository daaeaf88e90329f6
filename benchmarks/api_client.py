r"""The API bench's clients: raw HTTP/1.1 over asyncio streams, cheap enough not to be measured.

A general-purpose client (httpx) spends about as much CPU per request as the server
it measures, on the same two cores: the old bench's 156 lookups/s were the client's
limit (the same serve took 500/s from this one). These speak just enough HTTP/1.1
for the bench: keep-alive connections, ``Content-Length`` bodies, and SSE lines.

:func:`open_loop` sends each request at its *intended* time (``start + n / rate``),
whatever the earlier ones do, over a pool of keep-alive connections, and measures
each latency from that intended time: a slow server shows as latency, not as a lower
rate (no coordinated omission).

>>> request(b"POST", b"/v1/x", b"t", b"{}")[:34]
b'POST /v1/x HTTP/1.1\r\nHost: bench\r\n'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Body = Callable[[int], bytes]


def request(method: bytes, path: bytes, token: bytes, body: bytes = b"") -> bytes:
    """Return the bytes of one HTTP/1.1 request with a bearer token."""
    head = b"%s %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n" % (
        method,
        path,
        token,
    )
    if body:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one response with a ``Content-Length`` body: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


@dataclass
class LoadResult:
    """What an open-loop run measured (latencies in ms from the intended send time)."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0


async def open_loop(  # noqa: PLR0913 (where, what, how fast)
    host: str,
    port: int,
    path: bytes,
    token: bytes,
    body: Body,
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
) -> LoadResult:
    """POST ``body(n)`` to ``path`` at ``rate`` a second for ``seconds``."""
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    result = LoadResult()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await due.get()) is not None:
                n, at = item
                writer.write(request(b"POST", path, token, body(n)))
                status, _ = await read_response(reader)
                result.latencies_ms.append((time.perf_counter() - at) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connected before the clock starts
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        at = start + n / rate
        if (wait := at - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        due.put_nowait((n, at))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed = time.perf_counter() - start
    return result


class SseClient:
    """One held ``GET /v1/stream``; ``on_data(data line, receipt time)`` sees each event."""

    def __init__(self, on_data: Callable[[bytes, float], None] | None = None) -> None:
        self.on_data = on_data
        self.connected = asyncio.Event()
        self.status = 0

    async def run(self, host: str, port: int, path: bytes, token: bytes) -> None:
        """Connect, read the stream until cancelled or the server ends it."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request(b"GET", path, token))
            head = await reader.readuntil(b"\r\n\r\n")
            self.status = int(head[9:12])
            self.connected.set()
            while line := await reader.readline():  # chunk sizes, SSE lines, blank lines
                if line.startswith(b"data: ") and self.on_data is not None:
                    self.on_data(line[6:], time.time())
        finally:
            writer.close()
