"""The agent service in one process: real Redis, a scripted model on loopback, the HTTP
API (chat, streaming, conversations, the OpenAI facade, drain) and its error answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from agent_runtime.config import RuntimeConfig
from agent_runtime.config.auth import AuthConfig
from agent_runtime.config.load import decode_sample, load_key
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.server import create_app
from tests.support.loopback import serve_asgi
from tests.support.scripted_model import ScriptedModel
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.asyncio


def service_config(model_url: str, redis_url: str, **agent: Any) -> RuntimeConfig:
    return RuntimeConfig.model_validate(
        {
            "pool": {"namespace": "tests", "name": "chat"},
            "auth": {"mode": "disabled"},  # tenants named in the body; auth has its own tests
            "agent": {"instructions": "be brief", **agent},
            "model": {
                "primary": {"name": "scripted", "baseUrl": f"{model_url}/v1"},
                "timeoutSeconds": 2,
                "retry": {"maxAttempts": 1},
                "circuitBreaker": {"minimumCalls": 1, "windowSize": 1},
            },
            "memory": {"redis": {"url": redis_url}},
        }
    )


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
async def api(model: ScriptedModel, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_asgi(model.app()) as model_url:
        app = create_app(service_config(model_url, redis_url))
        async with (
            serve_asgi(app, lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            yield client


def sse(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]


async def test_a_conversation_with_tool_calls_and_memory(api: httpx.AsyncClient) -> None:
    remember = 'call remember {"key": "colour", "value": "teal"}'
    first = await api.post("/v1/chat", json={"message": remember, "tenant": "alice"})
    assert first.status_code == 200, first.text
    body = first.json()
    conversation = body["conversationId"]
    assert body["stopReason"] == "answered"
    assert body["steps"][0]["tool"] == "remember"
    assert body["steps"][0]["isError"] is False
    assert body["usage"]["modelCalls"] == 2

    recall = 'call recall {"key": "colour"}'
    second = await api.post(
        "/v1/chat", json={"message": recall, "tenant": "alice", "conversationId": conversation}
    )
    assert "teal" in second.json()["answer"]

    history = (
        await api.get(f"/v1/conversations/{conversation}", params={"tenant": "alice"})
    ).json()
    assert history["version"] == second.json()["version"]
    assert [m["role"] for m in history["messages"]][:2] == ["user", "tool"]
    events = (
        await api.get(f"/v1/conversations/{conversation}/events", params={"tenant": "alice"})
    ).json()["events"]
    assert [e["version"] for e in events] == list(range(1, history["version"] + 1))
    # Another tenant sees nothing, and cannot continue it.
    other = await api.get(f"/v1/conversations/{conversation}", params={"tenant": "bob"})
    assert other.status_code == 404
    assert other.json()["error"]["type"]
    hijack = await api.post(
        "/v1/chat", json={"message": "hi", "tenant": "bob", "conversationId": conversation}
    )
    assert hijack.status_code == 404


async def test_streaming_sends_steps_then_the_end(api: httpx.AsyncClient) -> None:
    message = 'call recall {"key": "x"}'
    response = await api.post(
        "/v1/chat", json={"message": message, "tenant": "alice", "stream": True}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    steps = sse(response.text)
    kinds = [s["type"] for s in steps]
    assert kinds[:3] == ["start", "toolCall", "toolResult"]
    assert kinds[-1] == "end"
    deltas = [s["text"] for s in steps if s["type"] == "delta"]
    assert len(deltas) > 1  # the answer arrives word by word, as the model writes it
    assert steps[-1]["stopReason"] == "answered"
    assert "".join(deltas) == steps[-1]["answer"]


async def test_two_concurrent_turns_on_one_conversation(api: httpx.AsyncClient) -> None:
    first = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    conversation = first.json()["conversationId"]
    body = {"tenant": "alice", "conversationId": conversation}
    slow = asyncio.create_task(api.post("/v1/chat", json={**body, "message": "slow 1"}))
    await asyncio.sleep(0.3)  # the slow turn holds the writer (its model call takes 1 s)
    refused = await api.post("/v1/chat", json={**body, "message": "me too"})
    assert refused.status_code == 409
    assert "in progress" in refused.json()["error"]["message"]
    assert (await slow).json()["answer"] == "echo: slow 1"
    # The history did not fork: one input per accepted turn.
    history = (
        await api.get(f"/v1/conversations/{conversation}", params={"tenant": "alice"})
    ).json()
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["hi", "slow 1"]


async def test_the_openai_client_talks_to_the_facade(api: httpx.AsyncClient) -> None:
    client = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key="unused", max_retries=0)
    completion = await client.chat.completions.create(
        model="pool", messages=[{"role": "user", "content": "hello"}], user="alice"
    )
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    chunks = await client.chat.completions.create(
        model="pool", messages=[{"role": "user", "content": "streamed"}], user="alice", stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in chunks])
    assert text == "echo: streamed"
    with pytest.raises(openai.UnprocessableEntityError):
        await client.chat.completions.create(
            model="pool", messages=[{"role": "user", "content": "no tenant"}]
        )
    await client.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b'{"message": "hi"}', 422),  # no tenant
        (b'{"message": "", "tenant": "alice"}', 422),
        (b'{"message": "hi", "tenant": "a b"}', 422),
        (b'{"message": "hi", "tenant": "alice", "extra": 1}', 422),
        (b'{"message": "hi", "tenant": "alice", "conversationId": ""}', 422),
    ],
)
async def test_bad_input_is_a_4xx_in_the_one_error_shape(
    api: httpx.AsyncClient, body: bytes, status: int
) -> None:
    response = await api.post(
        "/v1/chat", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"]
    assert error["message"]


async def test_unknown_conversation_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/conversations/nope/events", params={"tenant": "alice"})
    assert response.status_code == 404


async def test_model_down_gives_a_degraded_answer_and_readyz_says_so(
    api: httpx.AsyncClient, model: ScriptedModel
) -> None:
    model.mode = "down"
    response = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    assert response.status_code == 200
    assert response.json()["stopReason"] == "degraded"
    assert "unavailable" in response.json()["answer"]
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["breakers"][0]["state"] == "open"
    assert ready.json()["status"] == "degraded"


async def test_slow_model_times_out_into_a_degraded_answer(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/v1/chat", json={"message": "slow 5", "tenant": "alice"})
    assert response.json()["stopReason"] == "degraded"
    assert "did not answer within 2s" in response.json()["detail"]


async def test_drain_makes_the_replica_unready_and_refuses_new_turns(
    api: httpx.AsyncClient,
) -> None:
    slow = asyncio.create_task(api.post("/v1/chat", json={"message": "slow 1", "tenant": "a"}))
    await asyncio.sleep(0.3)
    drained = await api.post("/v1/drain", params={"timeoutSeconds": 10})
    assert drained.json() == {"drained": True, "activeTurns": 0}
    assert (await slow).json()["answer"] == "echo: slow 1"  # the running turn finished
    assert (await api.get("/readyz")).status_code == 503
    refused = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    assert refused.status_code == 503


async def test_turns_are_measured(api: httpx.AsyncClient) -> None:
    await api.post("/v1/chat", json={"message": "count me", "tenant": "alice"})
    metrics = (await api.get("/metrics")).text
    assert 'agentpool_turn_duration_seconds_count{reason="answered"}' in metrics
    assert 'agentpool_model_tokens_total{kind="prompt",model="scripted"}' in metrics
    assert 'agentpool_model_call_duration_seconds_count{model="scripted",outcome="ok"}' in metrics
    assert "agentpool_active_turns 0.0" in metrics
    assert "agentpool_turn_capacity 8.0" in metrics


async def _samples(api: httpx.AsyncClient) -> dict[tuple[str, frozenset[Any]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = (await api.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_requests_are_counted_by_route_template_and_status(api: httpx.AsyncClient) -> None:
    before = await _samples(api)
    first = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    conversation = first.json()["conversationId"]
    await api.get(f"/v1/conversations/{conversation}", params={"tenant": "alice"})
    await api.get("/v1/conversations/nope", params={"tenant": "alice"})
    await api.post("/v1/chat", content=b"{", headers={"content-type": "application/json"})
    await api.get("/no/such/path/42")
    after = await _samples(api)

    def added(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "agentpool_http_requests_total"
    template = "/v1/conversations/{conversation_id}"
    assert added(requests, route="/v1/chat", method="POST", status="200") == 1
    assert added(requests, route="/v1/chat", method="POST", status="422") == 1
    assert added(requests, route=template, method="GET", status="200") == 1
    assert added(requests, route=template, method="GET", status="404") == 1
    assert added(requests, route="unmatched", method="GET", status="404") == 1
    assert added("agentpool_http_request_duration_seconds_count", route="/v1/chat") == 2
    assert not any(conversation in str(labels) for _, labels in after)  # ids are no labels


async def test_another_pool_asks_this_one_through_pool_as_tool(api: httpx.AsyncClient) -> None:
    from agent_runtime.config.tools import AgentImplementation
    from agent_runtime.tools.agent import PoolTool
    from agent_runtime.tools.tool import CallContext

    async with httpx.AsyncClient() as client:
        tool = PoolTool("ask_chat", AgentImplementation(url=str(api.base_url)), client)
        first = await tool({"message": "hello"}, CallContext(tenant="alice"))
        assert first["reply"] == "echo: hello"
        again = await tool(
            {"message": "again", "conversationId": first["conversationId"]},
            CallContext(tenant="alice"),
        )
        assert again["version"] > first["version"]


async def test_redis_down_refuses_turns_with_503_and_recovers(model: ScriptedModel) -> None:
    from tests.support.redis_server import RedisServer

    own = RedisServer()
    own.start()
    try:
        async with serve_asgi(model.app()) as model_url:
            app = create_app(service_config(model_url, own.url))
            async with (
                serve_asgi(app, lifespan="on") as url,
                httpx.AsyncClient(base_url=url, timeout=20) as client,
            ):
                ok = await client.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
                assert ok.status_code == 200
                own.stop(kill=True)
                down = await client.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
                assert down.status_code == 503
                assert down.json()["error"]["type"] == "StoreUnavailableError"
                own.start()

                async def back() -> bool:
                    again = await client.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
                    return again.status_code == 200

                await async_wait_until(back, timeout=20, what="turns after Redis returns")
    finally:
        own.cleanup()


async def test_turns_need_credentials_and_act_in_their_tenant(
    model: ScriptedModel, redis_url: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        "  - {name: alice-app, token: alice-token-0123456789, tenant: alice}\n"
        "  - {name: bob-app, token: bob-token-0123456789abc, tenant: bob}\n"
    )
    alice = {"Authorization": "Bearer alice-token-0123456789"}
    bob = {"Authorization": "Bearer bob-token-0123456789abc"}
    async with serve_asgi(model.app()) as model_url:
        config = service_config(model_url, redis_url).model_copy(
            update={"auth": AuthConfig(tokens_file=str(tokens))}
        )
        async with (
            serve_asgi(create_app(config), lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            anonymous = await client.post("/v1/chat", json={"message": "hi"})
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["type"] == "AuthenticationError"
            mine = await client.post("/v1/chat", json={"message": "hi"}, headers=alice)
            assert mine.status_code == 200
            conversation = mine.json()["conversationId"]
            other = await client.post(
                "/v1/chat", json={"message": "hi", "tenant": "bob"}, headers=alice
            )
            assert other.status_code == 403
            peek = await client.get(f"/v1/conversations/{conversation}", headers=bob)
            assert peek.status_code == 404
            hers = await client.get(f"/v1/conversations/{conversation}", headers=alice)
            assert hers.json()["version"] == mine.json()["version"]


async def test_a_task_runs_as_a_turn(model: ScriptedModel, redis_url: str) -> None:
    async with serve_asgi(model.app()) as model_url:
        config = service_config(model_url, redis_url).model_copy(
            update={"tasks": TasksSettings(enabled=True)}
        )
        async with (
            serve_asgi(create_app(config), lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            accepted = await client.post(
                "/v1/tasks", json={"input": "do it later", "tenant": "alice"}
            )
            assert accepted.status_code == 202, accepted.text
            task = accepted.json()["id"]

            async def done() -> dict[str, Any] | None:
                found = await client.get(f"/v1/tasks/{task}", params={"tenant": "alice"})
                body: dict[str, Any] = found.json()
                return body if body["status"] == "succeeded" else None

            finished = await async_wait_until(done, timeout=20, what="the task's turn")
            assert finished["result"]["answer"] == "echo: do it later"
            assert finished["result"]["stopReason"] == "answered"


async def test_redis_answering_with_errors_is_a_listed_502_on_the_conversation_routes(
    api: httpx.AsyncClient, redis_url: str
) -> None:
    """A conversation whose keys Redis holds as the wrong type (an operator's mistake, a
    key clash) is a 502 for that conversation only, never a 500; and the OpenAPI document
    says the conversation routes can answer 502."""
    import redis.asyncio as aioredis

    from agent_runtime.config import PoolIdentity
    from agent_runtime.memory import KeySpace

    first = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    conversation = first.json()["conversationId"]
    keys = KeySpace("agentpool", PoolIdentity(namespace="tests", name="chat"))
    async with aioredis.Redis.from_url(redis_url) as conn:
        await conn.delete(keys.conversation_events(conversation))
        await conn.set(keys.conversation_events(conversation), "not a stream")
    tenant = {"tenant": "alice"}
    answers = [
        await api.get(f"/v1/conversations/{conversation}/events", params=tenant),
        await api.post(
            "/v1/chat", json={"message": "again", "tenant": "alice", "conversationId": conversation}
        ),
    ]
    for answer in answers:
        assert answer.status_code == 502, answer.text
        assert "agentpool" not in answer.json()["error"]["message"]
    other = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
    assert other.status_code == 200, other.text
    document = (await api.get("/openapi.json")).json()
    for path, method in [
        ("/v1/chat", "post"),
        ("/v1/chat/completions", "post"),
        ("/v1/conversations/{conversation_id}", "get"),
        ("/v1/conversations/{conversation_id}/events", "get"),
    ]:
        assert "502" in document["paths"][path][method]["responses"], (method, path)


async def test_a_full_replica_refuses_with_503_and_publishes_its_refused_callers(
    model: ScriptedModel, redis_url: str
) -> None:
    """One slot, taken by a slow turn: the next requests get 503 with Retry-After, and
    the replica's load sample says how many callers it refused (a client retrying its
    conversation counts once), at once, not at the next interval."""
    async with serve_asgi(model.app()) as model_url:
        config = service_config(model_url, redis_url, concurrency=1)
        app = create_app(config)
        async with (
            serve_asgi(app, lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as api,
        ):
            first = await api.post("/v1/chat", json={"message": "hi", "tenant": "alice"})
            waiting = {"tenant": "alice", "conversationId": first.json()["conversationId"]}
            slow = asyncio.create_task(
                api.post("/v1/chat", json={"message": "slow 1", "tenant": "alice"})
            )
            redis = aioredis.Redis.from_url(redis_url)
            key = load_key("agentpool", config.pool)

            async def sample_shows(field: str, value: int) -> bool:
                samples = [decode_sample(v) for v in (await redis.hgetall(key)).values()]
                return any(getattr(s, field) == value for s in samples if s is not None)

            await async_wait_until(
                lambda: sample_shows("active_turns", 1), timeout=5, what="the slow turn"
            )
            for body in (waiting, waiting, {"tenant": "alice"}):  # a retry, a new one
                refused = await api.post("/v1/chat", json={**body, "message": "me too"})
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "1"
            await async_wait_until(
                lambda: sample_shows("refused_turns", 2), timeout=0.9, what="refusedTurns 2"
            )
            assert (await slow).status_code == 200
            await redis.aclose()
