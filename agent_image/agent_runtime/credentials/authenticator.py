"""One authenticator per runtime: the `auth` config section turned into a lookup from an
`Authorization` header to a `Caller`."""

from __future__ import annotations

import httpx
import structlog

from agent_runtime.config.auth import AuthConfig
from agent_runtime.credentials.caller import Caller
from agent_runtime.credentials.errors import AuthenticationError
from agent_runtime.credentials.token_review import TokenReviewer, looks_like_jwt, review_client
from agent_runtime.credentials.tokens_file import TokensFile

log = structlog.get_logger(__name__)

ANONYMOUS = Caller(subject="anonymous (auth disabled)", tenants=None)
MAX_TOKEN_CHARS = 16384


class Authenticator:
    """Checks bearer credentials against the configured sources."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        tokens: TokensFile | None = None,
        reviewer: TokenReviewer | None = None,
    ) -> None:
        self.config = config
        self.tokens = tokens
        self.reviewer = reviewer
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_config(cls, config: AuthConfig) -> Authenticator:
        tokens = TokensFile(config.tokens_file) if config.tokens_file is not None else None
        reviewer: TokenReviewer | None = None
        client: httpx.AsyncClient | None = None
        if config.service_accounts is not None:
            client = review_client(config.service_accounts)
            reviewer = TokenReviewer(config.service_accounts, client)
        made = cls(config, tokens=tokens, reviewer=reviewer)
        made._client = client
        made.announce()
        return made

    @property
    def disabled(self) -> bool:
        return self.config.mode == "disabled"

    def announce(self) -> None:
        """Say at start-up how callers are checked (loudly when they are not)."""
        if self.disabled:
            log.warning("AUTHENTICATION DISABLED: every caller may act for any tenant")
        elif self.tokens is None and self.reviewer is None:
            log.error("auth required but no tokensFile or serviceAccounts: refusing every call")
        else:
            log.info(
                "auth required",
                tokens_file=str(self.config.tokens_file) if self.tokens else None,
                service_accounts=self.reviewer is not None,
            )

    def describe(self) -> dict[str, object]:
        """What /readyz shows (no secrets)."""
        return {
            "mode": self.config.mode,
            "tokens": len(self.tokens) if self.tokens is not None else None,
            "serviceAccounts": self.reviewer is not None,
        }

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller of an `Authorization` header value; `AuthenticationError` when none."""
        if self.disabled:
            return ANONYMOUS
        if not authorization:
            raise AuthenticationError("credentials required: Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError("credentials not accepted")
        if self.tokens is not None:
            found = self.tokens.lookup(token)
            if found is not None:
                return found
        if self.reviewer is not None and looks_like_jwt(token):
            found = await self.reviewer.review(token)
            if found is not None:
                return found
        raise AuthenticationError("credentials not accepted")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
