"""Who is calling: the aggregator's front proxy, and the user it speaks for.

The API server's aggregation layer calls an extension server with its proxy client
certificate and names the real user in headers (X-Remote-User, X-Remote-Group,
X-Remote-Extra-*). Those headers mean something only from a client whose certificate is
signed by the `requestheader-client-ca-file` CA and, when the list is set, whose common
name is one of `requestheader-allowed-names`; both are published in the ConfigMap
kube-system/extension-apiserver-authentication, which every extension server reads
(this is what k8s.io/apiserver's RequestHeader authenticator does).

The TLS context trusts only that CA, so a certificate that verified at all is a
front-proxy certificate; the common-name check and the headers are done per request.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from kubernetes import client

AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")


class RefusedError(Exception):
    """A caller we do not serve; `code` is 401 (unknown) or 403 (known, not allowed)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return "Unauthorized" if self.code == 401 else "Forbidden"


@dataclass(frozen=True)
class FrontProxy:
    """The cluster's request-header authentication settings."""

    client_ca: str
    """PEM of the CA that signs the front proxy's client certificate."""
    allowed_names: tuple[str, ...] = ()
    """Common names the front proxy's certificate may have; empty: any the CA signed."""
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> FrontProxy | None:
        """The settings from the ConfigMap's data; None when the API server has no
        front proxy (no --requestheader-client-ca-file: the aggregation layer cannot
        authenticate itself to us)."""
        ca = data.get("requestheader-client-ca-file", "").strip()
        if not ca:
            return None

        def names(key: str) -> tuple[str, ...]:
            raw = data.get(key, "").strip()
            if not raw:
                return ()
            value = json.loads(raw)
            return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)

        return cls(
            client_ca=ca,
            allowed_names=names("requestheader-allowed-names"),
            username_headers=names("requestheader-username-headers") or ("X-Remote-User",),
            group_headers=names("requestheader-group-headers") or ("X-Remote-Group",),
            extra_prefixes=names("requestheader-extra-headers-prefix") or ("X-Remote-Extra-",),
        )


@dataclass(frozen=True)
class Caller:
    """The user the front proxy authenticated, as the headers name them."""

    user: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def common_name(peercert: Mapping[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (`SSLSocket.getpeercert()`), or None
    when the client sent none."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def authenticate(
    proxy: FrontProxy, peer_cn: str | None, headers: Sequence[tuple[str, str]]
) -> Caller:
    """The caller of a request whose verified client certificate has `peer_cn`, or
    RefusedError(401)."""
    if peer_cn is None:
        raise RefusedError(401, "a client certificate of the API server's front proxy is required")
    if proxy.allowed_names and peer_cn not in proxy.allowed_names:
        raise RefusedError(
            401, f"client certificate {peer_cn!r} is not one of requestheader-allowed-names"
        )

    def values(name: str) -> list[str]:
        return [v for k, v in headers if k.lower() == name.lower()]

    user = next((v for h in proxy.username_headers for v in values(h) if v), None)
    if user is None:
        raise RefusedError(401, "the front proxy named no user")
    groups = tuple(v for h in proxy.group_headers for v in values(h))
    extra: dict[str, list[str]] = {}
    for key, value in headers:
        for prefix in proxy.extra_prefixes:
            if key.lower().startswith(prefix.lower()):
                extra.setdefault(unquote(key[len(prefix) :]).lower(), []).append(value)
    return Caller(user, groups, {k: tuple(v) for k, v in extra.items()})


def server_context(cert_file: Path, key_file: Path, proxy: FrontProxy) -> ssl.SSLContext:
    """TLS with our serving certificate, asking for (not requiring) a client certificate
    and trusting only the front proxy's CA: a client without one gets a 401 from the
    handler, a client with one from another CA fails the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=proxy.client_ca)
    return context


async def read_front_proxy(api_client: client.ApiClient) -> FrontProxy | None:
    """The cluster's settings, from kube-system/extension-apiserver-authentication."""
    namespace, name = AUTH_CONFIGMAP
    configmap = await asyncio.to_thread(
        client.CoreV1Api(api_client).read_namespaced_config_map, name, namespace
    )
    return FrontProxy.from_configmap(configmap.data or {})
