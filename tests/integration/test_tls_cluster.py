"""A cluster of node processes with mutual TLS (certificates from ``ember certs init``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import ember
from ember.testing._localcluster import LocalCluster
from ember.transport._tls import client_context, server_context

pytestmark = pytest.mark.ember_realtime

ECHO = "tests.integration.actors:Echo"


def certs_init(directory, nodes: str, cluster: str = "ember") -> None:
    subprocess.run(
        [sys.executable, "-m", "ember", "certs", "init", "--dir", str(directory),
         "--cluster", cluster, "--nodes", nodes],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def tls_node(name: str, directory, cookie: str) -> ember.Node:
    return ember.Node(
        name,
        listen="127.0.0.1:0",
        cookie=cookie,
        ssl_server=server_context(directory, name),
        ssl_client=client_context(directory, name),
    )


async def test_tls_cluster_works_and_a_foreign_certificate_is_refused(tmp_path) -> None:
    certs = tmp_path / "certs"
    certs_init(certs, "n1,n2,tester")
    other_ca = tmp_path / "other"
    certs_init(other_ca, "intruder", cluster="elsewhere")
    async with asyncio.timeout(60):
        cluster = LocalCluster(2, workdir=tmp_path / "run", extra_args=("--tls-dir", str(certs)))
        await cluster.start()
        try:
            me = tls_node("tester", certs, cluster.cookie)
            await me.start()
            try:
                for n in cluster.nodes.values():
                    await me.connect_node(n.spec)
                p1 = await me.spawn(ECHO, on="n1")
                p2 = await me.spawn(ECHO, on="n2")
                assert await me.call(p1, ("relay", p2, "node")) == "n2"  # n1 -> n2 over TLS
                assert await me.call(p2, "hello") == "hello"
            finally:
                await me.stop()
            # Right cookie, but a certificate from another CA: refused at the TLS layer.
            intruder = tls_node("intruder", other_ca, cluster.cookie)
            await intruder.start()
            try:
                with pytest.raises((ember.EmberError, TimeoutError, OSError)):
                    async with asyncio.timeout(3):
                        await intruder.connect_node(cluster.nodes["n1"].spec)
                assert intruder.connected_nodes() == []
            finally:
                await intruder.stop()
        finally:
            assert await cluster.stop() == {"n1": 0, "n2": 0}
