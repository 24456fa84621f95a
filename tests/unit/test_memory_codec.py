"""The JSON codec: what goes in comes out unchanged, compressed or not; nothing else parses."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from agent_runtime.memory import codec
from agent_runtime.memory.errors import CorruptRecordError, InvalidMemoryError
from agent_runtime.memory.longterm import MemoryRecord, decode_record, encode_record

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(value=json_values, compress_above=st.sampled_from([0, 16, 10**9]))
def test_round_trip_is_exact_with_and_without_compression(
    value: object, compress_above: int
) -> None:
    payload = codec.encode(value, compress_above=compress_above)
    if compress_above == 0:
        assert payload.startswith(codec.ZLIB_MARKER)
    elif compress_above == 10**9:
        assert payload.startswith(codec.PLAIN_MARKER)
    assert codec.decode(payload) == value
    assert codec.canonical_json(value) == value


def test_large_values_are_compressed_and_small_ones_are_not() -> None:
    big = {"text": "agent " * 2000}
    assert codec.encode(big, compress_above=1024).startswith(codec.ZLIB_MARKER)
    assert codec.encode({"a": 1}, compress_above=1024).startswith(codec.PLAIN_MARKER)


@pytest.mark.parametrize(
    "value",
    [(1, 2), {1: "int key"}, float("nan"), {1, 2}, object(), [1.0, (2,)], {"a": float("inf")}],
)
def test_values_json_would_change_are_refused(value: object) -> None:
    with pytest.raises(InvalidMemoryError, match="plain JSON"):
        codec.canonical_json(value)


def test_bool_and_float_types_survive() -> None:
    assert codec.canonical_json([True, 1, 1.0]) == [True, 1, 1.0]
    assert [type(v) for v in codec.decode(codec.encode([True, 1, 1.0], compress_above=0))] == [
        bool,
        int,
        float,
    ]


def test_values_over_the_size_limit_are_refused() -> None:
    with pytest.raises(InvalidMemoryError, match="limit"):
        codec.encode("x" * 100, compress_above=10, max_bytes=50)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x04pickle",
        b"J:{not json",
        b"Z:not zlib",
        codec.ZLIB_MARKER + zlib.compress(b"{half")[:-3],
    ],
)
def test_anything_but_our_json_is_rejected(payload: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        codec.decode(payload)


def test_a_zlib_bomb_is_refused_past_the_size_cap() -> None:
    bomb = codec.ZLIB_MARKER + zlib.compress(json.dumps("a" * 100_000).encode())
    with pytest.raises(CorruptRecordError, match="inflates past"):
        codec.decode(bomb, max_bytes=1000)


@given(value=json_values, importance=st.floats(0, 1), ttl=st.none() | st.floats(0, 1e10))
def test_long_term_records_round_trip(
    value: JsonValue, importance: float, ttl: float | None
) -> None:
    record = MemoryRecord(
        tenant="tenant/ä",
        key="k:1",
        value=value,
        importance=importance,
        metadata={"source": "test"},
        created_at=1.5,
        expires_at=ttl,
    )
    assert decode_record(encode_record(record, compress_above=64)) == record


def test_a_record_of_another_layout_is_rejected() -> None:
    with pytest.raises(CorruptRecordError, match="layout"):
        decode_record(codec.encode({"v": 2}, compress_above=100))


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    ["lone \ud800 surrogate", {"k\udfff": 1}, _nested(codec.MAX_VALUE_DEPTH + 1)],
)
def test_values_that_could_not_come_back_are_refused_when_remembered(value: object) -> None:
    with pytest.raises(InvalidMemoryError):
        codec.canonical_json(value)


@pytest.mark.parametrize(
    "stored",
    [
        b'{"v": NaN}',
        b'{"v": Infinity}',
        b'{"v": "\\ud800"}',
        b'{"\\udc00": 1}',
        b"[" * 300 + b"]" * 300,
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_stored_json_this_runtime_never_writes_is_corrupt(stored: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        codec.decode(codec.PLAIN_MARKER + stored)
