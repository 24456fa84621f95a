"""The model client against scripted OpenAI-compatible servers on loopback: answers,
fallback when the primary's breaker is open, deadlines, and "unavailable" at the end."""

from __future__ import annotations

import pytest

from agent_runtime.agent.model import ModelClient, ModelUnavailableError
from agent_runtime.config.model import ModelConfig, ModelEndpoint
from agent_runtime.config.tools import CircuitBreakerSettings, RetrySettings
from tests.support.loopback import serve_asgi
from tests.support.scripted_model import ScriptedModel

USER = [{"role": "user", "content": "hello"}]


def config(primary: str, fallback: str | None = None, **kw: object) -> ModelConfig:
    return ModelConfig(
        primary=ModelEndpoint(name="primary", base_url=f"{primary}/v1"),
        fallbacks=[ModelEndpoint(name="fallback", base_url=f"{fallback}/v1")] if fallback else [],
        circuit_breaker=CircuitBreakerSettings(minimum_calls=2, window_size=2),
        retry=RetrySettings(max_attempts=2, initial_backoff_seconds=0.01, jitter_seconds=0),
        **kw,  # type: ignore[arg-type]
    )


async def test_answers_and_tool_calls() -> None:
    model = ScriptedModel()
    async with serve_asgi(model.app()) as url:
        client = ModelClient(config(url))
        reply = await client.complete(USER)
        assert reply.content == "echo: hello"
        assert reply.prompt_tokens > 0
        reply = await client.complete([{"role": "user", "content": 'call lookup {"q": 1}'}])
        assert reply.tool_calls[0].tool == "lookup"
        assert reply.tool_calls[0].arguments == '{"q": 1}'
        await client.aclose()


async def test_falls_back_when_the_primary_fails_and_its_breaker_opens() -> None:
    primary, fallback = ScriptedModel(mode="down"), ScriptedModel()
    async with serve_asgi(primary.app()) as p, serve_asgi(fallback.app()) as f:
        client = ModelClient(config(p, f))
        reply = await client.complete(USER)
        assert reply.model == "fallback"
        assert len(primary.requests) == 2  # retried once, then moved on
        assert client.breakers()[0].state.value == "open"
        before = len(primary.requests)
        assert (await client.complete(USER)).model == "fallback"
        assert len(primary.requests) == before  # an open breaker is not asked
        await client.aclose()


async def test_slow_model_times_out_and_everything_down_is_unavailable() -> None:
    slow = ScriptedModel(delay=5)
    async with serve_asgi(slow.app()) as url:
        client = ModelClient(config(url, timeout_seconds=0.2))
        with pytest.raises(ModelUnavailableError, match=r"did not answer within 0\.2s"):
            await client.complete(USER)
        await client.aclose()


async def test_a_streamed_answer_is_handed_on_piece_by_piece() -> None:
    model = ScriptedModel()
    async with serve_asgi(model.app()) as url:
        client = ModelClient(config(url))
        pieces: list[str] = []

        async def on_delta(text: str) -> None:
            pieces.append(text)

        reply = await client.complete(
            [{"role": "user", "content": "one two three"}], on_delta=on_delta
        )
        assert pieces == ["echo:", " one", " two", " three"]
        assert reply.content == "echo: one two three"
        assert reply.prompt_tokens > 0
        reply = await client.complete(
            [{"role": "user", "content": 'call a {"x": 1} && call b {}'}], on_delta=on_delta
        )
        assert [(c.tool, c.arguments) for c in reply.tool_calls] == [("a", '{"x": 1}'), ("b", "{}")]
        await client.aclose()


async def test_the_api_key_and_headers_are_sent() -> None:
    model = ScriptedModel()
    async with serve_asgi(model.app()) as url:
        endpoint = ModelEndpoint.model_validate(
            {
                "name": "keyed",
                "baseUrl": f"{url}/v1",
                "apiKeyEnv": "MODEL_KEY",
                "headers": {"X-Team": "support", "X-Secret": {"valueFrom": {"env": "TEAM_SECRET"}}},
                "temperature": 0.2,
            }
        )
        client = ModelClient(
            ModelConfig(primary=endpoint),
            environ={"MODEL_KEY": "sk-test", "TEAM_SECRET": "s3"},
        )
        await client.complete(USER, [{"type": "function", "function": {"name": "f"}}])
        await client.complete(USER, on_delta=lambda _text: _noop())
        for headers in model.headers:
            assert headers["authorization"] == "Bearer sk-test"
            assert (headers["x-team"], headers["x-secret"]) == ("support", "s3")
        assert model.requests[0]["temperature"] == 0.2
        assert model.requests[0]["tools"][0]["function"]["name"] == "f"
        assert model.requests[1]["stream"] is True
        await client.aclose()


async def _noop() -> None:
    return None
