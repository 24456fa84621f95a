"""The servers `bench_chat` runs beside the runtime (each in its own uvicorn process).

- `model_app`: an instant OpenAI-compatible model (answers at once, no tool calls);
- `bare_app`: the baseline, a bare FastAPI endpoint that asks that model once through
  the same `openai` client and returns the answer: the model's own time plus the least
  a chat endpoint can do, so (runtime - bare) is what our turn adds.
"""

from __future__ import annotations

import os
from typing import Any

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


bare_app = FastAPI()
_client = openai.AsyncOpenAI(
    base_url=os.environ.get("BENCH_MODEL_URL", "http://127.0.0.1:1/v1"),
    api_key="unused",
    max_retries=0,
)


@bare_app.post("/v1/chat")
async def bare_chat(request: Request) -> dict[str, Any]:
    body = await request.json()
    reply = await _client.chat.completions.create(
        model="instant", messages=[{"role": "user", "content": body["message"]}]
    )
    return {"answer": reply.choices[0].message.content}
