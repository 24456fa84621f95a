"""JSON encoding of everything the memory stores: never pickle, optionally zlib-compressed.

Data read back from Redis is parsed as JSON only, so a tampered value can at worst be
rejected, never run. Compressed payloads carry a marker and are inflated with a size
cap, so a small zlib bomb cannot exhaust the replica's memory.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from pydantic import JsonValue

from agent_runtime.json_value import first_unrepresentable, nesting_exceeds
from agent_runtime.memory.errors import CorruptRecordError, InvalidMemoryError

PLAIN_MARKER = b"J:"
ZLIB_MARKER = b"Z:"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

MAX_VALUE_DEPTH = 200
"""The deepest value kept (records wrap it in a few levels of their own)."""

MAX_STORED_DEPTH = 256
"""The deepest stored document read back; deeper is not what this runtime writes."""


def canonical_json(value: object) -> JsonValue:
    """A fresh copy of `value` exactly as it will come back from storage.

    Raises `InvalidMemoryError` for anything JSON would change (tuples, non-string
    keys, NaN, sets, objects), so what is remembered is recalled unchanged.
    """
    if nesting_exceeds(value, MAX_VALUE_DEPTH):
        raise InvalidMemoryError(f"memory values may nest at most {MAX_VALUE_DEPTH} levels")
    problem = first_unrepresentable(value)
    if problem is not None:
        raise InvalidMemoryError(f"memory values must be plain JSON: {problem}")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMemoryError(f"memory values must be plain JSON: {exc}") from exc
    copy: JsonValue = json.loads(text)
    if copy != value or not _same_types(copy, value):
        raise InvalidMemoryError(
            "memory values must be plain JSON (dicts with str keys, lists, str, int, "
            "finite float, bool, None); this one would not come back unchanged"
        )
    return copy


def _same_types(copy: object, original: object) -> bool:
    # `1 == 1.0 == True` in Python, so equality alone misses type changes.
    if type(copy) is not type(original):
        return False
    if isinstance(copy, dict) and isinstance(original, dict):
        return all(_same_types(copy[k], original[k]) for k in copy)
    if isinstance(copy, list) and isinstance(original, list):
        return all(_same_types(a, b) for a, b in zip(copy, original, strict=True))
    return True


def encode(document: object, *, compress_above: int, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Serialise a JSON document; compress it when larger than `compress_above` bytes.

    Raises `InvalidMemoryError` if its JSON is larger than `max_bytes`.
    """
    # ensure_ascii keeps lone surrogates (legal in Python str) encodable as UTF-8.
    raw = json.dumps(document, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    data = raw.encode()
    if len(data) > max_bytes:
        raise InvalidMemoryError(f"value is {len(data)} bytes as JSON; the limit is {max_bytes}")
    if len(data) > compress_above:
        return ZLIB_MARKER + zlib.compress(data, level=6)
    return PLAIN_MARKER + data


def decode(payload: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse what `encode` wrote; raise `CorruptRecordError` for anything else."""
    marker, body = payload[:2], payload[2:]
    if marker == ZLIB_MARKER:
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(body, max_bytes)
        except zlib.error as exc:
            raise CorruptRecordError(f"compressed memory record is damaged: {exc}") from exc
        if inflater.unconsumed_tail or not inflater.eof:
            raise CorruptRecordError(
                f"compressed memory record is damaged or inflates past {max_bytes} bytes"
            )
    elif marker == PLAIN_MARKER:
        data = body
    else:
        raise CorruptRecordError(f"unknown memory record marker {marker!r}")
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptRecordError(f"memory record is not valid JSON: {exc}") from exc
    except RecursionError:
        raise CorruptRecordError("memory record is nested too deeply") from None
    # What this runtime writes is always finite, surrogate-free and shallow; anything
    # else would fail later, when the answer is encoded, as a 500 for the caller.
    if nesting_exceeds(value, MAX_STORED_DEPTH):
        raise CorruptRecordError("memory record is nested too deeply")
    problem = first_unrepresentable(value)
    if problem is not None:
        raise CorruptRecordError(f"memory record holds what JSON cannot carry ({problem})")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def canonical_text(value: object) -> str:
    """Compact JSON text of a value (for embedding or display)."""
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
