"""Noticing a librdkafka client that has lost every broker for good.

librdkafka 2.13 and later (confluent-kafka 2.16.1 bundles 2.16.0) drops every broker it
knows when a Metadata reply lists no brokers while it lists topics (librdkafka issue
#5301, fix proposed in PR #5303, not released). A KRaft broker sends exactly that
reply during a controlled shutdown, in the moment between fencing itself and closing
its listener; clients ask for metadata just then, because their fetches fail with
``FENCED_LEADER_EPOCH``. A client whose request lands in that window keeps no broker,
not even its bootstrap servers, and stops re-bootstrapping: it never connects again,
sends nothing, receives nothing and reports no error. A consumer then waits forever
for messages (or the end of its partition); a producer's ``flush()`` never returns.

The only state librdkafka reports for it is in its statistics: a healthy client lists
at least one ``configured`` (bootstrap) or ``learned`` broker, even while all of them
are down, because it keeps reconnecting to them; a stranded one lists only
``logical`` ones (the group coordinator handle). :class:`BrokerWatch` reads the
statistics and says when a client has been stranded for
:data:`STRANDED_AFTER_SECONDS`; its owner then replaces the client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

#: How long a client may list no real broker before it is taken as stranded. A
#: re-bootstrap swaps learned brokers for the bootstrap ones within one statistics
#: interval, so a few seconds of none is never a normal state.
STRANDED_AFTER_SECONDS = 5.0

#: librdkafka's statistics interval for the clients cxstream watches (ms).
STATS_INTERVAL_MS = 1000

_REAL_SOURCES = frozenset({"configured", "learned"})


def lists_a_broker(stats: dict[str, object]) -> bool:
    """Whether librdkafka's statistics name a broker the client can (re)connect to."""
    brokers = stats.get("brokers")
    if not isinstance(brokers, dict):
        return True  # not a statistics object we understand: assume healthy
    return any(isinstance(b, dict) and b.get("source") in _REAL_SOURCES for b in brokers.values())


class BrokerWatch:
    """Fed librdkafka's statistics (``stats_cb``); tells when the client is stranded."""

    def __init__(
        self,
        stranded_after: float = STRANDED_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._after = stranded_after
        self._clock = clock
        self._since: float | None = None
        self.last_stats: dict[str, object] = {}

    def observe(self, json_stats: str) -> dict[str, object]:
        """Take one statistics document; return it parsed."""
        stats: dict[str, object] = json.loads(json_stats)
        self.last_stats = stats
        if lists_a_broker(stats):
            self._since = None
        elif self._since is None:
            self._since = self._clock()
        return stats

    def stranded(self) -> bool:
        """No broker listed in every statistics document for ``stranded_after`` seconds."""
        return self._since is not None and self._clock() - self._since >= self._after

    def reset(self) -> None:
        """Forget the history (the client was replaced)."""
        self._since = None
        self.last_stats = {}


def discard(client: Any) -> None:
    """Close a replaced client on a thread of its own.

    Closing a client that has no broker must not hold up the worker, whatever
    librdkafka does meanwhile.
    """
    threading.Thread(target=client.close, name="cx-kafka-discard", daemon=True).start()
