"""The metrics API's TLS serving certificate: made at start, kept in a private temporary
directory, and trusted by the aggregator through the APIService's caBundle (which the
operator writes, since it owns the APIService). No Secret to rotate, no cert-manager:
each start makes a fresh one and republishes it.

`cryptography` does the X.509 work; writing our own would be the opposite of the point.
"""

from __future__ import annotations

import datetime
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=365)


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
    dns_names: list[str], directory: Path | None = None, validity: datetime.timedelta = VALIDITY
) -> ServingCert:
    """A self-signed P-256 certificate for `dns_names`, written to `directory` (default:
    a new private temporary directory); files of an earlier one there are replaced."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    where = directory or Path(tempfile.mkdtemp(prefix="agentpool-metrics-api-"))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    serial = f"{cert.serial_number:x}"[:16]
    key_file = where / f"tls-{serial}.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file = where / f"tls-{serial}.crt"
    cert_file.write_bytes(cert_pem)
    return ServingCert(cert_file, key_file, cert_pem, now + validity)
