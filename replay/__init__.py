"""Replay logs: format, reading and writing, and a Bytewax source that plays them."""

from replay.log import LogFormatError, decode_record, encode_record, read_log, write_log
from replay.source import ReplayLogSource

__all__ = [
    "LogFormatError",
    "ReplayLogSource",
    "decode_record",
    "encode_record",
    "read_log",
    "write_log",
]
