"""Tests for the cluster CA and node certificates (_certs) and the mutual-TLS contexts (_tls).

The TLS tests run a plain asyncio echo server and client on 127.0.0.1, on the stdlib loop and on
uvloop; every wait is bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import ssl
import stat
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ember import EmberError
from ember.transport._certs import (
    CertificateError,
    CertificateExistsError,
    init_cluster_ca,
    issue_node_cert,
    load_certificate,
    verify_issued_by,
)
from ember.transport._tls import client_context, peer_node_name, server_context

TIMEOUT = 5.0
# What a client sees of a refused connection: an alert, a reset or the connection closing.
REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


@dataclass
class Cluster:
    dir: Path  # CA "prod" with nodes a and b
    rogue: Path  # another CA with the same cluster name, with nodes a and b


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    good, rogue = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("rogue")
    for d in (good, rogue):
        init_cluster_ca(d, "prod")
        issue_node_cert(d, "a")
        issue_node_cert(d, "b")
    return Cluster(good, rogue)


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner.run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- certificates ---------------------------------------------------------------------------


def test_ca(tmp_path: Path) -> None:
    paths = init_cluster_ca(tmp_path / "certs", "prod")
    assert (paths.cert, paths.key) == (tmp_path / "certs/ca.pem", tmp_path / "certs/ca.key")
    assert _mode(paths.key) == 0o600
    ca = load_certificate(paths.cert)
    assert ca.subject == ca.issuer
    assert verify_issued_by(ca, ca)
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "prod"
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and not ku.value.digital_signature
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650


def test_node_cert(tmp_path: Path) -> None:
    init_cluster_ca(tmp_path, "prod")
    paths = issue_node_cert(tmp_path, "node-a")
    assert (paths.cert, paths.key) == (tmp_path / "node-a.pem", tmp_path / "node-a.key")
    assert _mode(paths.key) == 0o600
    cert = load_certificate(paths.cert)
    assert verify_issued_by(cert, load_certificate(tmp_path / "ca.pem"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-a"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [
        x509.DNSName("node-a"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert 824 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 826


def test_node_cert_hosts(tmp_path: Path) -> None:
    init_cluster_ca(tmp_path, "prod")
    hosts = ["::1", "10.0.0.7", "db1.example.com", ipaddress.ip_address("10.0.0.8"), "node-a"]
    cert = load_certificate(issue_node_cert(tmp_path, "node-a", hosts=hosts).cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-a", "db1.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("10.0.0.8"),
    ]
    with pytest.raises(CertificateError):
        issue_node_cert(tmp_path, "node-b", hosts="localhost")
    with pytest.raises(CertificateError):
        issue_node_cert(tmp_path, "node-b", hosts=["bad host"])


def test_node_cert_never_outlives_ca(tmp_path: Path) -> None:
    init_cluster_ca(tmp_path, "prod", valid_days=30)
    cert = load_certificate(issue_node_cert(tmp_path, "a", valid_days=825).cert)
    assert cert.not_valid_after_utc == load_certificate(tmp_path / "ca.pem").not_valid_after_utc


def test_key_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        paths = init_cluster_ca(tmp_path, "prod")
        node = issue_node_cert(tmp_path, "a")
    finally:
        os.umask(old)
    assert _mode(paths.key) == _mode(node.key) == 0o600
    assert _mode(node.cert) == 0o644


def test_no_overwrite_without_force(tmp_path: Path) -> None:
    ca = init_cluster_ca(tmp_path, "prod")
    node = issue_node_cert(tmp_path, "a")
    before = {p: p.read_bytes() for p in (ca.cert, ca.key, node.cert, node.key)}
    with pytest.raises(CertificateExistsError) as info:
        init_cluster_ca(tmp_path, "prod")
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, EmberError)
    assert info.value.path in (ca.cert, ca.key)
    with pytest.raises(CertificateExistsError):
        issue_node_cert(tmp_path, "a")
    assert {p: p.read_bytes() for p in before} == before

    # One file of the pair is enough to refuse, and the other is not created.
    node.cert.unlink()
    with pytest.raises(CertificateExistsError):
        issue_node_cert(tmp_path, "a")
    assert not node.cert.exists()
    assert node.key.read_bytes() == before[node.key]


def test_force_replaces(tmp_path: Path) -> None:
    ca = init_cluster_ca(tmp_path, "prod")
    node = issue_node_cert(tmp_path, "a")
    before = {p: p.read_bytes() for p in (ca.cert, ca.key, node.cert, node.key)}
    init_cluster_ca(tmp_path, "prod", force=True)
    issue_node_cert(tmp_path, "a", force=True)
    assert all(p.read_bytes() != data for p, data in before.items())
    assert _mode(ca.key) == _mode(node.key) == 0o600
    assert verify_issued_by(load_certificate(node.cert), load_certificate(ca.cert))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key", "a.pem", "ca.key", "ca.pem"]


def test_missing_or_unreadable_ca(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no cluster CA"):
        issue_node_cert(tmp_path, "a")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "ca.pem").write_text("not a certificate")
    (tmp_path / "ca.key").write_text("not a key")
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        issue_node_cert(tmp_path, "a")
    (tmp_path / "ca.pem").unlink()
    (tmp_path / "ca.pem").mkdir()  # unreadable, even for root
    with pytest.raises(CertificateError, match="cannot read") as info:
        issue_node_cert(tmp_path, "a")
    assert info.value.path == tmp_path / "ca.pem"


def test_mismatched_ca_key(tmp_path: Path, cluster: Cluster) -> None:
    shutil.copy(cluster.dir / "ca.pem", tmp_path / "ca.pem")
    shutil.copy(cluster.rogue / "ca.key", tmp_path / "ca.key")
    with pytest.raises(CertificateError, match="is not the key of"):
        issue_node_cert(tmp_path, "a")


@pytest.mark.parametrize(
    "name", ["", "ca", "CA", "1.2.3.4", "::1", "a/b", "../a", "a b", "a..b", "é", "x" * 65]
)
def test_bad_node_names(tmp_path: Path, name: str) -> None:
    init_cluster_ca(tmp_path, "prod")
    with pytest.raises(CertificateError):
        issue_node_cert(tmp_path, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.key", "ca.pem"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CertificateError):
        init_cluster_ca(tmp_path, "")
    with pytest.raises(CertificateError):
        init_cluster_ca(tmp_path, "prod", valid_days=0)
    init_cluster_ca(tmp_path, "prod")
    with pytest.raises(CertificateError):
        issue_node_cert(tmp_path, "a", valid_days=-1)


# --- contexts -------------------------------------------------------------------------------


def test_context_settings(cluster: Cluster) -> None:
    server, client = server_context(cluster.dir, "a"), client_context(cluster.dir, "b")
    for ctx in (server, client):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert len(ctx.get_ca_certs()) == 1
    assert client.check_hostname


def test_context_refuses_bad_files(tmp_path: Path, cluster: Cluster) -> None:
    with pytest.raises(CertificateError, match="no cluster CA"):
        server_context(tmp_path, "a")
    shutil.copy(cluster.dir / "ca.pem", tmp_path)
    with pytest.raises(CertificateError, match="does not exist"):
        client_context(tmp_path, "a")
    # A certificate of another CA, a certificate of another node, a key that does not match.
    shutil.copy(cluster.rogue / "a.pem", tmp_path)
    shutil.copy(cluster.rogue / "a.key", tmp_path)
    with pytest.raises(CertificateError, match="not issued by the cluster CA"):
        server_context(tmp_path, "a")
    shutil.copy(cluster.dir / "b.pem", tmp_path / "a.pem")
    with pytest.raises(CertificateError, match="not a certificate for node 'a'"):
        server_context(tmp_path, "a")
    shutil.copy(cluster.dir / "a.pem", tmp_path / "a.pem")
    with pytest.raises(CertificateError, match="cannot load"):
        server_context(tmp_path, "a")


# --- mutual TLS over asyncio ----------------------------------------------------------------


async def _echo_server(
    ctx: ssl.SSLContext, accepted: list[str | None]
) -> tuple[asyncio.Server, int]:
    """A TLS echo server; ``accepted`` gets the node name of each peer whose handshake passed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(peer_node_name(writer.get_extra_info("ssl_object")))
        try:
            writer.write(await reader.readexactly(4))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


async def _echo(
    port: int, ctx: ssl.SSLContext, server_hostname: str = "a"
) -> tuple[bytes, str | None, str | None]:
    """Send ``ping`` and read the echo: (reply, server's node name, TLS version)."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=server_hostname
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            writer.write(b"ping")
            await writer.drain()
            reply = await reader.readexactly(4)
            return reply, peer_node_name(ssl_object), ssl_object.version()
        finally:
            writer.close()


def test_mutual_tls(cluster: Cluster, run: Runner) -> None:
    async def main() -> None:
        accepted: list[str | None] = []
        server, port = await _echo_server(server_context(cluster.dir, "a"), accepted)
        async with server:
            reply, server_name, version = await _echo(port, client_context(cluster.dir, "b"))
        assert (reply, server_name, version) == (b"ping", "a", "TLSv1.3")
        assert accepted == ["b"]

    run(main())


def test_tls12_still_works(cluster: Cluster, run: Runner) -> None:
    async def main() -> None:
        accepted: list[str | None] = []
        server, port = await _echo_server(server_context(cluster.dir, "a"), accepted)
        client = client_context(cluster.dir, "b")
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        async with server:
            assert await _echo(port, client) == (b"ping", "a", "TLSv1.2")
        assert accepted == ["b"]

    run(main())


def _rogue_client(cluster: Cluster) -> ssl.SSLContext:
    """Node b with a certificate of another CA, trusting the real one (so only b is at fault)."""
    ctx = client_context(cluster.rogue, "b")
    ctx.load_verify_locations(cluster.dir / "ca.pem")
    return ctx


def _anonymous_client(cluster: Cluster) -> ssl.SSLContext:
    """A client that trusts the cluster CA but has no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cluster.dir / "ca.pem")
    return ctx


@pytest.mark.parametrize("client", [_rogue_client, _anonymous_client], ids=["rogue", "anonymous"])
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"]
)
def test_server_refuses_client(
    cluster: Cluster,
    run: Runner,
    client: Callable[[Cluster], ssl.SSLContext],
    version: ssl.TLSVersion,
) -> None:
    async def main() -> None:
        accepted: list[str | None] = []
        server, port = await _echo_server(server_context(cluster.dir, "a"), accepted)
        ctx = client(cluster)
        ctx.maximum_version = version
        async with server:
            # TLS 1.3 clients finish their side first: they see the refusal when they read.
            with pytest.raises(REFUSED):
                await _echo(port, ctx)
        assert accepted == []

    run(main())


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (_rogue_client, "CERTIFICATE_VERIFY_FAILED"),
        (_anonymous_client, "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
    ],
    ids=["rogue", "anonymous"],
)
def test_server_handshake_fails_with_ssl_error(
    cluster: Cluster, client: Callable[[Cluster], ssl.SSLContext], reason: str
) -> None:
    """The server's own side of a refusal: its handshake raises ``ssl.SSLError``.

    ``start_server(ssl=...)`` swallows handshake errors, so this server upgrades with
    ``StreamWriter.start_tls`` to see them (stdlib loop only: uvloop lacks it for streams).
    """

    async def main() -> None:
        ctx = server_context(cluster.dir, "a")
        outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await writer.start_tls(ctx)
            except Exception as exc:
                outcome.set_result(exc)
            else:
                outcome.set_result(None)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            with pytest.raises(REFUSED):
                await _echo(server.sockets[0].getsockname()[1], client(cluster))
            async with asyncio.timeout(TIMEOUT):
                error = await outcome
        assert isinstance(error, ssl.SSLError)
        assert error.reason == reason

    asyncio.run(main())


def test_client_refuses_server_of_another_ca(cluster: Cluster, run: Runner) -> None:
    async def main() -> None:
        accepted: list[str | None] = []
        server, port = await _echo_server(server_context(cluster.rogue, "a"), accepted)
        async with server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await _echo(port, client_context(cluster.dir, "b"))
        assert accepted == []

    run(main())


def test_client_checks_server_node_name(cluster: Cluster, run: Runner) -> None:
    async def main() -> None:
        accepted: list[str | None] = []
        server, port = await _echo_server(server_context(cluster.dir, "a"), accepted)
        async with server:
            with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
                await _echo(port, client_context(cluster.dir, "b"), server_hostname="b")
        assert accepted == []

    run(main())


def test_peer_node_name_without_certificate() -> None:
    assert peer_node_name(None) is None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="a")
    assert peer_node_name(obj) is None  # handshake not done
