"""The authenticated caller of a request, and the one rule for which tenant it acts in."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_runtime.config.limits import TENANT_PATTERN
from agent_runtime.credentials.errors import (
    TenantForbiddenError,
    TenantRequiredError,
)

_TENANT = re.compile(TENANT_PATTERN)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a subject for logs and the tenants its credentials allow.

    `tenants is None` means any tenant (a gateway, another pool acting for its own
    callers); otherwise the credentials carry exactly these tenants (in practice one).
    """

    subject: str
    tenants: frozenset[str] | None

    def tenant(self, requested: str | None) -> str:
        """The tenant to act in: the one the credentials carry.

        A requested tenant the credentials do not allow is `TenantForbiddenError` (403);
        a caller bound to any tenant who names none, or a requested value that is not a
        tenant at all, is `TenantRequiredError` (422).
        """
        if requested is not None and not _TENANT.fullmatch(requested):
            raise TenantRequiredError(f"{requested[:64]!r} is not a tenant name")
        if self.tenants is None:
            if requested is None:
                raise TenantRequiredError(
                    "these credentials may act for any tenant: name the tenant"
                )
            return requested
        if requested is None:
            if len(self.tenants) == 1:
                return next(iter(self.tenants))
            raise TenantRequiredError("these credentials carry several tenants: name one")
        if requested not in self.tenants:
            raise TenantForbiddenError(f"these credentials do not allow tenant {requested!r}")
        return requested
