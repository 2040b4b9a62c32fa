"""Misconfigured node processes say what is wrong, promptly, in one line: an unreachable seed,
a node name the cluster already has, a TCP port in use, ``ember members`` against a closed
port or another cluster. Every process is started with the CLI, as a user would."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small


def closed_port() -> int:
    """A loopback port nothing listens on, TCP or UDP (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def cookie_file(tmp_path: Path) -> Path:
    path = tmp_path / "cookie"
    path.write_text("a-long-secret\n")
    path.chmod(0o600)
    return path


async def ember(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, list[str]]:
    """Wait for ``proc``; its exit code, stdout, and stderr lines."""
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode().splitlines()


async def lines_until(stream: asyncio.StreamReader, predicate: object) -> list[str]:
    """Read lines from ``stream`` until one satisfies ``predicate``; return all read."""
    seen: list[str] = []
    while True:
        line = (await stream.readline()).decode()
        assert line, f"the stream ended first: {seen}"
        seen.append(line)
        if predicate(line):  # type: ignore[operator]
            return seen


def node_args(name: str, cookie: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "node",
        "start",
        "--name",
        name,
        "--cookie-file",
        str(cookie),
        "--data-dir",
        str(tmp_path / name),
        "--mesh-profile",
        "local",
        *extra,
    ]


async def test_an_unreachable_seed_is_a_warning_and_the_node_has_no_peers(tmp_path) -> None:
    cookie = cookie_file(tmp_path)
    seed = f"127.0.0.1:{closed_port()}"
    async with asyncio.timeout(BOUND):
        proc = await ember(
            *node_args("lonely", cookie, tmp_path, "--discovery", "seeds", "--join", seed)
        )
        try:
            assert proc.stderr is not None and proc.stdout is not None
            logged = await lines_until(proc.stderr, lambda line: "unreachable" in line)
            warning = json.loads(logged[-1])
            assert warning["level"] == "warning" and seed in warning["msg"]
            assert "connection refused" in warning["msg"]
            ready = json.loads(await proc.stdout.readline())
            assert ready["event"] == "ready" and ready["members"] == []
            members = await ember(
                "members", "--node", f"lonely@{ready['address']}", "--cookie-file", str(cookie)
            )
            code, out, err = await finish(members)
            assert code == 0, err
            assert "lonely" in out and "no other member" in out and "no peers" in out
            # asked again while alone, and warned again: the 2nd unanswered round
            again = await lines_until(proc.stderr, lambda line: "unreachable" in line)
            assert "2 times in a row" in again[-1]
        finally:
            proc.terminate()
            code, _, _ = await finish(proc)
        assert code == 0


async def test_a_second_node_under_a_taken_name_fails_to_start(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(2, workdir=tmp_path, discovery="seeds")
        await cluster.start()
        try:
            holder = cluster.nodes["n1"]
            twin = await ember(
                *node_args(
                    "n1",
                    cluster.cookie_file,
                    tmp_path / "twin",
                    "--discovery",
                    "seeds",
                    "--join",
                    cluster.nodes["n2"].spec,
                )
            )
            code, out, err = await finish(twin)
            assert code == 1 and out == ""
            lines = [json.loads(line) for line in err]  # JSON lines only: no traceback
            [line] = [line for line in lines if line["level"] == "error"]
            assert f"name 'n1' is taken by n1@{holder.address}" in line["msg"]
            # the cluster did not notice: n2 still sees n1 where it was
            assert cluster.nodes["n2"].view["n1"]["address"] == holder.address
        finally:
            assert (await cluster.stop()) == {"n1": 0, "n2": 0}


async def test_a_tcp_port_in_use_is_one_line_and_exit_1(tmp_path) -> None:
    cookie = cookie_file(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with asyncio.timeout(BOUND):
            proc = await ember(*node_args("a", cookie, tmp_path, "--listen", f"127.0.0.1:{port}"))
            code, out, err = await finish(proc)
    assert code == 1 and out == ""
    assert len(err) == 1, err
    line = json.loads(err[0])
    assert f"cannot listen on 127.0.0.1:{port}" in line["msg"]
    assert "address already in use" in line["msg"].lower()


async def test_members_against_a_closed_port_says_connection_refused_at_once(tmp_path) -> None:
    cookie = cookie_file(tmp_path)
    started = time.monotonic()
    async with asyncio.timeout(BOUND):
        proc = await ember(
            "members",
            "--node",
            f"ghost@127.0.0.1:{closed_port()}",
            "--cookie-file",
            str(cookie),
            "--timeout",
            "30",
        )
        code, out, err = await finish(proc)
    assert code == 1 and out == ""
    assert err == [err[0]] and "connection refused" in err[0], err
    # not after the 30 s timeout: one attempt (the interpreter's start-up dominates)
    assert time.monotonic() - started < 15


async def test_members_of_another_cluster_says_both_cluster_names_once(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(1, workdir=tmp_path, cluster="prod")
        await cluster.start()
        try:
            proc = await ember(
                "members",
                "--node",
                cluster.nodes["n1"].spec,
                "--cookie-file",
                str(cluster.cookie_file),
                "--timeout",
                "30",
            )
            code, out, err = await finish(proc)
        finally:
            assert (await cluster.stop()) == {"n1": 0}
    assert code == 1 and out == ""
    # said once, by the command: the transport's warning of the same refusal is not printed too
    assert err == [err[0]], err
    assert "in cluster 'ember'" in err[0] and "in cluster 'prod'" in err[0], err
