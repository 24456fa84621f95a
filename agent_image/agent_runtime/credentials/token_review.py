"""Projected ServiceAccount tokens, checked by a TokenReview against the Kubernetes API.

A pool that calls another pool as a tool presents a token the kubelet projected for it
with the called pool's audience; the called pool asks the API server who that is
(`POST /apis/authentication.k8s.io/v1/tokenreviews` with the audience), then maps the
ServiceAccount to a tenant through `auth.serviceAccounts.allow`. The API server does the
signature, expiry, audience and "is the pod still alive" checks, so no JWT library and
no issuer keys are needed here.

Answers are cached by the token's digest for `cacheSeconds` (never past the token's own
`exp`), and refusals for a few seconds, in a bounded LRU, so a burst of calls costs one
review and a flood of junk tokens neither grows memory nor floods the API server.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from collections import OrderedDict
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent_runtime.config.auth import ANY_TENANT, ServiceAccountAuth
from agent_runtime.credentials.caller import Caller
from agent_runtime.credentials.errors import CredentialsUnavailableError
from agent_runtime.credentials.tokens_file import digest
from agent_runtime.resilience.clock import WallClock, wall_clock

log = structlog.get_logger(__name__)

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
REFUSAL_CACHE_SECONDS = 5.0
CACHE_ENTRIES = 4096
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def looks_like_jwt(token: str) -> bool:
    """A ServiceAccount token is a JWS: three base64url parts."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


def unverified_expiry(token: str) -> float | None:
    """The `exp` claim, read without verifying (only to bound the cache; the API server
    verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def read_token(path: Path) -> str:
    """A token from a file (the kubelet rotates projected tokens in place)."""
    return path.read_text(encoding="utf-8").strip()


class TokenReviewer:
    """Resolves projected ServiceAccount tokens to callers."""

    def __init__(
        self,
        settings: ServiceAccountAuth,
        client: httpx.AsyncClient,
        *,
        clock: WallClock = wall_clock,
    ) -> None:
        self.settings = settings
        self._client = client
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Caller | None, float]] = OrderedDict()
        self._denied = False

    def _remember(self, key: str, caller: Caller | None, until: float) -> None:
        self._cache[key] = (caller, until)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def _caller_for(self, username: str) -> Caller | None:
        if not username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        for allowed in self.settings.allow:
            if allowed.namespace == namespace and allowed.name in (None, name):
                tenants = None if allowed.tenant == ANY_TENANT else frozenset({allowed.tenant})
                return Caller(subject=f"serviceaccount:{namespace}/{name}", tenants=tenants)
        return None

    async def review(self, token: str) -> Caller | None:
        """The caller of a token, or None when it is not accepted.

        `CredentialsUnavailableError` when the API server cannot answer now.
        """
        now = self._clock()
        key = digest(token)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(key)
            return cached[0]
        status = await self._ask(token)
        caller: Caller | None = None
        if (
            status.get("authenticated") is True
            and self.settings.audience in (status.get("audiences") or [self.settings.audience])
            and isinstance(status.get("user"), dict)
        ):
            caller = self._caller_for(str(status["user"].get("username", "")))
        if caller is None:
            self._remember(key, None, now + REFUSAL_CACHE_SECONDS)
            return None
        until = now + self.settings.cache_seconds
        expiry = unverified_expiry(token)
        if expiry is not None:
            until = min(until, expiry)
        self._remember(key, caller, until)
        return caller

    async def _ask(self, token: str) -> dict[str, Any]:
        api = self.settings.api
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.settings.audience]},
        }
        try:
            own = read_token(api.token_file)
            response = await self._client.post(
                api.url.rstrip("/") + REVIEW_PATH,
                json=review,
                headers={"Authorization": f"Bearer {own}"},
            )
        except (OSError, httpx.HTTPError) as exc:
            log.warning("token review failed", error=type(exc).__name__)
            raise CredentialsUnavailableError("cannot check the credentials now") from None
        if response.status_code in (401, 403):
            # Not the caller's fault: this pool may not ask. Said loudly once, until a
            # review succeeds again (each refused request would otherwise log it).
            if not self._denied:
                log.error(
                    "the API server refuses this pool's TokenReviews: its ServiceAccount "
                    "may not create tokenreviews (the operator grants it through the "
                    "chart's token-reviewer binding); callers get 503 until it may",
                    status=response.status_code,
                )
            self._denied = True
            raise CredentialsUnavailableError("cannot check the credentials now")
        if response.status_code != 201 and response.status_code != 200:
            log.warning("token review refused", status=response.status_code)
            raise CredentialsUnavailableError("cannot check the credentials now")
        if self._denied:
            log.info("TokenReviews allowed again")
            self._denied = False
        try:
            answer = response.json()
        except ValueError:
            raise CredentialsUnavailableError("cannot check the credentials now") from None
        status = answer.get("status") if isinstance(answer, dict) else None
        return status if isinstance(status, dict) else {}


def review_client(settings: ServiceAccountAuth) -> httpx.AsyncClient:
    """The HTTP client for TokenReviews (trusting the cluster's CA)."""
    ca = settings.api.ca_file
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(ca)) if ca is not None and ca.exists() else True
    )
    return httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(5.0))
