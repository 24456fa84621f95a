"""The servers `bench_chat` runs beside the runtime (each in its own uvicorn process).

- `model_app`: an instant OpenAI-compatible model (answers at once, no tool calls);
- `bare_app`: the baseline, a bare FastAPI endpoint that asks that model once through
  the same `openai` client and returns the answer: the model's own time plus the least
  a chat endpoint can do, so (runtime - bare) is what our turn adds. A request that names
  a `conversationId` continues a history kept in a dict (no durability, no second
  writer, no tenant: the least a chat endpoint with conversations can do), sent whole
  to the model as the runtime sends its own. Its tool route is
  the least a cached tool call can be: the arguments as the key of a dict in memory,
  the upstream (`model_app`'s `/items/{q}`) asked on a miss.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import openai
from fastapi import FastAPI, Request

model_app = FastAPI()


@model_app.post("/v1/chat/completions")
async def complete(request: Request) -> dict[str, Any]:
    body = await request.json()
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


@model_app.get("/items/{q}")
async def item(q: str) -> dict[str, Any]:
    """The upstream of the benchmark's HTTP tool (asked once per argument: then cached)."""
    return {"id": q, "name": f"item {q}", "stock": 3}


bare_app = FastAPI()
_client = openai.AsyncOpenAI(
    base_url=os.environ.get("BENCH_MODEL_URL", "http://127.0.0.1:1/v1"),
    api_key="unused",
    max_retries=0,
)


_histories: dict[str, list[dict[str, Any]]] = {}


@bare_app.post("/v1/chat")
async def bare_chat(request: Request) -> dict[str, Any]:
    body = await request.json()
    history = _histories.setdefault(body["conversationId"], []) if "conversationId" in body else []
    said = {"role": "user", "content": body["message"]}
    reply = await _client.chat.completions.create(
        model="instant",
        messages=[{"role": "system", "content": "be brief"}, *history, said],  # type: ignore[list-item]
    )
    answer = reply.choices[0].message.content
    history.extend([said, {"role": "assistant", "content": answer}])
    return {"answer": answer}


_upstream = httpx.AsyncClient(
    base_url=os.environ.get("BENCH_MODEL_URL", "http://127.0.0.1:1/v1").removesuffix("/v1")
)
_results: dict[str, Any] = {}


@bare_app.post("/v1/tools/{name}/call")
async def bare_tool(name: str, request: Request) -> dict[str, Any]:
    body = await request.json()
    key = name + json.dumps(body["arguments"], sort_keys=True)
    if key not in _results:
        reply = await _upstream.get(f"/items/{body['arguments']['q']}")
        _results[key] = reply.json()
    return {"tool": name, "result": _results[key]}
