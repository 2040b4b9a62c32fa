"""A cluster's certificate authority and its nodes' certificates, made with ``cryptography``.

One directory holds the cluster CA (``ca.pem``, ``ca.key``) and each node's certificate and key
(``<node>.pem``, ``<node>.key``). Keys are EC P-256 in unencrypted PKCS#8 PEM, written with mode
0600; certificates are PEM. Nothing is overwritten unless ``force=True``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._errors import EmberError

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CertPaths",
    "CertificateError",
    "CertificateExistsError",
    "ca_paths",
    "check_node_name",
    "init_cluster_ca",
    "issue_node_cert",
    "load_ca",
    "load_certificate",
    "load_private_key",
    "node_paths",
    "verify_issued_by",
]

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"

# Node names that go into certificates must work as a TLS server_hostname and as a file name:
# dot-separated labels of ASCII letters, digits, "_", "-" and "@", 64 characters at most (the
# X.509 limit on a common name).
_NODE_NAME = re.compile(r"[A-Za-z0-9_@-]{1,63}(?:\.[A-Za-z0-9_@-]{1,63})*")
_MAX_NODE_NAME = 64
_MAX_CLUSTER_NAME = 64
# Backdate notBefore a little so that peers whose clocks lag accept a fresh certificate.
_CLOCK_SKEW = datetime.timedelta(minutes=5)

_SignerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateError(EmberError):
    """A certificate or key is missing, unreadable, invalid or inconsistent; ``path`` names it."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else Path(path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.path))


class CertificateExistsError(CertificateError, FileExistsError):
    """A file would be overwritten; pass ``force=True`` to replace it."""


@dataclass(frozen=True)
class CertPaths:
    """Where a certificate (PEM) and its private key were written."""

    cert: Path
    key: Path


def ca_paths(directory: str | os.PathLike[str]) -> CertPaths:
    """The cluster CA's files in ``directory``."""
    d = Path(directory)
    return CertPaths(d / CA_CERT_FILE, d / CA_KEY_FILE)


def node_paths(directory: str | os.PathLike[str], node_name: str) -> CertPaths:
    """A node's certificate and key files in ``directory``."""
    check_node_name(node_name)
    d = Path(directory)
    return CertPaths(d / f"{node_name}.pem", d / f"{node_name}.key")


def check_node_name(node_name: str) -> None:
    """Raise :class:`CertificateError` unless ``node_name`` can be put in a node certificate.

    It must be dot-separated labels of ASCII letters, digits, ``_``, ``-`` and ``@``, at most 64
    characters, not an IP address and not ``ca`` (the CA's file names). TLS compares host names
    case-insensitively, so nodes whose names differ only in case cannot be told apart by TLS.
    """
    if not isinstance(node_name, str):
        raise CertificateError(f"node name must be a str, not {type(node_name).__name__}")
    if len(node_name) > _MAX_NODE_NAME or not _NODE_NAME.fullmatch(node_name):
        raise CertificateError(
            f"node name {node_name!r} cannot be used in a certificate: it must be 1-64 characters, "
            "dot-separated labels of ASCII letters, digits, '_', '-' and '@'"
        )
    if _is_ip(node_name):
        raise CertificateError(f"node name {node_name!r} cannot be an IP address")
    if node_name.lower() == "ca":
        raise CertificateError("node name 'ca' is reserved for the cluster CA's files")


def init_cluster_ca(
    directory: str | os.PathLike[str],
    cluster_name: str,
    *,
    valid_days: int = 3650,
    force: bool = False,
) -> CertPaths:
    """Create the cluster CA in ``directory`` (made if missing) as ``ca.pem`` and ``ca.key``.

    The CA is a self-signed EC P-256 certificate (CN ``Ember CA <cluster_name>``, O the cluster
    name) that may sign node certificates only (CA:true, pathlen 0; keyCertSign, cRLSign).
    Raises :class:`CertificateExistsError` if either file exists, unless ``force``.
    """
    if not isinstance(cluster_name, str) or not 0 < len(cluster_name) <= _MAX_CLUSTER_NAME:
        raise CertificateError("cluster name must be a str of 1-64 characters")
    _check_days(valid_days)
    paths = ca_paths(directory)
    _refuse_existing(paths, force)

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Ember CA {cluster_name}"[:64]),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    Path(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_pair(paths, cert, key, force)
    return paths


def issue_node_cert(
    directory: str | os.PathLike[str],
    node_name: str,
    *,
    hosts: Iterable[str | ipaddress.IPv4Address | ipaddress.IPv6Address] = (
        "127.0.0.1",
        "localhost",
    ),
    valid_days: int = 825,
    force: bool = False,
) -> CertPaths:
    """Issue ``<node_name>.pem`` / ``<node_name>.key`` in ``directory``, signed by its cluster CA.

    The certificate's CN is the node name; its subjectAltName holds the node name as a DNS name,
    then each of ``hosts`` (IP addresses as IPAddress entries, others as DNS names). It is good for
    both TLS server and client authentication, and never outlives the CA. Raises
    :class:`CertificateError` if the CA is missing or unusable, and
    :class:`CertificateExistsError` if either file exists, unless ``force``.
    """
    check_node_name(node_name)
    _check_days(valid_days)
    san = _subject_alt_names(node_name, hosts)
    paths = node_paths(directory, node_name)
    ca_cert, ca_key = load_ca(directory)
    _refuse_existing(paths, force)

    now = _now()
    not_after = now + datetime.timedelta(days=valid_days)
    ca_not_after = ca_cert.not_valid_after_utc
    if ca_not_after <= now:
        raise CertificateError(
            f"the cluster CA expired on {ca_not_after:%Y-%m-%d}", ca_paths(directory).cert
        )
    key = ec.generate_private_key(ec.SECP256R1())
    subject: list[x509.NameAttribute[Any]] = [x509.NameAttribute(NameOID.COMMON_NAME, node_name)]
    org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if org:
        subject.insert(0, org[0])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - _CLOCK_SKEW, ca_cert.not_valid_before_utc))
        .not_valid_after(min(not_after, ca_not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_pair(paths, cert, key, force)
    return paths


def load_ca(directory: str | os.PathLike[str]) -> tuple[x509.Certificate, _SignerKey]:
    """Read the cluster CA's certificate and key from ``directory``; check they belong together."""
    paths = ca_paths(directory)
    if not paths.cert.exists() and not paths.key.exists():
        raise CertificateError(
            f"no cluster CA in {paths.cert.parent} (create one with init_cluster_ca, or "
            "`ember certs init`)",
            paths.cert,
        )
    cert = load_certificate(paths.cert)
    key = load_private_key(paths.key)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError("the CA key must be an EC or RSA key", paths.key)
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CertificateError(f"{paths.key} is not the key of {paths.cert}", paths.key)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise CertificateError(f"{paths.cert} is not an Ember cluster CA", paths.cert) from exc
    if not constraints.ca:
        raise CertificateError(f"{paths.cert} is not a CA certificate", paths.cert)
    return cert, key


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read a PEM certificate; :class:`CertificateError` if it is missing, unreadable or invalid."""
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate: {exc}", path) from exc


def load_private_key(path: str | os.PathLike[str]) -> PrivateKeyTypes:
    """Read an unencrypted PEM private key; :class:`CertificateError` if it cannot be."""
    data = _read(path, "private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"{path} is not an unencrypted PEM private key: {exc}", path
        ) from exc


def verify_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries a valid signature of ``ca_cert`` (names and signature only)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _check_days(valid_days: int) -> None:
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
        raise CertificateError(f"valid_days must be a positive int, not {valid_days!r}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _subject_alt_names(
    node_name: str, hosts: Iterable[str | ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[x509.GeneralName]:
    if isinstance(hosts, str):
        raise CertificateError("hosts must be an iterable of host names, not a str")
    names: list[x509.GeneralName] = [x509.DNSName(node_name)]
    for host in hosts:
        entry: x509.GeneralName
        if isinstance(host, ipaddress.IPv4Address | ipaddress.IPv6Address):
            entry = x509.IPAddress(host)
        elif isinstance(host, str) and _is_ip(host):
            entry = x509.IPAddress(ipaddress.ip_address(host))
        elif isinstance(host, str) and host.isascii() and _NODE_NAME.fullmatch(host.rstrip(".")):
            entry = x509.DNSName(host.rstrip("."))
        else:
            raise CertificateError(f"{host!r} is neither an IP address nor an ASCII host name")
        if entry not in names:
            names.append(entry)
    return names


def _refuse_existing(paths: CertPaths, force: bool) -> None:
    if force:
        return
    for path in (paths.cert, paths.key):
        if path.exists() or path.is_symlink():
            raise CertificateExistsError(f"{path} exists (pass force=True to replace it)", path)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(f"{what} {path} does not exist", path) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror or exc}", path) from exc


def _write_pair(
    paths: CertPaths, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, force: bool
) -> None:
    """Write the key (0600) and certificate (0644); never leave a new key without its cert."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    if not force:
        _write_new(paths.key, key_pem, 0o600)
        try:
            _write_new(paths.cert, cert_pem, 0o644)
        except BaseException:
            with contextlib.suppress(OSError):
                paths.key.unlink()
            raise
        return
    # Replace both only once both are written in full.
    tmp_key = paths.key.with_name(f".{paths.key.name}.{os.getpid()}.tmp")
    tmp_cert = paths.cert.with_name(f".{paths.cert.name}.{os.getpid()}.tmp")
    try:
        _write_new(tmp_key, key_pem, 0o600, overwrite_temp=True)
        _write_new(tmp_cert, cert_pem, 0o644, overwrite_temp=True)
        try:
            os.replace(tmp_key, paths.key)
            os.replace(tmp_cert, paths.cert)
        except OSError as exc:
            raise CertificateError(f"cannot write {paths.cert}: {exc.strerror or exc}") from exc
    finally:
        for tmp in (tmp_key, tmp_cert):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _write_new(path: Path, data: bytes, mode: int, *, overwrite_temp: bool = False) -> None:
    """Create ``path`` with ``mode`` (despite the umask) and write ``data``; refuse if it exists."""
    if overwrite_temp:  # a stale temp file from a crashed run
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise CertificateExistsError(
            f"{path} exists (pass force=True to replace it)", path
        ) from exc
    except OSError as exc:
        raise CertificateError(f"cannot write {path}: {exc.strerror or exc}", path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(exc, OSError):
            raise CertificateError(f"cannot write {path}: {exc.strerror or exc}", path) from exc
        raise
