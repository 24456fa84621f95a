"""The metrics API's TLS serving certificate: made at start, kept in a private temporary
directory, and trusted by the aggregator through the APIService's caBundle (which the
operator writes, since it owns the APIService). No Secret to rotate, no cert-manager:
each start makes a fresh one and republishes it.

The X.509 work is the `openssl` command's (OpenSSL 3, in both image bases and wherever
ca-certificates is installed), not the `cryptography` package's: that package and its cffi
were 17 MB of the operator image (goal: under 150 MB, docs/images.md) for this one
self-signed certificate a start.
"""

from __future__ import annotations

import datetime
import math
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VALIDITY = datetime.timedelta(days=365)

# `req -x509` with this config: a self-signed CA:TRUE certificate for the names (the
# aggregator verifies the serving certificate against the caBundle, i.e. itself).
_CONFIG = """[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
[ext]
subjectAltName = {san}
basicConstraints = critical,CA:TRUE,pathlen:0
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
"""


class ServingCertError(RuntimeError):
    """openssl is missing or refused to make the certificate."""


@dataclass(frozen=True)
class ServingCert:
    cert_file: Path
    key_file: Path
    cert_pem: bytes
    """Self-signed: also the CA bundle that verifies it."""
    not_after: datetime.datetime


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the aggregator checks: it dials `<service>.<namespace>.svc`."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def make_serving_cert(
    dns_names: list[str], directory: Path, validity: datetime.timedelta = VALIDITY
) -> ServingCert:
    """A self-signed P-256 certificate for `dns_names`, written to `directory` (the
    caller's, which it removes when done); files of an earlier one there are kept."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServingCertError("the metrics API needs the openssl command for its certificate")
    where = directory
    # Whole days: OpenSSL 3.0's `req` takes no finer validity and no backdating, so the
    # certificate is valid from now (the renewal runs well before its end).
    days = max(1, math.ceil(validity / datetime.timedelta(days=1)))
    serial = secrets.token_hex(8)
    key_file = where / f"tls-{serial}.key"
    key_file.touch(mode=0o600)  # openssl truncates it and keeps the mode
    cert_file = where / f"tls-{serial}.crt"
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    config = _CONFIG.format(san=",".join(f"DNS:{name}" for name in dns_names))
    argv = [openssl, "req", "-x509", "-config", "/dev/stdin", "-newkey", "ec"]
    argv += ["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256"]
    argv += ["-days", str(days), "-subj", f"/CN={dns_names[0]}"]
    argv += ["-keyout", str(key_file), "-out", str(cert_file)]
    done = subprocess.run(argv, input=config, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServingCertError(f"openssl req failed: {done.stderr.strip()[-1000:]}")
    cert_pem = cert_file.read_bytes()
    validity = datetime.timedelta(days=days)
    return ServingCert(cert_file, key_file, cert_pem, now + validity)
