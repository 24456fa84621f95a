"""Each request is counted, timed and logged once, under an id it carries throughout."""

from __future__ import annotations

import httpx
import structlog
from fastapi import FastAPI
from structlog.testing import capture_logs

from agent_runtime.request_metrics import REQUESTS, RequestMetrics

log = structlog.get_logger("test")


def app() -> FastAPI:
    made = FastAPI()

    @made.get("/v1/items/{item}")
    async def item(item: str) -> dict[str, str]:
        log.info("inside", item=item)
        return {"item": item}

    @made.get("/livez")
    async def livez() -> dict[str, bool]:
        return {"ok": True}

    made.add_middleware(RequestMetrics)
    return made


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app()), base_url="http://t")


def lines(logs: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    return [line for line in logs if line["event"] == event]


async def test_a_request_is_logged_once_with_its_route_status_time_and_id() -> None:
    before = REQUESTS.labels("/v1/items/{item}", "GET", "200")._value.get()
    async with client() as http:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            answer = await http.get("/v1/items/42", headers={"X-Request-Id": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123"
    [inside] = lines(logs, "inside")
    assert inside["request"] == "abc-123"  # every line of the request carries it
    [line] = lines(logs, "request")
    assert line["log_level"] == "info"
    assert (line["request"], line["method"], line["route"], line["path"], line["status"]) == (
        "abc-123",
        "GET",
        "/v1/items/{item}",
        "/v1/items/42",
        200,
    )
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert REQUESTS.labels("/v1/items/{item}", "GET", "200")._value.get() == before + 1


async def test_an_unfit_request_id_is_replaced_not_echoed() -> None:
    async with client() as http:
        for given in ("has spaces", "x" * 65, "new\nline", ""):
            with capture_logs() as logs:
                answer = await http.get("/v1/items/1", headers={"X-Request-Id": given})
            made = answer.headers["x-request-id"]
            assert made != given
            assert len(made) == 16
            assert lines(logs, "request")[0]["request"] == made
        with capture_logs() as logs:
            answer = await http.get("/v1/items/1")
        assert len(answer.headers["x-request-id"]) == 16


async def test_probes_and_unknown_paths() -> None:
    async with client() as http:
        with capture_logs() as logs:
            await http.get("/livez")
            missing = await http.get("/nowhere")
    probe, unknown = lines(logs, "request")
    assert probe["log_level"] == "debug"  # a probe every few seconds stays out of INFO
    assert (unknown["route"], unknown["status"], unknown["log_level"]) == ("unmatched", 404, "info")
    assert missing.status_code == 404
