r"""The replay log: JSON lines, one record per Kafka message, optionally gzipped.

A record holds ``topic, partition, offset, timestamp`` (ms since the epoch),
``key``, ``headers`` (a list of ``[name, value]``) and ``value``. Keys, header
values and values are text when they are valid UTF-8; bytes that are not are
stored base64-encoded under ``key_b64`` / ``value_b64`` (and a header value as
``{"b64": "..."}``), so any message round-trips exactly.

>>> raw = RawMessage(b'{"id":"e1"}', b"k", "cx.events", 0, 7, 1700000000000)
>>> decode_record(encode_record(raw)) == raw
True
>>> decode_record(encode_record(RawMessage(b"\xff\xfe"))).value
b'\xff\xfe'
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from schemas.records import RawMessage


class LogFormatError(ValueError):
    """A line of a replay log that is not a valid record."""


def _text_or_b64(raw: bytes) -> tuple[str, str]:
    try:
        return "text", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "b64", base64.b64encode(raw).decode()


def encode_record(raw: RawMessage) -> bytes:
    """One log line (without the newline)."""
    record: dict[str, Any] = {
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
        "timestamp": raw.timestamp_ms,
    }
    for name, payload in (("key", raw.key), ("value", raw.value)):
        encoded = _text_or_b64(payload) if payload is not None else None
        if encoded is None:
            record[name] = None
        elif encoded[0] == "text":
            record[name] = encoded[1]
        else:
            record[f"{name}_b64"] = encoded[1]
    headers = []
    for hname, hvalue in raw.headers:
        enc = _text_or_b64(hvalue)
        headers.append([hname, enc[1] if enc[0] == "text" else {"b64": enc[1]}])
    record["headers"] = headers
    return orjson.dumps(record)


def _bytes_field(record: dict[str, Any], name: str) -> bytes | None:
    if f"{name}_b64" in record:
        return base64.b64decode(record[f"{name}_b64"], validate=True)
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{name} must be a string, null or given as {name}_b64"
        raise LogFormatError(msg)
    return value.encode()


_B64_FIELDS = frozenset({"value_b64", "key_b64"})


def decode_record(line: bytes) -> RawMessage:
    """Parse one log line back into the message it recorded."""
    try:
        record = orjson.loads(line)
        if not isinstance(record, dict):
            msg = "a record must be a JSON object"
            raise LogFormatError(msg)
        listed = record.get("headers")
        headers = (
            tuple(
                (
                    str(h[0]),
                    base64.b64decode(h[1]["b64"]) if isinstance(h[1], dict) else h[1].encode(),
                )
                for h in listed
            )
            if listed
            else ()
        )
        value = record.get("value")
        # The common record: a text value, no key, nothing base64-encoded.
        if type(value) is str and record.get("key") is None and _B64_FIELDS.isdisjoint(record):
            body: bytes | None = value.encode()
            key: bytes | None = None
        else:
            body, key = _bytes_field(record, "value"), _bytes_field(record, "key")
        return RawMessage(
            value=body,
            key=key,
            topic=record.get("topic"),
            partition=record.get("partition"),
            offset=record.get("offset"),
            timestamp_ms=record.get("timestamp"),
            headers=headers,
        )
    except LogFormatError:
        raise
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, IndexError) as exc:
        msg = f"not a replay-log record: {exc}"
        raise LogFormatError(msg) from exc


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        # mtime=0: the header carries no wall-clock time, so the same log gives the same
        # bytes; level 6 compresses nearly as well as 9 at twice the speed.
        return gzip.GzipFile(path, mode + "b", compresslevel=6, mtime=0)  # type: ignore[return-value]
    return path.open(mode + "b")


def read_log(path: Path) -> Iterator[RawMessage]:
    """Yield the messages of a log file; a bad line raises with its line number."""
    with _open(path, "r") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield decode_record(line)
            except LogFormatError as exc:
                msg = f"{path}:{lineno}: {exc}"
                raise LogFormatError(msg) from exc


def write_log(path: Path, messages: Iterable[RawMessage]) -> int:
    """Write messages as a log (gzip when the name ends in .gz); return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with _open(path, "w") as fh:
        for raw in messages:
            fh.write(encode_record(raw) + b"\n")
            count += 1
    return count
