"""The HTTP tool refuses URL placeholder values that change the path's meaning (pure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config.tools import HttpImplementation
from agent_runtime.tools.errors import ToolArgumentRefusedError
from agent_runtime.tools.http import HttpTool, changes_path_meaning, decoded


@pytest.fixture
async def tool() -> AsyncIterator[HttpTool]:
    async with httpx.AsyncClient() as client:
        spec = HttpImplementation(
            url="https://api.example.com/v1/users/{user}/orders", method="GET"
        )
        yield HttpTool("orders", spec, client)


@pytest.mark.parametrize(
    "value",
    [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%252e%252e",  # double-encoded
        "..%2fadmin",
        "../admin",
        "a/../../admin",
        "..\\admin",
        "x/./y",
    ],
)
async def test_dot_segments_are_refused_after_decoding(tool: HttpTool, value: str) -> None:
    with pytest.raises(ToolArgumentRefusedError, match=r"'\.' or '\.\.' segment"):
        tool.build_request({"user": value})


@pytest.mark.parametrize("value", ["alice", "a..b", "...", ".hidden", "v1.2", "%41lice", "a b"])
async def test_ordinary_values_pass_quoted_as_one_segment(tool: HttpTool, value: str) -> None:
    request = tool.build_request({"user": value})
    path = request.url.raw_path.decode()
    assert path.startswith("/v1/users/")
    assert path.endswith("/orders")
    assert path.count("/") == 4  # the value stayed one segment


async def test_query_placeholders_are_not_path_segments() -> None:
    async with httpx.AsyncClient() as client:
        spec = HttpImplementation(url="https://api.example.com/search?q={q}", method="GET")
        request = HttpTool("search", spec, client).build_request({"q": ".."})
    assert request.url.path == "/search"


@given(value=st.text(alphabet=st.sampled_from(list("./%2eE5cC\\a")), max_size=12))
def test_what_passes_never_decodes_to_a_dot_segment(value: str) -> None:
    if changes_path_meaning(value):
        return
    for layer in (value, unquote(value), decoded(value)):
        segments = layer.replace("\\", "/").split("/")
        assert "." not in segments
        assert ".." not in segments


def test_the_refusal_is_a_client_error() -> None:
    error = ToolArgumentRefusedError("t", "x")
    assert error.kind == "client"  # never counts against the dependency's breaker


async def test_a_lone_surrogate_is_refused_not_a_crash(tool: HttpTool) -> None:
    with pytest.raises(ToolArgumentRefusedError, match="not valid Unicode"):
        tool.build_request({"user": "\ud800"})
