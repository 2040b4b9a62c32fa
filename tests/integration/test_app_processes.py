"""A user's own code on a node started with the CLI: ``--path DIR`` makes it importable for
other nodes' spawns, ``--app pkg.mod:function`` runs the app's start function with the node,
and a broken app is one clear line and exit 1."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

import ember
from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small


def write_app(root: Path) -> Path:
    """A package ``shopapp`` outside the test's own import path."""
    pkg = root / "code" / "shopapp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "actors.py").write_text(
        textwrap.dedent(
            """
            import ember

            class Till(ember.Actor):
                def __init__(self, start=0):
                    self.total = start

                async def receive(self, msg):
                    match msg:
                        case ("add", n):
                            self.total += n
                    return (self.node.name, self.total)
            """
        )
    )
    (pkg / "boot.py").write_text(
        textwrap.dedent(
            """
            from shopapp.actors import Till

            async def start(node):
                await node.spawn(Till, 100, name="till")
            """
        )
    )
    (pkg / "broken.py").write_text("raise RuntimeError('the app is broken')\n")
    return root / "code"


async def test_path_and_app_put_the_users_code_on_the_node(tmp_path) -> None:
    code = write_app(tmp_path)
    assert "shopapp" not in sys.modules
    extra = ("--path", str(code), "--app", "shopapp.boot:start", "--spawn-allow", "shopapp")
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(1, workdir=tmp_path, extra_args=extra)
        await cluster.start()
        try:
            async with ember.Node("tester", listen="127.0.0.1:0", cookie=cluster.cookie) as me:
                await me.connect_node(cluster.nodes["n1"].spec)
                # the app's start function ran: its process is registered on n1
                assert await me.call(("till", "n1"), ("add", 1)) == ("n1", 101)
                # another node spawns the app's actor by reference, found through --path
                pid = await me.spawn("shopapp.actors:Till", 5, on="n1")
                assert await me.call(pid, ("add", 2)) == ("n1", 7)
        finally:
            assert (await cluster.stop()) == {"n1": 0}


@pytest.mark.parametrize(
    ("app", "said"),
    [
        ("shopapp.broken", "the app is broken"),
        ("shopapp.nothere", "No module named 'shopapp.nothere'"),
        ("shopapp.boot:missing", "has no function 'missing'"),
    ],
)
async def test_an_app_that_cannot_start_is_one_line_and_exit_1(
    tmp_path, app: str, said: str
) -> None:
    code = write_app(tmp_path)
    cookie = tmp_path / "cookie"
    cookie.write_text("secret\n")
    cookie.chmod(0o600)
    async with asyncio.timeout(BOUND):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ember",
            "node",
            "start",
            "--name",
            "a",
            "--discovery",
            "none",
            "--cookie-file",
            str(cookie),
            "--data-dir",
            str(tmp_path / "a"),
            "--path",
            str(code),
            "--app",
            app,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 1 and out == b""
    lines = [json.loads(line) for line in err.decode().splitlines()]
    [error] = [line for line in lines if line["level"] == "error"]
    assert app in error["msg"] and said in error["msg"]
