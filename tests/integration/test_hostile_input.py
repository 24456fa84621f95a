"""Hostile input against a real runtime process and a real redis-server.

Hypothesis generates what an attacker would send (non-finite numbers, unpaired
surrogates, deep and huge bodies, traversal and concatenation tricks in tenants and
keys, junk credentials); every answer must be a 4xx in the one error shape or a 2xx,
never a 5xx, and the process must stay alive. Schemathesis then walks the OpenAPI
document (positive and negative cases) with the same two checks, plus "every status
returned is one the document lists", and runs its state machine over sequences of
operations (stateful). docs/security.md reports the results.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from agent_runtime.config import PoolIdentity
from agent_runtime.memory import KeySpace
from tests.support.redis_server import RedisServer
from tests.support.runtime_process import RuntimeProcess, running_runtime
from tests.support.wait import wait_until

MAX_BODY = 64 * 1024

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def hostile_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, hostile_redis: RedisServer
) -> Iterator[RuntimeProcess]:
    redis = hostile_redis
    config = {
        "pool": {"namespace": "tests", "name": "hostile"},
        "tools": {
            "definitions": [
                {
                    "name": "echo",
                    "parameters": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                    "hints": {"readOnly": True},
                    "command": {"argv": ["echo", "{text}"], "allowedBinaries": ["echo"]},
                }
            ]
        },
        "memory": {
            "redis": {"url": redis.url},
            "episodic": {"embedder": {"kind": "hashing", "dimensions": 64}},
        },
    }
    args = (f"--max-body-bytes={MAX_BODY}", "--header-timeout=2", "--body-timeout=2")
    with running_runtime(config, tmp_path_factory.mktemp("hostile"), args=args) as proc:
        yield proc


@pytest.fixture(scope="module")
def gateway(runtime: RuntimeProcess) -> Iterator[httpx.Client]:
    with runtime.client(runtime.gateway_token) as client:
        yield client


def assert_no_5xx(response: httpx.Response, runtime: RuntimeProcess) -> dict[str, Any] | None:
    """A 4xx carries the one error shape; nothing is a 5xx; the process lives."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert runtime.alive(), runtime.log_tail()
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["type"], str)
        assert isinstance(body["error"]["message"], str)
        found: dict[str, Any] = body["error"]
        return found
    return None


# ----------------------------------------------------------------------------- strategies

clean_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(clean_text, inner, max_size=3),
    max_leaves=10,
)
lone_surrogate = st.builds(
    lambda a, s, b: a + s + b,
    clean_text,
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    clean_text,
)
poison = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), lone_surrogate)
poisoned = st.recursive(
    poison | st.builds(lambda key: {key: 1}, lone_surrogate),
    lambda inner: st.one_of(
        st.builds(
            lambda before, x, after: [*before, x, *after],
            st.lists(clean_json, max_size=2),
            inner,
            st.lists(clean_json, max_size=2),
        ),
        st.builds(
            lambda key, x, rest: {**rest, key: x},
            clean_text,
            inner,
            st.dictionaries(clean_text, clean_json, max_size=2),
        ),
    ),
    max_leaves=6,
)
"""A JSON-like value with at least one non-finite number or unpaired surrogate somewhere."""


def encode(value: Any) -> bytes:
    """What a hostile client sends: Python's encoder writes NaN/Infinity and \\ud800 escapes."""
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode()


def nested(depth: int, opener: str) -> bytes:
    closer = "]" if opener == "[" else "}"
    inner = '"x":' if opener == "{" else ""
    return ((opener + inner) * depth + "1" + closer * depth).encode()


tenant_tricks = st.one_of(
    st.sampled_from(
        [
            "..",
            "../b",
            "a/../b",
            "%2e%2e",
            "a:lt:b",
            "a%3Ab",
            "a\x00b",
            "*",
            " a",
            "a" * 129,
            "ﬀ",
            "alice:conv",
            "tenant:alice",
        ]
    ),
    st.text(min_size=1, max_size=40),
)
key_tricks = st.one_of(
    st.sampled_from(
        ["..", "../../etc/passwd", "a:lt:b", "k%00", "*", "lt:x", ":", "k" * 600, "{k}", "\\"]
    ),
    st.text(min_size=1, max_size=60),
)


# ----------------------------------------------------------------------------- bodies


@HOSTILE
@given(value=poisoned, route=st.sampled_from(["put", "search", "call"]))
def test_non_finite_numbers_and_surrogates_anywhere_are_422(
    runtime: RuntimeProcess, gateway: httpx.Client, value: Any, route: str
) -> None:
    bodies = {
        "put": ("PUT", "/v1/memory/alice/k", {"value": value}),
        "search": ("POST", "/v1/memory/alice/search", {"query": "q", "k": 1, "x": value}),
        "call": ("POST", "/v1/tools/remember/call", {"arguments": {"v": value}, "tenant": "a"}),
    }
    method, path, body = bodies[route]
    response = gateway.request(
        method, path, content=encode(body), headers={"content-type": "application/json"}
    )
    error = assert_no_5xx(response, runtime)
    assert response.status_code == 422
    assert error is not None
    assert error["type"] == "InvalidJson"


@HOSTILE
@given(depth=st.integers(65, 30_000), opener=st.sampled_from(["[", "{"]))
def test_deep_bodies_are_refused_at_the_door(
    runtime: RuntimeProcess, gateway: httpx.Client, depth: int, opener: str
) -> None:
    body = b'{"value": ' + nested(depth, opener) + b"}"
    response = gateway.put(
        "/v1/memory/alice/deep", content=body, headers={"content-type": "application/json"}
    )
    assert_no_5xx(response, runtime)
    assert response.status_code in (413, 422)


@HOSTILE
@given(size=st.integers(MAX_BODY + 1, 4 * MAX_BODY), chunked=st.booleans())
def test_huge_bodies_are_413(
    runtime: RuntimeProcess, gateway: httpx.Client, size: int, chunked: bool
) -> None:
    payload = b'{"value": "' + b"x" * size + b'"}'
    content: Any = iter([payload[i : i + 8192] for i in range(0, len(payload), 8192)])
    response = gateway.put(
        "/v1/memory/alice/huge",
        content=content if chunked else payload,
        headers={"content-type": "application/json"},
    )
    assert_no_5xx(response, runtime)
    assert response.status_code == 413


@HOSTILE
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_body_are_4xx(
    runtime: RuntimeProcess, gateway: httpx.Client, raw: bytes
) -> None:
    for path in ["/v1/tools/echo/call", "/v1/memory/alice/search"]:
        response = gateway.post(path, content=raw, headers={"content-type": "application/json"})
        assert_no_5xx(response, runtime)


@HOSTILE
@given(value=clean_json)
def test_any_keepable_value_comes_back_unchanged(
    runtime: RuntimeProcess, gateway: httpx.Client, value: Any
) -> None:
    stored = gateway.put("/v1/memory/alice/roundtrip", json={"value": value, "importance": 0.9})
    assert_no_5xx(stored, runtime)
    assert stored.status_code == 200
    recalled = gateway.get("/v1/memory/alice/roundtrip")
    assert recalled.status_code == 200
    assert recalled.json()["value"] == value


# ----------------------------------------------------------------------------- names


@HOSTILE
@given(tenant=tenant_tricks, key=key_tricks)
def test_traversal_and_concatenation_tricks_never_5xx_or_cross(
    runtime: RuntimeProcess, gateway: httpx.Client, tenant: str, key: str
) -> None:
    path = f"/v1/memory/{quote(tenant, safe='')}/{quote(key, safe='')}"
    stored = gateway.put(path, json={"value": [tenant, key], "importance": 0.9})
    assert_no_5xx(stored, runtime)
    if stored.status_code != 200:
        return
    # Whatever was accepted is kept under exactly that (tenant, key), nowhere else.
    assert gateway.get(path).json()["value"] == [tenant, key]
    neighbours = [("alice", f"{tenant}:{key}"), (f"{tenant}:lt", key), ("alice", key)]
    for other_tenant, other_key in neighbours:
        other = gateway.get(
            f"/v1/memory/{quote(other_tenant, safe='')}/{quote(other_key, safe='')}"
        )
        assert_no_5xx(other, runtime)
        if other.status_code == 200:
            assert other.json()["value"] != [tenant, key] or (other_tenant, other_key) == (
                tenant,
                key,
            )
    assert gateway.delete(path).status_code == 200


@HOSTILE
@given(tenant=tenant_tricks, text=st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
def test_tool_calls_with_tricky_tenants_and_arguments_never_5xx(
    runtime: RuntimeProcess, gateway: httpx.Client, tenant: str, text: str
) -> None:
    for name, arguments in [
        ("echo", {"text": text}),
        ("recall", {"key": text or "k"}),
        ("remember", {"key": text or "k", "value": text}),
        ("search_memory", {"query": text or "q"}),
    ]:
        response = gateway.post(
            f"/v1/tools/{name}/call", json={"arguments": arguments, "tenant": tenant}
        )
        assert_no_5xx(response, runtime)


@HOSTILE
@given(
    header=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
        st.builds(
            lambda t: f"Bearer {t}",
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
        ),
        st.just("Bearer " + "a.b.c"),
        st.just("Bearer " + "x" * 20000),
    )
)
def test_junk_credentials_are_401(runtime: RuntimeProcess, header: str) -> None:
    header = header.strip()  # a header value cannot start or end with blanks on the wire
    with runtime.client() as anonymous:
        response = anonymous.get("/v1/memory/alice/k", headers={"Authorization": header})
    assert_no_5xx(response, runtime)
    assert response.status_code in (401, 431, 400)


def test_tenants_with_their_own_tokens_cannot_reach_each_other(
    runtime: RuntimeProcess,
) -> None:
    tokens = runtime.tenant_tokens
    with runtime.client(tokens["alice"]) as alice, runtime.client(tokens["bob"]) as bob:
        assert alice.put("/v1/memory/alice/diary", json={"value": "a"}).status_code == 200
        for method, path, body in [
            ("GET", "/v1/memory/alice/diary", None),
            ("DELETE", "/v1/memory/alice/diary", None),
            ("PUT", "/v1/memory/alice/diary", {"value": "overwritten"}),
            ("POST", "/v1/memory/alice/search", {"query": "a"}),
            ("POST", "/v1/tools/recall/call", {"arguments": {"key": "diary"}, "tenant": "alice"}),
        ]:
            assert bob.request(method, path, json=body).status_code == 403
        mine = bob.post("/v1/tools/recall/call", json={"arguments": {"key": "diary"}})
        assert mine.json()["value"] == {"found": False}
        assert alice.get("/v1/memory/alice/diary").json()["value"] == "a"


# ----------------------------------------------------------------------------- slow clients


def _connect(runtime: RuntimeProcess) -> socket.socket:
    host, port = runtime.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_client_that_drips_its_headers_is_dropped(runtime: RuntimeProcess) -> None:
    with _connect(runtime) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        conn.settimeout(10)
        assert conn.recv(1024) == b""  # closed by the server after --header-timeout


def test_a_client_that_stalls_its_body_gets_408(runtime: RuntimeProcess) -> None:
    with _connect(runtime) as conn:
        conn.sendall(
            b"PUT /v1/memory/alice/k HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {runtime.gateway_token}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"value": '
        )
        conn.settimeout(10)
        answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_redis_answering_with_errors_is_a_clean_502_for_that_key(
    runtime: RuntimeProcess, gateway: httpx.Client, hostile_redis: RedisServer
) -> None:
    keys = KeySpace("agentpool", PoolIdentity(namespace="tests", name="hostile"))
    with redis.Redis.from_url(hostile_redis.url) as conn:
        conn.rpush(keys.long_term("alice", "wrongtype"), "x")  # WRONGTYPE on GET
        conn.set(keys.long_term("alice", "garbage"), b"\x00J[NaN]")
    for key in ("wrongtype", "garbage"):
        response = gateway.get(f"/v1/memory/alice/{key}")
        assert response.status_code == 502, response.text
        message = response.json()["error"]["message"]
        assert "agentpool" not in message
        assert key not in message
    assert gateway.put("/v1/memory/alice/fine", json={"value": 1}).status_code == 200
    assert gateway.get("/v1/memory/alice/fine").json()["value"] == 1


def test_redis_that_stops_answering_is_a_prompt_503_and_recovers(tmp_path: Path) -> None:
    """Redis frozen (SIGSTOP: connections open, no answer) is the timeout kind of Redis
    error: writes, and reads only Redis could answer, are 503 within the socket timeout,
    never a hang, a 500 or a false 404; thawed, the same requests succeed."""
    server = RedisServer()
    server.start()
    assert server.process is not None
    config = {
        "pool": {"namespace": "tests", "name": "frozen"},
        "memory": {"redis": {"url": server.url, "socketTimeoutSeconds": 0.5, "retryAttempts": 0}},
        "tasks": {"enabled": True, "pollSeconds": 0.2},
    }
    try:
        with (
            running_runtime(config, tmp_path) as runtime,
            runtime.client(runtime.gateway_token) as gateway,
        ):
            assert gateway.put("/v1/memory/alice/k", json={"value": 1}).status_code == 200
            server.process.send_signal(signal.SIGSTOP)
            try:
                for method, path, body in [
                    ("PUT", "/v1/memory/alice/k2", {"value": 2}),
                    ("GET", "/v1/memory/alice/never-written", None),
                    ("POST", "/v1/tasks", {"input": "m", "tenant": "alice"}),
                ]:
                    started = time.monotonic()
                    answer = gateway.request(method, path, json=body)
                    assert answer.status_code == 503, (method, path, answer.text)
                    assert time.monotonic() - started < 8, "a frozen Redis made a request hang"
                    assert_no_5xx_but_503(answer, runtime)
            finally:
                server.process.send_signal(signal.SIGCONT)
            wait_until(
                lambda: gateway.put("/v1/memory/alice/k2", json={"value": 2}).status_code == 200,
                timeout=15,
                what="writes served again once Redis answers",
            )
            assert gateway.get("/v1/memory/alice/k2").json()["value"] == 2
    finally:
        server.cleanup()


def assert_no_5xx_but_503(response: httpx.Response, runtime: RuntimeProcess) -> None:
    """A 503 in the one error shape, naming no Redis key; the process lives."""
    assert runtime.alive(), runtime.log_tail()
    error = response.json()["error"]
    assert set(response.json()) == {"error"}
    assert "agentpool" not in error["message"]


def test_a_connection_cap_holds_and_frees(tmp_path: Path) -> None:
    config = {"pool": {"namespace": "tests", "name": "capped"}}
    args = ("--max-connections=4", "--header-timeout=1")
    with running_runtime(config, tmp_path, args=args) as capped:
        idle = [_connect(capped) for _ in range(4)]
        try:

            def refused() -> bool:
                with capped.client() as probe:
                    return probe.get("/healthz").status_code == 503

            wait_until(refused, timeout=5, what="the cap to refuse a fifth connection")
        finally:
            for conn in idle:
                conn.close()

        def served() -> bool:
            with capped.client() as probe:
                return probe.get("/healthz").status_code == 200

        wait_until(served, timeout=10, what="the runtime to serve again")
        assert capped.alive()


def test_the_process_is_alive_and_well_after_everything(runtime: RuntimeProcess) -> None:
    with runtime.client() as anonymous:
        wait_until(lambda: anonymous.get("/healthz").status_code == 200, timeout=10, what="healthz")
    assert runtime.alive()
    assert "Traceback" not in runtime.log.read_text(errors="replace")


# ----------------------------------------------------------------------------- schemathesis


def _operations(runtime: RuntimeProcess) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{runtime.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_openapi_document_holds_no_5xx(runtime: RuntimeProcess, mode: GenerationMode) -> None:
    """Every operation of the document, with generated valid (positive) and invalid
    (negative) requests: no 5xx, every status one the document lists, process alive."""
    headers = {"Authorization": f"Bearer {runtime.gateway_token}"}
    operations = _operations(runtime)
    assert len(operations) >= 8
    unsatisfiable: list[str] = []
    for operation in operations:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=runtime.url,
                headers=headers,
                checks=[not_a_server_error, status_code_conformance],
            )
            assert runtime.alive(), runtime.log_tail()

        try:
            check()
        except Unsatisfiable:
            # An operation with nothing to get wrong (no parameters, no body) has no
            # negative cases; its positive run above covers it.
            assert mode is GenerationMode.NEGATIVE
            unsatisfiable.append(operation.label)
    assert len(unsatisfiable) < len(operations) / 2, unsatisfiable


# ----------------------------------------------------------------------------- stateful

MEMORY = "/v1/memory/{tenant}/{key}"


def _linked_document(runtime: RuntimeProcess) -> dict[str, Any]:
    """The runtime's OpenAPI document with links between the memory operations (what a
    client does next with a key it wrote: read it, forget it, search its tenant), added
    to the links schemathesis infers itself (a task's id, a conversation's id)."""
    document: dict[str, Any] = httpx.get(f"{runtime.url}/openapi.json", timeout=10).json()
    memory = document["paths"][MEMORY]
    search = document["paths"]["/v1/memory/{tenant}/search"]["post"]
    same_key = {"tenant": "$request.path.tenant", "key": "$request.path.key"}
    links = {
        "Recall": {"operationId": memory["get"]["operationId"], "parameters": same_key},
        "Forget": {"operationId": memory["delete"]["operationId"], "parameters": same_key},
        "Search": {
            "operationId": search["operationId"],
            "parameters": {"tenant": "$request.path.tenant"},
        },
    }
    for method in ("put", "delete"):
        memory[method]["responses"]["200"]["links"] = links
    # Schemathesis starts sequences only from operations likely to succeed on random
    # input (POSTs, GETs without path parameters): reach a write from one of those, with
    # its tenant, key and value generated.
    tools = document["paths"]["/v1/tools"]["get"]["responses"]["200"]
    tools["links"] = {"Remember": {"operationId": memory["put"]["operationId"]}}
    return document


def test_stateful_sequences_hold_no_5xx_and_read_what_they_wrote(
    runtime: RuntimeProcess,
) -> None:
    """Schemathesis's state machine over the linked document: sequences such as write,
    read, forget, read again; enqueue a task, read it. Every step: no 5xx, every status
    one the document lists, the process alive; and memory behaves as a store: a key
    written in a scenario reads back its last value, and once forgotten is 404."""
    schema = schemathesis.openapi.from_dict(_linked_document(runtime))
    headers = {"Authorization": f"Bearer {runtime.gateway_token}"}
    seen: dict[str, int] = {}

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.written: dict[tuple[str, str], Any] = {}
            self.forgotten: set[tuple[str, str]] = set()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": runtime.url, "headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance],
                transport_kwargs=kwargs,
            )
            assert runtime.alive(), runtime.log_tail()
            label = f"{case.method} {case.path}"
            seen[label] = seen.get(label, 0) + 1
            if case.path != MEMORY or response.status_code != 200:
                return
            where = (case.path_parameters["tenant"], case.path_parameters["key"])
            if case.method == "PUT":
                self.written[where] = case.body["value"]
                self.forgotten.discard(where)
            elif case.method == "DELETE":
                self.written.pop(where, None)
                self.forgotten.add(where)
            elif case.method == "GET" and where in self.written:
                seen["read back"] = seen.get("read back", 0) + 1
                assert response.json()["value"] == self.written[where]
            if case.method == "GET":
                assert where not in self.forgotten, f"{where} read back after it was forgotten"

        def after_call(self, response: Any, case: Any) -> None:
            # A forgotten key that is read again must be 404, not a stale value.
            if case.path == MEMORY and case.method == "GET" and response.status_code == 404:
                where = (case.path_parameters["tenant"], case.path_parameters["key"])
                assert where not in self.written, f"{where} was written and reads 404"

    Machine.run(
        settings=settings(
            max_examples=60,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The sequences reached the memory operations and the tasks, not only one route.
    assert {f"PUT {MEMORY}", f"GET {MEMORY}", f"DELETE {MEMORY}"} <= set(seen), seen
    assert seen.get("read back", 0) > 0, seen  # the store invariant was exercised
    print("stateful steps per operation:", dict(sorted(seen.items())))
