"""Local clusters of node processes: :class:`LocalCluster` starts ``ember node start`` processes
on this machine and follows them (``ember cluster up``, the chaos runner's processes and netns
drivers, and multi-process tests use it).

Each node is an OS process running ``python -m ember node start``. With ``discovery="mdns"``
the nodes find each other by mDNS; with ``"seeds"`` each joins through the first node; with
``"none"`` (no membership) node *k* connects to every node started before it. Node processes
print member events as JSON lines; :class:`LocalCluster` follows them, so callers can wait
until every node sees the same membership.

It is the multi-process counterpart of :class:`ember.testing.SimCluster` and lives beside it,
below the chaos layer and the CLI that both use it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import EmberError
from .._node import Node
from ..registry._config import RegistryConfig

__all__ = ["LocalCluster", "NodeProcess"]


@dataclass
class NodeProcess:
    """One node process of a :class:`LocalCluster`."""

    name: str
    process: asyncio.subprocess.Process
    address: str = ""
    creation: int = 0
    incarnation: int | None = None
    admin: str | None = None
    """The admin API's ``host:port`` (with ``--admin``)."""
    view: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each member as this node last reported it (``Member.as_dict()`` plus ``kind``)."""
    stderr_task: asyncio.Task[None] | None = field(default=None, repr=False)
    stdout_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def statuses(self) -> dict[str, str]:
        """Member name -> status, as this node sees it."""
        return {name: m["status"] for name, m in self.view.items()}

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
        discovery: str = "none",
        mesh_profile: str = "local",
        wrap: Callable[[str], Sequence[str]] | None = None,
        listen_of: Callable[[str], str] | None = None,
    ) -> None:
        if discovery not in ("mdns", "seeds", "none"):
            raise EmberError(f"discovery must be mdns, seeds or none, not {discovery!r}")
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
        self.discovery = discovery
        self.mesh_profile = mesh_profile
        self.wrap = wrap
        """A command prefix per node name (``ip netns exec <ns>``: nodes in namespaces)."""
        self.listen_of = listen_of
        """Each node's listen address by name (default ``host:0``)."""
        self.nodes: dict[str, NodeProcess] = {}
        self._changed = asyncio.Event()

    async def start(self) -> list[NodeProcess]:
        """Start every node, each connected to the ones before it; return once all are ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cookie_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.cookie + "\n")
        try:
            for i in range(1, self.n + 1):
                name = f"{self.prefix}{i}"
                listen = self.listen_of(name) if self.listen_of is not None else None
                await self.start_node(name, connect=list(self.nodes.values()), listen=listen)
            if self.discovery != "none":
                await self.wait_converged(timeout=self.ready_timeout)
        except BaseException:
            await self.stop()
            raise
        return list(self.nodes.values())

    async def start_node(
        self, name: str, connect: list[NodeProcess] | None = None, listen: str | None = None
    ) -> NodeProcess:
        """Start (or restart) node ``name``; wait for its ready line. Without membership it
        connects to ``connect``; with seeds it joins through the first of them."""
        args = [
            *(self.wrap(name) if self.wrap is not None else ()),
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
        if self.discovery == "none":
            args += ["--discovery", "none"]
            for other in connect or ():
                args += ["--connect", other.spec]
        else:
            args += ["--discovery", self.discovery, "--mesh-profile", self.mesh_profile]
            if self.discovery == "mdns":
                args.append("--no-mdns-probe")  # names here are unique by construction
            others = [o for o in connect or () if o.name != name and o.address]
            if self.discovery == "seeds" and others:
                args += ["--join", others[0].spec]
        env = {**os.environ, **(self.env or {})}
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        node = NodeProcess(name, proc)
        node.stderr_task = asyncio.get_running_loop().create_task(
            _drain(proc.stderr, self.workdir / f"{name}.log")
        )
        self.nodes[name] = node
        ready = asyncio.get_running_loop().create_future()
        node.stdout_task = asyncio.get_running_loop().create_task(self._follow(node, ready))
        try:
            async with asyncio.timeout(self.ready_timeout):
                await ready
                return node
        except TimeoutError:
            proc.kill()
            raise EmberError(f"node {name} was not ready within {self.ready_timeout} s") from None

    async def _follow(self, node: NodeProcess, ready: asyncio.Future[None]) -> None:
        """Read node's stdout to its end: the ready line, then member events."""
        stream = node.process.stdout
        assert stream is not None
        while line := await stream.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "ready":
                node.address = event["address"]
                node.creation = event["creation"]
                node.incarnation = event.get("incarnation")
                node.admin = event.get("admin")
                for member in event.get("members", ()):
                    node.view.setdefault(member["name"], {"kind": "ready", **member})
                if not ready.done():
                    ready.set_result(None)
            elif event.get("event") == "member":
                node.view[event["name"]] = event
            self._changed.set()
        code = await node.process.wait()
        self._changed.set()
        if not ready.done():
            ready.set_exception(
                EmberError(
                    f"node {node.name} exited with {code} before it was ready "
                    f"(see {self.workdir / (node.name + '.log')})"
                )
            )

    def log_tail(self, name: str, lines: int = 10) -> list[str]:
        """The last ``lines`` lines node ``name`` logged."""
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    async def wait_any_exit(self) -> NodeProcess:
        """Wait until a running node's process ends; return it."""
        waits = {asyncio.ensure_future(n.process.wait()): n for n in self.running()}
        if not waits:
            raise EmberError("no node is running")
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return waits[next(iter(done))]

    def running(self) -> list[NodeProcess]:
        """The nodes whose process is still running."""
        return [n for n in self.nodes.values() if n.process.returncode is None]

    async def wait_for(
        self,
        condition: Any,
        timeout: float = 30.0,  # noqa: ASYNC109
        what: str = "condition",
    ) -> None:
        """Wait until ``condition()`` is true, re-checking after each line a node prints."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            views = {n.name: n.statuses() for n in self.running()}
            raise EmberError(f"{what} not reached within {timeout} s; views: {views}") from None

    async def wait_converged(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until every running node sees every running node alive."""

        def converged() -> bool:
            alive = {n.name for n in self.running()}
            return all(
                {k for k, v in n.statuses().items() if v == "alive"} | {n.name} >= alive
                for n in self.running()
            )

        await self.wait_for(converged, timeout, "membership convergence")

    async def client(self, name: str, timeout: float = 60.0, **kwargs: Any) -> Node:  # noqa: ASYNC109
        """A started node in this process that joins the cluster's mesh through its first
        node, returned once it sees every running node alive (stop it yourself). ``kwargs``
        go to :class:`ember.Node` (``mesh="local"`` unless given). Unless ``registry`` says
        otherwise the client hosts no member of the system group ``ember.names``: a visitor
        that founds or votes in the cluster's registry group would leave it a voter short."""
        first = next(iter(self.nodes.values()))
        kwargs.setdefault("mesh", self.mesh_profile)
        kwargs.setdefault("registry", RegistryConfig(member=False))
        node = Node(
            name,
            listen=f"{self.host}:0",
            cookie=self.cookie,
            cluster=self.cluster,
            discovery="seeds",
            join=[first.spec],
            **kwargs,
        )
        await node.start()
        changed = asyncio.Event()
        remove = node.on_member_event(lambda _: changed.set())
        want = {n.name for n in self.running()}
        try:
            async with asyncio.timeout(timeout):
                while not want <= {m.name for m in node.members() if m.status.value == "alive"}:
                    changed.clear()
                    await changed.wait()
        except BaseException:
            await node.stop()
            raise
        finally:
            remove()
        return node

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node ``name``'s process (SIGKILL by default)."""
        node = self.nodes[name]
        if node.process.returncode is None:
            node.process.send_signal(sig)

    async def wait(self, name: str) -> int:
        """Wait for node ``name``'s process to end; return its exit status."""
        node = self.nodes[name]
        code = await node.process.wait()
        for task in (node.stderr_task, node.stdout_task):
            if task is not None:
                await task
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
    with path.open("ab") as f:  # in chunks: a line may be longer than the stream's limit
        while chunk := await stream.read(65536):
            f.write(chunk)
            f.flush()
