"""The load signal's contract (pure): key layout, sample codec, staleness; drain rendering."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_runtime.config.agent import AgentSettings, TurnLimits
from agent_runtime.config.drain import pre_stop_command, termination_grace_period_seconds
from agent_runtime.config.load import (
    LoadSample,
    decode_sample,
    decode_samples,
    encode_sample,
    load_key,
    stale_after,
    validate_sample,
)
from agent_runtime.memory.keys import KeySpace
from tests.support.identity import identity

samples = st.builds(
    LoadSample,
    active_turns=st.integers(0, 10_000),
    capacity=st.integers(1, 10_000),
    queued_tasks=st.integers(0, 10**9),
    draining=st.booleans(),
    at=st.floats(0, 4e9),
    refused_turns=st.integers(0, 10_000),
)


@given(samples)
def test_samples_round_trip(sample: LoadSample) -> None:
    assert decode_sample(encode_sample(sample)) == sample
    assert decode_sample(encode_sample(sample).encode()) == sample


def test_a_sample_from_before_refused_turns_still_reads_as_zero_refused() -> None:
    old = '{"v":1,"activeTurns":2,"capacity":4,"queuedTasks":1,"draining":false,"at":5.5}'
    expected = LoadSample(active_turns=2, capacity=4, queued_tasks=1, at=5.5, refused_turns=0)
    assert decode_sample(old) == expected  # the fast path
    body = json.loads(old)
    del body["v"]
    assert validate_sample(body) == expected  # and validation
    # Written only when not 0: the common sample is the older format, byte for byte.
    assert encode_sample(expected) == old
    assert json.loads(encode_sample(replace(expected, refused_turns=3)))["refusedTurns"] == 3


def test_key_layout_is_the_pools_root_and_is_escaped() -> None:
    pool = identity("support", "shop")
    assert load_key("agentpool", pool) == "agentpool:shop:support:load"
    assert load_key("a:b", pool) == "a%3Ab:shop:support:load"
    assert KeySpace("agentpool", pool).load == load_key("agentpool", pool)


def test_stale_and_unreadable_samples_are_skipped() -> None:
    fresh = LoadSample(active_turns=2, capacity=8, at=100.0)
    old = LoadSample(active_turns=5, capacity=8, at=100.0 - stale_after(1.0) - 10)
    fields = {
        b"pod-a": encode_sample(fresh).encode(),
        b"pod-b": encode_sample(old).encode(),
        b"pod-c": b"{not json",
        b"pod-d": b'{"v": 99, "activeTurns": 1}',
    }
    assert decode_samples(fields, now=101.0, publish_interval_seconds=1.0) == {"pod-a": fresh}


def test_drain_rendering_covers_the_longest_turn() -> None:
    agent = AgentSettings(instructions="x", limits=TurnLimits(turn_timeout_seconds=90))
    assert pre_stop_command(agent, 8080) == [
        "agentpool-agent",
        "--drain",
        "--port=8080",
        "--drain-timeout=90",
    ]
    assert termination_grace_period_seconds(agent) == 105


_VALUES = st.one_of(
    st.integers(min_value=-2, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["activeTurns", "capacity", "queuedTasks", "draining", "at", "refusedTurns", "x"]
        ),
        _VALUES,
    )
)
def test_the_fast_decoding_accepts_only_what_validation_accepts_and_agrees(
    body: dict[str, object],
) -> None:
    """decode_sample skips pydantic for well-formed samples: never a different answer."""
    raw = json.dumps({"v": 1, **body})
    try:
        expected: LoadSample | None = validate_sample(body)
    except ValidationError:
        expected = None
    found = decode_sample(raw)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found == expected or math.isnan(expected.at)
