"""Who may call the API, and as which tenant: the FastAPI side of `agent_runtime.credentials`.

Every route except the probes depends on `authenticated`::

    @router.post("/v1/chat", responses=openapi_responses(403, 502, 504))
    async def chat(body: ChatRequest, caller: CallerDep) -> ...:
        tenant = caller.tenant(body.tenant)   # 403 / 422 as the credentials say

(`CallerDep` is `Annotated[Caller, Depends(authenticated)]`; `openapi_responses` is in
`agent_runtime.api_errors`.)

`authenticated` raises `AuthenticationError` (401 with `WWW-Authenticate: Bearer`) and
`CredentialsUnavailableError` (503); the app's error handlers (`api_errors`) turn them
into the one error shape. `install` puts the authenticator on the app; `create_app`
calls it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

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
    "AuthenticationError",
    "Authenticator",
    "Caller",
    "CallerDep",
    "CredentialsUnavailableError",
    "TenantForbiddenError",
    "TenantRequiredError",
    "authenticated",
    "authenticator",
    "install",
]


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


CallerDep = Annotated[Caller, Depends(authenticated)]
"""The type of a route parameter that needs an authenticated caller."""
