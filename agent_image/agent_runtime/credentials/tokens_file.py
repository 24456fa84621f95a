"""Bearer tokens from a file the operator mounts from a Secret.

The file (YAML or JSON)::

    tokens:
      - {name: gateway, token: "<random>", tenant: "*"}
      - {name: acme-app, token: "<random>", tenant: acme}

Tokens are kept only as SHA-256 digests, and a presented token is looked up by its
digest, so the comparison never runs over the secret itself. The file is re-read when
its modification time changes (the kubelet swaps a Secret volume's files when the
Secret changes), checked at most once per `recheck_seconds`. A file that cannot be read
or parsed keeps the last good tokens and is logged; before any good read, no token is
accepted (fail closed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime.config.auth import ANY_TENANT, TENANT_OR_ANY
from agent_runtime.credentials.caller import Caller
from agent_runtime.resilience.clock import Clock, monotonic

log = structlog.get_logger(__name__)

MIN_TOKEN_CHARS = 16
"""Shorter tokens are refused when the file is read: they can be guessed."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253)
    token: str = Field(min_length=MIN_TOKEN_CHARS, max_length=4096)
    tenant: str = Field(pattern=TENANT_OR_ANY)


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[_Entry] = Field(default_factory=list)


def digest(token: str) -> str:
    """The SHA-256 of a token (what is kept in memory and looked up)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_tokens(text: str) -> dict[str, Caller]:
    """The callers of a tokens document, by token digest; `ValueError` names the problem."""
    try:
        document = _Document.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        # Never echo the document: it holds the secrets.
        raise ValueError(f"not a tokens document ({type(exc).__name__})") from None
    callers: dict[str, Caller] = {}
    for entry in document.tokens:
        key = digest(entry.token)
        if key in callers:
            raise ValueError(f"token of {entry.name!r} is listed twice")
        tenants = None if entry.tenant == ANY_TENANT else frozenset({entry.tenant})
        callers[key] = Caller(subject=f"token:{entry.name}", tenants=tenants)
    return callers


class TokensFile:
    """The bearer tokens of a mounted file, re-read when it changes."""

    def __init__(self, path: Path, *, clock: Clock = monotonic, recheck_seconds: float = 2.0):
        self.path = path
        self._clock = clock
        self._recheck = recheck_seconds
        self._callers: dict[str, Caller] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked_at: float | None = None
        self.reload()

    def reload(self) -> None:
        """Read the file if it changed since the last read."""
        self._checked_at = self._clock()
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            callers = parse_tokens(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("auth tokens file not usable", path=str(self.path), error=str(exc))
            return
        self._stamp = stamp
        self._callers = callers
        log.info("auth tokens loaded", path=str(self.path), tokens=len(callers))

    def lookup(self, token: str) -> Caller | None:
        """The caller a token belongs to, or None."""
        if self._checked_at is None or self._clock() - self._checked_at >= self._recheck:
            self.reload()
        return self._callers.get(digest(token))

    def __len__(self) -> int:
        return len(self._callers)
