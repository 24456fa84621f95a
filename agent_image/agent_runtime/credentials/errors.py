"""The errors of authentication and tenant checks; `api_errors` maps them to 401/403/422/503."""

from __future__ import annotations


class AuthenticationError(Exception):
    """No credentials, or credentials this runtime does not accept (401).

    The message never says which part failed beyond "missing" or "not accepted", so a
    caller cannot probe which tokens or ServiceAccounts exist.
    """


class TenantForbiddenError(Exception):
    """The credentials do not allow the tenant the request names (403)."""


class TenantRequiredError(ValueError):
    """A caller trusted for any tenant named none, or named one that is not a tenant (422)."""


class CredentialsUnavailableError(Exception):
    """The credentials could not be checked now (the Kubernetes API did not answer): 503."""
