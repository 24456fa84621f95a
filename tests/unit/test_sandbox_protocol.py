"""The sandbox wire format (pure): requests round-trip, and bad ones are refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.sandbox.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    RunLimits,
    RunOutcome,
    RunRequest,
    RunResult,
)

LIMITS = RunLimits(cpu_seconds=1, memory_bytes=64 << 20, file_size_bytes=0, processes=4)
no_nul = st.text(st.characters(blacklist_characters="\x00"), max_size=20)


@given(
    argv=st.lists(no_nul, max_size=5),
    env=st.dictionaries(
        st.text(st.characters(blacklist_characters="\x00="), min_size=1, max_size=8), no_nul
    ),
    timeout=st.floats(min_value=0.001, max_value=3600),
    working_dir=st.none() | st.just("/srv/work"),
)
def test_a_request_round_trips(
    argv: list[str], env: dict[str, str], timeout: float, working_dir: str | None
) -> None:
    request = RunRequest(
        argv=["/bin/echo", *argv],
        timeout_seconds=timeout,
        max_output_bytes=100,
        limits=LIMITS,
        env=env,
        working_dir=working_dir,
    )
    assert RunRequest.from_json(request.to_json()) == request


def _doc(**changes: Any) -> bytes:
    doc = json.loads(
        RunRequest(
            argv=["/bin/true"], timeout_seconds=1, max_output_bytes=10, limits=LIMITS
        ).to_json()
    )
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (_doc(argv=[]), "non-empty list"),
        (_doc(argv=["true"]), "absolute path"),
        (_doc(argv=["/bin/echo", "a\x00b"]), "without NUL"),
        (_doc(env={"A=B": "x"}), "env must map"),
        (_doc(timeout_seconds=0), "positive finite"),
        (_doc(timeout_seconds=True), "must be a number"),
        (_doc(max_output_bytes=-1), "non-negative integer"),
        (_doc(limits={"cpu_seconds": 1}), "limits"),
        (_doc(working_dir="relative"), "absolute path"),
        (b" " * (MAX_REQUEST_BYTES + 1), "larger than"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        RunRequest.from_json(raw)


def test_outcomes_round_trip() -> None:
    result = RunResult(
        exit_code=0, signal=None, stdout="hi", stderr="", truncated=False, duration_seconds=0.1
    )
    for outcome in (RunOutcome(result=result), RunOutcome.refused("no"), RunOutcome.failed("x")):
        assert RunOutcome.from_json(outcome.to_json()) == outcome
    with pytest.raises(ProtocolError):
        RunOutcome.from_json(b'{"error": {"kind": "weird", "message": ""}}')
