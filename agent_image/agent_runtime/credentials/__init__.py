"""Who a request comes from: bearer tokens from a mounted Secret, projected ServiceAccount
tokens checked by TokenReview, and the `Caller` they resolve to.

Below the HTTP layer (no FastAPI here): `agent_runtime.access` turns these into the
dependency every route uses; the pool-as-tool reads its own projected token here too.
"""

from agent_runtime.credentials.caller import Caller
from agent_runtime.credentials.errors import (
    AuthenticationError,
    CredentialsUnavailableError,
    TenantForbiddenError,
    TenantRequiredError,
)

__all__ = [
    "AuthenticationError",
    "Caller",
    "CredentialsUnavailableError",
    "TenantForbiddenError",
    "TenantRequiredError",
]
