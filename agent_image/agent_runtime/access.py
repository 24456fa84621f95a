"""Who may call the API, and as which tenant: the FastAPI side of `agent_runtime.credentials`.

Every route except the probes depends on `authenticated`::

    @router.post("/v1/chat")
    async def chat(body: ChatRequest, caller: Caller = Depends(authenticated)) -> ...:
        tenant = caller.tenant(body.tenant)   # 403 / 422 as the credentials say

`authenticated` raises `AuthenticationError` (401 with `WWW-Authenticate: Bearer`) and
`CredentialsUnavailableError` (503); the app's error handlers (`api_errors`) turn them
into the one error shape. `install` puts the authenticator on the app; `create_app`
calls it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from agent_runtime.config.auth import AuthConfig
from agent_runtime.credentials import (
    AuthenticationError,
    Caller,
    CredentialsUnavailableError,
    TenantForbiddenError,
    TenantRequiredError,
)
from agent_runtime.credentials.authenticator import Authenticator

__all__ = [
    "AUTH_RESPONSES",
    "AuthenticationError",
    "Authenticator",
    "Caller",
    "CredentialsUnavailableError",
    "TenantForbiddenError",
    "TenantRequiredError",
    "authenticated",
    "authenticator",
    "install",
]

AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No credentials, or credentials not accepted."},
    403: {"description": "The credentials do not allow the tenant named."},
    503: {"description": "A dependency (Redis, the Kubernetes API) is unavailable."},
}
"""The statuses authentication adds to a route, for its OpenAPI `responses`."""


def install(app: FastAPI, config: AuthConfig) -> Authenticator:
    """Build the authenticator from the `auth` section and attach it to the app."""
    found = Authenticator.from_config(config)
    app.state.authenticator = found
    return found


def authenticator(request: Request) -> Authenticator:
    """The app's authenticator."""
    found: Authenticator = request.app.state.authenticator
    return found


async def authenticated(request: Request) -> Caller:
    """FastAPI dependency: the request's caller, or 401 (503 when it cannot be checked)."""
    caller = await authenticator(request).authenticate(request.headers.get("authorization"))
    request.state.caller = caller
    return caller
