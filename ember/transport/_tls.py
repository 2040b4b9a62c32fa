"""``ssl.SSLContext`` objects for mutual TLS between the nodes of one cluster.

Both sides present their node certificate and accept only peers whose certificate was signed by
the cluster CA (see :mod:`ember.transport._certs`); nothing else is trusted. The client also checks
that the server's certificate names the host it was told to expect: pass the peer's node name as
``server_hostname``. Once connected, :func:`peer_node_name` gives the name the peer's certificate
proves, to compare with the name it claims in the Ember handshake.
"""

from __future__ import annotations

import datetime
import os
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ._certs import (
    CertificateError,
    ca_paths,
    check_node_name,
    load_certificate,
    node_paths,
    verify_issued_by,
)

__all__ = ["client_context", "peer_node_name", "server_context"]

# Forward-secret AEAD suites only, for TLS 1.2 (TLS 1.3's suites all qualify).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(directory: str | os.PathLike[str], node_name: str) -> ssl.SSLContext:
    """A context for accepting connections as ``node_name``; clients must present a cluster cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(ctx, directory, node_name)
    return ctx


def client_context(directory: str | os.PathLike[str], node_name: str) -> ssl.SSLContext:
    """A context for dialling out as ``node_name``; pass ``server_hostname=<peer node name>``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _configure(ctx, directory, node_name)
    ctx.check_hostname = True
    return ctx


def peer_node_name(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The node name the peer's verified certificate proves, or ``None`` if there is none.

    That is the certificate's single common name, provided it is also one of its subjectAltName
    DNS names (as in every certificate :func:`~ember.transport._certs.issue_node_cert` makes).
    ``ssl_object`` is what ``transport.get_extra_info("ssl_object")`` returns.
    """
    if ssl_object is None:
        return None
    try:
        cert: Any = ssl_object.getpeercert()
    except ValueError:  # the handshake is not done
        return None
    if not cert:  # no certificate, or one that was not verified
        return None
    common_names = [
        value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    dns_names = {value for key, value in cert.get("subjectAltName", ()) if key == "DNS"}
    if len(common_names) != 1 or common_names[0] not in dns_names:
        return None
    name: str = common_names[0]
    return name


def _configure(ctx: ssl.SSLContext, directory: str | os.PathLike[str], node_name: str) -> None:
    """TLS 1.2+, this node's certificate, the cluster CA as sole trust anchor, peers required."""
    check_node_name(node_name)
    ca_file = ca_paths(directory).cert
    paths = node_paths(directory, node_name)
    if not ca_file.exists():
        raise CertificateError(
            f"no cluster CA certificate {ca_file} (create one with init_cluster_ca, or "
            "`ember certs init`)",
            ca_file,
        )
    ca_cert = load_certificate(ca_file)
    cert = load_certificate(paths.cert)
    _check_node_cert(cert, ca_cert, node_name, paths.cert)

    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        ctx.load_cert_chain(paths.cert, paths.key)
    except FileNotFoundError as exc:
        raise CertificateError(f"{exc.filename or paths.key} does not exist", paths.key) from exc
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"cannot load {paths.cert} with its key {paths.key}: {exc}", paths.key
        ) from exc
    # Trust exactly the CA certificate, even if ca.pem holds more.
    ctx.load_verify_locations(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())


def _check_node_cert(
    cert: x509.Certificate, ca_cert: x509.Certificate, node_name: str, path: os.PathLike[str]
) -> None:
    """Fail now, not at every handshake, on a certificate peers would refuse."""
    if not verify_issued_by(cert, ca_cert):
        raise CertificateError(f"{path} was not issued by the cluster CA", path)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [node_name]:
        raise CertificateError(f"{path} is not a certificate for node {node_name!r}", path)
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise CertificateError(f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d}", path)
    if ca_cert.not_valid_after_utc <= now:
        raise CertificateError(
            f"the cluster CA expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}", path
        )
