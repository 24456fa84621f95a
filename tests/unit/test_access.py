"""Who may call, and as which tenant: `Caller.tenant`, the tokens file, TokenReview."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.access import (
    AuthenticationError,
    Caller,
    CredentialsUnavailableError,
    TenantForbiddenError,
    TenantRequiredError,
)
from agent_runtime.config.auth import (
    AllowedServiceAccount,
    AuthConfig,
    KubernetesApi,
    ServiceAccountAuth,
)
from agent_runtime.credentials.authenticator import Authenticator
from agent_runtime.credentials.token_review import TokenReviewer, unverified_expiry
from agent_runtime.credentials.tokens_file import TokensFile, parse_tokens

tenants = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,20}\Z")


@given(own=tenants, other=tenants)
def test_a_caller_bound_to_one_tenant_acts_only_in_it(own: str, other: str) -> None:
    caller = Caller("token:app", frozenset({own}))
    assert caller.tenant(None) == own
    assert caller.tenant(own) == own
    if other != own:
        with pytest.raises(TenantForbiddenError):
            caller.tenant(other)


@given(requested=tenants)
def test_a_caller_for_any_tenant_must_name_one(requested: str) -> None:
    caller = Caller("token:gateway", None)
    assert caller.tenant(requested) == requested
    with pytest.raises(TenantRequiredError):
        caller.tenant(None)


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 200, "\ud800", "*"])
def test_a_requested_value_that_is_no_tenant_is_422_for_everyone(bad: str) -> None:
    for caller in (Caller("a", None), Caller("b", frozenset({"alice"}))):
        with pytest.raises(TenantRequiredError):
            caller.tenant(bad)


def test_tokens_file_binds_tokens_to_tenants() -> None:
    callers = parse_tokens(
        "tokens:\n"
        "  - {name: gw, token: aaaaaaaaaaaaaaaaaaaa, tenant: '*'}\n"
        "  - {name: acme, token: bbbbbbbbbbbbbbbbbbbb, tenant: acme}\n"
    )
    assert sorted(c.subject for c in callers.values()) == ["token:acme", "token:gw"]
    assert {c.tenants for c in callers.values()} == {None, frozenset({"acme"})}


@pytest.mark.parametrize(
    "text",
    [
        "tokens: [{name: a, token: short, tenant: x}]",  # guessable
        "tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, tenant: ../x}]",
        "tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa}]",  # the tenant is always stated
        "tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, tenant: x},"
        " {name: b, token: aaaaaaaaaaaaaaaaaaaa, tenant: y}]",
        "[: not yaml",
    ],
)
def test_a_bad_tokens_document_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"^(?!.*aaaaaaaaaaaa)"):
        parse_tokens(text)


def test_tokens_file_is_reread_when_it_changes_and_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    now = [0.0]
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, tenant: x}]")
    tokens = TokensFile(path, clock=lambda: now[0], recheck_seconds=1)
    assert tokens.lookup("aaaaaaaaaaaaaaaaaaaa") == Caller("token:a", frozenset({"x"}))
    path.write_text("tokens: [{name: b, token: bbbbbbbbbbbbbbbbbbbbbb, tenant: y}]")
    now[0] = 2
    assert tokens.lookup("aaaaaaaaaaaaaaaaaaaa") is None
    assert tokens.lookup("bbbbbbbbbbbbbbbbbbbbbb") == Caller("token:b", frozenset({"y"}))
    path.write_text("garbage: [")
    now[0] = 4
    assert tokens.lookup("bbbbbbbbbbbbbbbbbbbbbb") is not None  # last good kept


def test_a_missing_tokens_file_accepts_nothing(tmp_path: Path) -> None:
    assert TokensFile(tmp_path / "absent").lookup("aaaaaaaaaaaaaaaaaaaa") is None


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class _ApiServer:
    """A TokenReview endpoint (unit tests only; the integration test uses a real one)."""

    def __init__(self, username: str | None, audiences: list[str]) -> None:
        self.username = username
        self.audiences = audiences
        self.reviews: list[dict[str, Any]] = []
        self.down = False
        self.forbidden = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused")
        if self.forbidden:
            self.reviews.append({})
            return httpx.Response(403, json={"kind": "Status", "reason": "Forbidden"})
        assert request.headers["authorization"] == "Bearer own-token"
        review = json.loads(request.content)
        self.reviews.append(review)
        status: dict[str, Any] = {"authenticated": self.username is not None}
        if self.username is not None:
            status["user"] = {"username": self.username}
            status["audiences"] = self.audiences
        return httpx.Response(201, json={"status": status})


def _reviewer(
    tmp_path: Path, server: _ApiServer, clock: list[float]
) -> tuple[TokenReviewer, httpx.AsyncClient]:
    own = tmp_path / "own-token"
    own.write_text("own-token\n")
    settings = ServiceAccountAuth(
        audience="agentpool",
        allow=[
            AllowedServiceAccount(namespace="shop", name="triage", tenant="*"),
            AllowedServiceAccount(namespace="acme", tenant="acme"),
        ],
        cache_seconds=60,
        api=KubernetesApi(url="https://api.test", token_file=own, ca_file=None),
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(server.handle))
    return TokenReviewer(settings, client, clock=lambda: clock[0]), client


async def test_token_review_maps_service_accounts_to_tenants_and_caches(tmp_path: Path) -> None:
    server = _ApiServer("system:serviceaccount:shop:triage", ["agentpool"])
    clock = [1000.0]
    reviewer, client = _reviewer(tmp_path, server, clock)
    token = _jwt({"exp": 1030})
    async with client:
        assert await reviewer.review(token) == Caller("serviceaccount:shop/triage", None)
        assert server.reviews[0]["spec"] == {"token": token, "audiences": ["agentpool"]}
        assert await reviewer.review(token) is not None
        assert len(server.reviews) == 1  # cached
        clock[0] = 1031  # past the token's exp: asked again
        await reviewer.review(token)
        assert len(server.reviews) == 2
        server.down = True
        with pytest.raises(CredentialsUnavailableError):
            await reviewer.review(_jwt({"sub": "other"}))


@pytest.mark.parametrize(
    ("username", "audiences", "expected"),
    [
        ("system:serviceaccount:acme:anything", ["agentpool"], frozenset({"acme"})),
        ("system:serviceaccount:shop:someone-else", ["agentpool"], "refused"),
        ("system:serviceaccount:shop:triage", ["another-audience"], "refused"),
        ("alice@example.com", ["agentpool"], "refused"),  # a user, not a ServiceAccount
        (None, [], "refused"),
    ],
)
async def test_token_review_refusals(
    tmp_path: Path, username: str | None, audiences: list[str], expected: object
) -> None:
    server = _ApiServer(username, audiences)
    reviewer, client = _reviewer(tmp_path, server, [0.0])
    async with client:
        found = await reviewer.review(_jwt({}))
    assert (found.tenants if found else "refused") == expected


async def test_a_pool_that_may_not_review_answers_503_says_why_once_and_recovers(
    tmp_path: Path,
) -> None:
    from structlog.testing import capture_logs

    server = _ApiServer("system:serviceaccount:shop:triage", ["agentpool"])
    server.forbidden = True  # the ServiceAccount is not (yet) in the token-reviewer binding
    reviewer, client = _reviewer(tmp_path, server, [0.0])
    token = _jwt({})
    async with client:
        with capture_logs() as logs:
            for _ in range(3):
                with pytest.raises(CredentialsUnavailableError):
                    await reviewer.review(token)
            assert len(server.reviews) == 3  # a refusal to ask is not cached
            server.forbidden = False  # the operator bound it
            assert await reviewer.review(token) == Caller("serviceaccount:shop/triage", None)
    said = [e["event"] for e in logs if e["log_level"] == "error"]
    assert len(said) == 1
    assert "may not create tokenreviews" in said[0]
    assert any(e["event"] == "TokenReviews allowed again" for e in logs)


def test_unverified_expiry_survives_garbage() -> None:
    assert unverified_expiry(_jwt({"exp": 5})) == 5
    for junk in ["", "a.b.c", "a.!!!.c", _jwt({"exp": "soon"}), _jwt({"exp": True})]:
        assert unverified_expiry(junk) is None


async def test_authenticator_fails_closed(tmp_path: Path) -> None:
    nothing = Authenticator.from_config(AuthConfig())
    for header in [None, "", "Bearer", "Bearer x", "Basic YTpi", "bearer " + "a" * 20000]:
        with pytest.raises(AuthenticationError):
            await nothing.authenticate(header)
    disabled = Authenticator.from_config(AuthConfig(mode="disabled"))
    assert (await disabled.authenticate(None)).tenants is None
    assert disabled.describe()["mode"] == "disabled"


def test_the_documented_auth_section_parses_and_round_trips() -> None:
    from agent_runtime.config import dump_runtime_config, parse_runtime_config

    config = parse_runtime_config(
        """
        pool: {namespace: shop, name: support}
        auth:
          mode: required
          tokensFile: /etc/agentpool/auth/tokens.yaml
          serviceAccounts:
            audience: agentpool/shop/support
            allow:
              - {namespace: shop, name: triage, tenant: "*"}
              - {namespace: acme-apps, tenant: acme}
            api:
              tokenFile: /var/run/secrets/agentpool/kubernetes/token
              caFile: /var/run/secrets/agentpool/kubernetes/ca.crt
        tools:
          definitions:
            - name: support
              agent:
                pool: support
                namespace: shop
                tokenFile: /var/run/secrets/agentpool/identity/token
        """
    )
    assert config.auth.service_accounts is not None
    assert config.auth.service_accounts.allow[1].name is None
    assert parse_runtime_config(dump_runtime_config(config)) == config


@pytest.mark.parametrize(
    "auth",
    [
        {"mode": "off"},
        {"tokensFile": "/x", "extra": 1},
        {"serviceAccounts": {"audience": ""}},
        {"serviceAccounts": {"audience": "a", "allow": [{"namespace": "Bad_NS", "tenant": "*"}]}},
        {"serviceAccounts": {"audience": "a", "allow": [{"namespace": "ns", "tenant": "../x"}]}},
    ],
)
def test_a_bad_auth_section_is_refused_at_start_up(auth: dict[str, Any]) -> None:
    from agent_runtime.config import RuntimeConfigError, parse_runtime_config

    with pytest.raises(RuntimeConfigError, match="auth"):
        parse_runtime_config(json.dumps({"pool": {"namespace": "a", "name": "b"}, "auth": auth}))
