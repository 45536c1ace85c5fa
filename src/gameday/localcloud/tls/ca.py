"""The local cloud's certificate authority, made with `cryptography` when the cloud starts.

Why a CA of its own: real deployments are reached over HTTPS, and a harness that verifies TLS
(never `verify=False`) must be testable offline. Clients trust the cloud's bundle (the
description's `ca_bundle`; `curl --cacert`, requests `verify=`, `AWS_CA_BUNDLE`), and every
certificate the cloud presents chains to it: the execute-api hosts' `*.execute-api.{region}.
amazonaws.com` (AWS's own certificate for those names) and the ACM certificates that API
Gateway custom domains serve. ECDSA P-256 keys: issuing one costs about a millisecond.

The CA's key never leaves the work dir (mode 0600); a new CA is made for every cloud, so a
bundle from an earlier cloud trusts nothing in this one.
"""

from __future__ import annotations

import datetime
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
LEAF_DAYS = 397          # the most a public CA may issue for (CA/Browser Forum)
CA_DAYS = 3650


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its key, PEM; `chain` is the CA certificate that signed it."""

    names: tuple[str, ...]
    certificate: bytes
    private_key: bytes
    chain: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class LocalCA:
    """A self-signed root that issues server certificates for DNS names."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gameday local cloud"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "gameday local CA")])
        public = self._key.public_key()
        now = _now()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.bundle_path = self.directory / CA_FILE
        self.bundle_path.write_bytes(self.certificate_pem)
        key_path = self.directory / CA_KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_key_pem(self._key))

    def issue(self, names: list[str] | tuple[str, ...]) -> IssuedCertificate:
        """A server certificate for `names` (the first is the subject CN; all are SANs)."""
        names = tuple(dict.fromkeys(n.rstrip(".").lower() for n in names if n))
        if not names:
            raise ValueError("a certificate needs at least one DNS name")
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()
        now = _now()
        ca_public = self._key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCertificate(names, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key),
                                 self.certificate_pem)

    def write(self, issued: IssuedCertificate, stem: str) -> tuple[Path, Path]:
        """The certificate (with its chain) and key as files in the work dir: what
        ssl.SSLContext.load_cert_chain reads, and what a user may inspect with openssl."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        cert_path = self.directory / f"{safe}.pem"
        key_path = self.directory / f"{safe}-key.pem"
        with self._lock:
            cert_path.write_bytes(issued.certificate + issued.chain)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(issued.private_key)
        return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A TLS server context as API Gateway's: TLS 1.2 or later, HTTP/1.1 by ALPN."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    context.set_alpn_protocols(["http/1.1"])
    return context
