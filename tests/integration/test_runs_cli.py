"""``ember runs`` and ``ember run show`` as a user runs them: a subprocess asking a node process
(``ember node start`` with a durable contracts store of its own) about its runs; an unknown run
id and a refused connection are said plainly, with a non-zero exit. Every wait is on a
condition, with generous bounds."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from pathlib import Path

import pytest

from ember.contracts import ContractsConfig
from ember.testing._localcluster import LocalCluster
from tests.integration.clikit import ember_cli
from tests.integration.contracts_kit import Render, Shipment

pytestmark = pytest.mark.ember_realtime

BOUND = 90.0


async def _ember(*args: str) -> tuple[int, str, str]:
    return await ember_cli(*args, timeout=BOUND)


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_runs_and_run_show_against_a_node_process(tmp_path: Path) -> None:
    procs = LocalCluster(
        1,
        workdir=tmp_path,
        discovery="seeds",
        cluster=f"c{secrets.token_hex(4)}",
        extra_args=(
            "--contracts-store",
            "n1",
            "--contracts-load",
            "tests.integration.contracts_kit",
            "--meta",
            "capabilities=gpu",
        ),
    )
    async with asyncio.timeout(BOUND * 3):
        await procs.start()
        client = await procs.client(
            "client", BOUND, contracts=ContractsConfig(store=("n1",)), meta={"capabilities": []}
        )
        try:
            assert client.contracts is not None
            await client.contracts.start_on(
                "n1", Shipment, {"order": "o-cli"}, run_id="ship-cli", timeout=BOUND
            )
            await client.contracts.start_on(
                "n1", Render, {"job": "j-cli", "seconds": 0.0}, run_id="render-cli", timeout=BOUND
            )
            await client.contracts.result("render-cli", timeout=BOUND)
            async with asyncio.timeout(BOUND):
                while (await client.contracts.status("ship-cli")).status != "waiting":  # noqa: ASYNC110 - another process's state
                    await asyncio.sleep(0.1)

            node = procs.nodes["n1"]
            flags = (
                "--node",
                node.spec,
                "--cookie-file",
                str(procs.cookie_file),
                "--cluster",
                procs.cluster,
                "--timeout",
                str(BOUND / 2),
            )
            code, out, err = await _ember("runs", *flags, "--json")
            assert code == 0, err
            listed = {r["id"]: r for r in json.loads(out)}
            assert listed["ship-cli"]["status"] == "waiting"
            assert listed["ship-cli"]["waiting"] == ["delivered"]
            assert listed["render-cli"]["status"] == "succeeded"

            code, out, err = await _ember("runs", *flags, "--status", "waiting")
            assert code == 0, err
            assert "ship-cli" in out and "render-cli" not in out
            assert "Shipment v1" in out and "waiting" in out

            code, out, err = await _ember("runs", *flags, "--contract", "Render", "--json")
            assert code == 0, err
            assert [r["id"] for r in json.loads(out)] == ["render-cli"]

            code, out, err = await _ember("run", "show", "render-cli", *flags)
            assert code == 0, err
            assert "render-cli" in out and "succeeded" in out
            assert "frame" in out and "done" in out and "n1" in out  # its steps and their node

            code, out, err = await _ember("run", "show", "ship-cli", *flags, "--json")
            assert code == 0, err
            shown = json.loads(out)
            assert shown["run_id"] == "ship-cli" and shown["status"] == "waiting"
            assert shown["correlation"] == {"order": "o-cli"}

            code, out, err = await _ember("run", "show", "no-such-run", *flags)
            assert code == 1 and out == ""
            assert "RunNotFound" in err and "no run 'no-such-run'" in err, err
        finally:
            await client.stop()
            await procs.stop()


async def test_a_refused_connection_is_said_at_once(tmp_path: Path) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_text("secret\n")
    cookie.chmod(0o600)
    flags = ("--node", f"n1@127.0.0.1:{_free_port()}", "--cookie-file", str(cookie))
    for command in (("runs",), ("run", "show", "some-run")):
        t0 = time.monotonic()
        # A timeout longer than the bound _ember waits: an answer means it did not wait for it.
        code, out, err = await _ember(*command, *flags, "--timeout", str(BOUND * 2))
        assert code == 1 and out == ""
        assert "connection refused" in err, err
        assert time.monotonic() - t0 < BOUND
