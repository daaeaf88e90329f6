"""Deterministic output ids.

An output id is derived from the inputs that caused the output and from the
rule or window that produced it, so a replayed or re-delivered input yields
the same id and consumers can upsert.

>>> output_id("nba", "evt-1", "service_recovery")
'nba-52ba9f693b7baf52e4af77693a651061'
>>> output_id("nba", "evt-1", "service_recovery") == output_id("nba", "evt-1", "service_recovery")
True
"""

from __future__ import annotations

from hashlib import blake2b


def output_id(kind: str, *parts: str | int) -> str:
    """Return ``kind-`` followed by 32 hex digits of a BLAKE2b digest of the parts."""
    digest = blake2b(digest_size=16)
    for part in parts:
        piece = str(part).encode()
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        digest.update(len(piece).to_bytes(4, "big"))
        digest.update(piece)
    return f"{kind}-{digest.hexdigest()}"
