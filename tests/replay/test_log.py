from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay.log import LogFormatError, decode_record, encode_record, read_log, write_log
from replay.sample import generate_sample
from schemas.records import RawMessage

messages = st.builds(
    RawMessage,
    value=st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=50).map(str.encode)),
    key=st.one_of(st.none(), st.binary(max_size=20)),
    topic=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    partition=st.one_of(st.none(), st.integers(0, 100)),
    offset=st.one_of(st.none(), st.integers(0, 2**40)),
    timestamp_ms=st.one_of(st.none(), st.integers(0, 2**42)),
    headers=st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3).map(
        tuple
    ),
)


@given(messages)
def test_any_message_round_trips(message: RawMessage) -> None:
    assert decode_record(encode_record(message)) == message


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_files_round_trip(tmp_path: Path, suffix: str) -> None:
    sample = list(generate_sample(customers=5, days=3))
    path = tmp_path / f"log{suffix}"
    assert write_log(path, sample) == len(sample)
    assert list(read_log(path)) == sample


def test_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(encode_record(RawMessage(b"ok")) + b"\n\nnot json\n")
    with pytest.raises(LogFormatError, match=r"bad\.jsonl:3: not a replay-log record"):
        list(read_log(path))


def test_the_sample_is_seeded() -> None:
    assert list(generate_sample(customers=6, days=5, seed=1)) == list(
        generate_sample(customers=6, days=5, seed=1)
    )
    assert list(generate_sample(customers=6, days=5, seed=1)) != list(
        generate_sample(customers=6, days=5, seed=2)
    )


def test_the_shipped_sample_is_what_the_generator_makes() -> None:
    shipped = Path(__file__).parents[2] / "replay" / "samples" / "demo.jsonl"
    assert list(read_log(shipped)) == list(generate_sample())
