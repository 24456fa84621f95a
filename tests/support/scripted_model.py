"""A scripted OpenAI-compatible model server for tests (chat completions).

It answers by a rule on the last message, so a test says what the model does in the
message it sends:

    "call NAME {json}"            one tool call (several joined with " && ")
    "slow SECONDS"                answers after SECONDS
    anything else                 "echo: <message>"
    after tool results            "tool said: <result>; <result>..."

With `"stream": true` the same answer comes as chunks: the text word by word, each tool
call in one piece, then the usage. `ScriptedModel.mode` switches the whole server to
"down" (HTTP 500) or adds `delay` seconds to every answer; `requests` records what it
was asked.

Standalone, it stands in for an LLM (make dev without a model, the pod runner's tests,
the autoscaling benchmark), with a think time added to every answer:

    python -m tests.support.scripted_model --port 18070 --think-seconds 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass
class ScriptedModel:
    mode: str = "ok"
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        last = messages[-1]
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if last["role"] == "tool":
            results = []
            for m in reversed(messages):
                if m["role"] != "tool":
                    break
                results.append(m["content"])
            message["content"] = "tool said: " + "; ".join(reversed(results))
        elif isinstance(last.get("content"), str) and last["content"].startswith("call "):
            calls = []
            for part in last["content"].split(" && "):
                _, name, *rest = part.split(" ", 2)
                calls.append(
                    {
                        "id": f"call_{next(self._ids)}",
                        "type": "function",
                        "function": {"name": name, "arguments": rest[0] if rest else "{}"},
                    }
                )
            message["tool_calls"] = calls
        else:
            message["content"] = f"echo: {last.get('content')}"
        prompt = sum(len(json.dumps(m)) for m in messages) // 4
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": 7,
                "total_tokens": prompt + 7,
            },
        }

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            if self.mode == "down":
                return JSONResponse({"error": {"message": "scripted outage"}}, status_code=500)
            last = body["messages"][-1].get("content") or ""
            delay = self.delay
            if isinstance(last, str) and last.startswith("slow "):
                delay += float(last.split()[1])
            if delay:
                await asyncio.sleep(delay)
            reply = self.reply(body)
            if body.get("stream"):
                return StreamingResponse(chunks(reply), media_type="text/event-stream")
            return JSONResponse(reply)

        return app


async def chunks(reply: dict[str, Any]) -> AsyncIterator[bytes]:
    """`reply` as a chat-completions stream."""
    message = reply["choices"][0]["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": reply["id"],
            "object": "chat.completion.chunk",
            "created": 0,
            "model": reply["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant"})
    words = (message.get("content") or "").split(" ")
    for i, word in enumerate(words):
        if word or i:
            yield chunk({"content": word if i == 0 else " " + word})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, reply["choices"][0]["finish_reason"])
    usage = {
        "id": reply["id"],
        "object": "chat.completion.chunk",
        "created": 0,
        "model": reply["model"],
        "choices": [],
        "usage": reply["usage"],
    }
    yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"


@contextmanager
def scripted_model_process(log: Path, *, think_seconds: float = 0.0) -> Iterator[str]:
    """The standalone server as a child process; yields its base URL (`.../v1`)."""
    from tests.support.redis_server import REPO_ROOT, free_port
    from tests.support.wait import wait_until

    port = free_port()
    argv = [sys.executable, "-m", "tests.support.scripted_model", f"--port={port}"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, f"--think-seconds={think_seconds}"],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        wait_until(up, timeout=30, what="the scripted model server")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m tests.support.scripted_model",
        description="A scripted OpenAI-compatible chat-completions server (no LLM).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18070)
    parser.add_argument(
        "--think-seconds",
        type=float,
        default=0.0,
        help='added to every answer, as an LLM\'s time to answer ("slow N" adds N more)',
    )
    args = parser.parse_args(argv)
    model = ScriptedModel(delay=args.think_seconds)
    # The list of requests is for in-process tests; a long-running server keeps none.
    model.requests = _Discard()
    model.headers = _Discard()
    uvicorn.run(model.app(), host=args.host, port=args.port, log_level="warning")


class _Discard(list):  # type: ignore[type-arg]
    """A list that keeps nothing (a standalone server answers for hours)."""

    def append(self, item: object) -> None:
        pass


if __name__ == "__main__":
    main()
