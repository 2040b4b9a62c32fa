"""Local clusters of node processes: ``ember cluster up`` and the :class:`LocalCluster` behind it.

Each node is an OS process running ``python -m ember node start``; node *k* connects to every
node started before it, so the cluster is a full mesh once the last node reports ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import EmberError
from ..actors import run


@dataclass
class NodeProcess:
    """One node process of a :class:`LocalCluster`."""

    name: str
    process: asyncio.subprocess.Process
    address: str = ""
    creation: int = 0
    stderr_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def spec(self) -> str:
        """``name@host:port``, as ``--connect`` takes it."""
        return f"{self.name}@{self.address}"


class LocalCluster:
    """Starts ``n`` node processes on loopback, connected in a full mesh.

    ``workdir`` holds the cookie file and the nodes' data directories (a new temporary
    directory by default). Node processes log JSON lines on stderr; they are kept in
    ``workdir/<name>.log``. ``extra_args`` are passed to every ``ember node start``.
    """

    def __init__(
        self,
        n: int,
        *,
        prefix: str = "n",
        cookie: str | None = None,
        cluster: str = "ember",
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        ready_timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if n < 1:
            raise EmberError("a cluster needs at least one node")
        self.n = n
        self.prefix = prefix
        self.cluster = cluster
        self.host = host
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ember-cluster-"))
        self.cookie = cookie or secrets.token_urlsafe(32)
        self.cookie_file = self.workdir / "cookie"
        self.extra_args = extra_args
        self.ready_timeout = ready_timeout
        self.env = env
        self.nodes: dict[str, NodeProcess] = {}

    async def start(self) -> list[NodeProcess]:
        """Start every node, each connected to the ones before it; return once all are ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cookie_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.cookie + "\n")
        try:
            for i in range(1, self.n + 1):
                await self.start_node(f"{self.prefix}{i}", connect=list(self.nodes.values()))
        except BaseException:
            await self.stop()
            raise
        return list(self.nodes.values())

    async def start_node(
        self, name: str, connect: list[NodeProcess] | None = None, listen: str | None = None
    ) -> NodeProcess:
        """Start (or restart) node ``name``; wait for its ready line."""
        args = [
            sys.executable,
            "-m",
            "ember",
            "node",
            "start",
            "--name",
            name,
            "--listen",
            listen or f"{self.host}:0",
            "--cookie-file",
            str(self.cookie_file),
            "--cluster",
            self.cluster,
            "--data-dir",
            str(self.workdir / name),
            *self.extra_args,
        ]
        for other in connect or ():
            args += ["--connect", other.spec]
        env = {**os.environ, **(self.env or {})}
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        node = NodeProcess(name, proc)
        node.stderr_task = asyncio.get_running_loop().create_task(
            _drain(proc.stderr, self.workdir / f"{name}.log")
        )
        self.nodes[name] = node
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(self.ready_timeout):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        code = await proc.wait()
                        raise EmberError(
                            f"node {name} exited with {code} before it was ready "
                            f"(see {self.workdir / (name + '.log')})"
                        )
                    with contextlib.suppress(ValueError):
                        ready = json.loads(line)
                        if ready.get("event") == "ready":
                            node.address = ready["address"]
                            node.creation = ready["creation"]
                            return node
        except TimeoutError:
            proc.kill()
            raise EmberError(f"node {name} was not ready within {self.ready_timeout} s") from None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node ``name``'s process (SIGKILL by default)."""
        node = self.nodes[name]
        if node.process.returncode is None:
            node.process.send_signal(sig)

    async def wait(self, name: str) -> int:
        """Wait for node ``name``'s process to end; return its exit status."""
        node = self.nodes[name]
        code = await node.process.wait()
        if node.stderr_task is not None:
            await node.stderr_task
        return code

    async def stop(self, timeout: float = 20.0) -> dict[str, int]:  # noqa: ASYNC109
        """SIGTERM every running node (newest first), wait, SIGKILL stragglers; exit codes."""
        for node in reversed(list(self.nodes.values())):
            if node.process.returncode is None:
                node.process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, node in self.nodes.items():
            try:
                async with asyncio.timeout(timeout):
                    codes[name] = await self.wait(name)
            except TimeoutError:
                node.process.kill()
                codes[name] = await self.wait(name)
        return codes

    async def __aenter__(self) -> LocalCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _drain(stream: asyncio.StreamReader | None, path: Path) -> None:
    if stream is None:
        return
    with path.open("ab") as f:
        while line := await stream.readline():
            f.write(line)
            f.flush()


def add_cluster_commands(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="local clusters").add_subparsers(
        dest="cluster_cmd", required=True
    )
    up = cluster.add_parser("up", help="start N node processes on loopback until Ctrl-C")
    up.add_argument("-n", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument("--prefix", default="n", help="node name prefix (default n: n1, n2, ...)")
    up.add_argument("--cluster", default="ember")
    up.add_argument("--cookie-file", type=Path, help="use this cookie instead of a new one")
    up.add_argument("--workdir", type=Path, help="where cookie, data and logs go (default: temp)")
    up.set_defaults(run=cmd_cluster_up)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    cookie = args.cookie_file.read_text().strip() if args.cookie_file else None
    cluster = LocalCluster(
        args.n, prefix=args.prefix, cookie=cookie, cluster=args.cluster, workdir=args.workdir
    )
    return run(lambda: _up(cluster))


async def _up(cluster: LocalCluster) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nodes = await cluster.start()
    print(f"cluster {cluster.cluster!r}: {len(nodes)} nodes, connected in a full mesh")
    for node in nodes:
        print(f"  {node.name:<8} {node.address:<22} pid {node.process.pid}")
    print(f"cookie file: {cluster.cookie_file}   logs: {cluster.workdir}/<node>.log")
    print("Ctrl-C stops them all.", flush=True)
    await stop.wait()
    codes = await cluster.stop()
    print("stopped: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()), flush=True)
    return 0 if all(c == 0 for c in codes.values()) else 1
