"""The JSON checks at the runtime's edges (pure, iterative): they agree with what JSON and
UTF-8 can actually carry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.edge import _RefusedError, check_json
from agent_runtime.json_value import first_unrepresentable, nesting_exceeds

any_text = st.text(alphabet=st.characters(codec=None), max_size=8)  # surrogates included
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=15,
)


def _carried(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@given(values)
def test_unrepresentable_means_json_and_utf8_cannot_carry_it(value: Any) -> None:
    assert (first_unrepresentable(value) is None) == _carried(value)


@given(values, st.integers(0, 6))
def test_nesting_exceeds_agrees_with_the_depth(value: Any, limit: int) -> None:
    assert nesting_exceeds(value, limit) == (_depth(value) > limit)


def test_the_checks_survive_values_deeper_than_the_recursion_limit() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert nesting_exceeds(deep, 64)
    assert first_unrepresentable(deep) is None


@given(values)
def test_check_json_refuses_exactly_what_cannot_be_kept(value: Any) -> None:
    body = json.dumps(value, allow_nan=True, ensure_ascii=True).encode()
    # What the server decodes: an adjacent high+low surrogate pair becomes one character.
    decoded = json.loads(body)
    keepable = _carried(decoded) and _depth(decoded) <= 64
    if keepable:
        check_json(body)
    else:
        with pytest.raises(_RefusedError):
            check_json(body)
