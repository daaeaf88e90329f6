"""Keyed hashing of identifier values, so raw PII never reaches Redis or an output.

The type is part of the hashed text, so the same string used as two identifier
types (a phone number that is also a loyalty id) gives two unrelated hashes:

>>> hasher = IdentifierHasher(b"secret")
>>> hasher.hash("email", "ann@example.com")
'a9f5c8995173208d41d48c8955138ff5'
>>> hasher.hash("email", "ann@example.com") == hasher.hash("loyalty_id", "ann@example.com")
False
>>> PlainIdentifiers().hash("email", "ann@example.com")
'ann@example.com'
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

HASH_HEX_CHARS = 32


class Hasher(Protocol):
    """Maps a normalised identifier value to the form the store keeps."""

    def hash(self, id_type: str, value: str) -> str: ...


class IdentifierHasher:
    """HMAC-SHA256 of ``"{type}:{value}"``, truncated to 32 hex digits (128 bits).

    A keyed hash rather than a plain one: identifier spaces are small (every phone
    number can be enumerated), so without the key a hash could be reversed.

    Parameters
    ----------
    key
        The secret; rotating it re-keys every identifier, i.e. starts a new graph.
    """

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        if not key:
            msg = "IdentifierHasher needs a non-empty key (set the PII hashing secret)"
            raise ValueError(msg)
        # Keyed once; copy() per value skips re-deriving the HMAC pads each time.
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def hash(self, id_type: str, value: str) -> str:
        mac = self._mac.copy()
        mac.update(f"{id_type}:{value}".encode())
        return mac.hexdigest()[:HASH_HEX_CHARS]


class PlainIdentifiers:
    """The no-op hasher: values are stored as given (hashing switched off)."""

    __slots__ = ()

    def hash(self, id_type: str, value: str) -> str:
        return value
