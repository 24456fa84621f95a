"""A closed-loop load generator for a pool's front: `users` callers, each sending one
/v1/chat after the other, as many at once as the current target says.

    async with LoadGenerator(front_url, token) as load:
        load.set_users(8)        # 8 callers, each with one turn in flight at a time
        ...
        load.set_users(0)        # callers finish the turn they hold, then stop
    load.stats                   # ok / refused (503, retried) / failed

A caller lowers in number only between its turns: nothing is cancelled on the client
side, so every turn it started ends with an answer the server chose. A 503 (the replica
is full or draining, or the front has no ready pod yet) is retried after its
Retry-After (capped), as the runtime's clients are told to; any other status, or a
broken connection, is a failure: a turn the pool cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx

RETRY_CAP_SECONDS = 0.25
"""The most a caller waits before retrying a 503 (the runtime says Retry-After: 1)."""


@dataclass
class Failure:
    status: int | None
    detail: str
    at: float


@dataclass
class LoadStats:
    ok: int = 0
    """Turns answered 200."""
    refused: int = 0
    """503 answers (full, draining, no ready pod), each retried."""
    failed: list[Failure] = field(default_factory=list)
    """Anything else: a cut turn, a 5xx, a broken connection, a turn given up on."""


class LoadGenerator:
    """Closed-loop callers against one front URL."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        message: str = "hello",
        give_up_seconds: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.message = message
        self._headers = {"Authorization": f"Bearer {token}"}
        self._give_up = give_up_seconds
        self._target = 0
        self._callers: dict[int, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self.stats = LoadStats()

    async def __aenter__(self) -> LoadGenerator:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._give_up, connect=5.0),
            # Below the front's keep-alive (uvicorn's 5 s): no request on a closing connection.
            limits=httpx.Limits(
                max_connections=500, max_keepalive_connections=100, keepalive_expiry=2.0
            ),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()

    @property
    def users(self) -> int:
        return self._target

    def set_users(self, count: int) -> None:
        """Run `count` callers from now on (extra ones stop after their current turn)."""
        self._target = count
        for index in range(count):
            if index not in self._callers or self._callers[index].done():
                self._callers[index] = asyncio.create_task(self._caller(index))

    async def drain(self) -> None:
        """No callers: wait until every turn in flight has its answer."""
        self.set_users(0)
        tasks = list(self._callers.values())
        if tasks:
            await asyncio.gather(*tasks)
        self._callers.clear()

    async def _caller(self, index: int) -> None:
        while index < self._target:
            await self.turn()

    async def turn(self, message: str | None = None) -> None:
        """One turn, retried on 503 until answered or given up on; counted in `stats`."""
        assert self._client is not None, "use the generator as an async context manager"
        body = {"message": message or self.message}
        deadline = time.monotonic() + self._give_up
        while True:
            try:
                answer = await self._client.post(
                    f"{self.url}/v1/chat", json=body, headers=self._headers
                )
            except httpx.HTTPError as exc:
                self.stats.failed.append(Failure(None, repr(exc), time.time()))
                return
            if answer.status_code == 200:
                self.stats.ok += 1
                return
            if answer.status_code != 503 or time.monotonic() >= deadline:
                failure = Failure(answer.status_code, answer.text[:300], time.time())
                self.stats.failed.append(failure)
                return
            self.stats.refused += 1
            wait = RETRY_CAP_SECONDS
            with contextlib.suppress(ValueError):
                wait = float(answer.headers.get("retry-after", RETRY_CAP_SECONDS))
            await asyncio.sleep(min(wait, RETRY_CAP_SECONDS))
