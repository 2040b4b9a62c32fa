"""What the kernel needs from distribution: the hooks it calls for pids on other nodes.

The transport layer implements :class:`Remote` and installs it with ``Node.attach_remote``;
the kernel never imports it. All methods are called from the node's event loop and must not
block. Inbound traffic goes the other way through the ``Node.remote_*`` methods.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ._pid import Pid, Ref


class Remote(Protocol):
    """Distribution hooks for pids whose node is not this one."""

    def is_connected(self, node: str) -> bool:
        """Whether a connection to ``node`` is open now."""
        ...

    def send(self, sender: Pid | None, pid: Pid, msg: Any) -> None:
        """Deliver ``msg`` to a remote pid (at most once, ordered per sender/receiver pair).
        Raises :class:`~ember.MailboxFull` while the pid's node has said its mailbox is full."""
        ...

    async def send_wait(self, pid: Pid, msg: Any) -> None:
        """Deliver ``msg`` to a remote pid, waiting while the receiver has no room for it (its
        mailbox, or the queue to its node) instead of refusing it."""
        ...

    def send_named(self, name: Any, node: str, msg: Any) -> None:
        """Deliver ``msg`` to the process registered as ``name`` on ``node`` (dropped and
        counted there if there is none)."""
        ...

    def call(
        self, pid: Pid | tuple[Any, str], msg: Any, timeout: float | None
    ) -> asyncio.Future[Any]:
        """A call to a remote process (a pid, or ``(name, node)``); the future fails with
        ``NoProc``/``NodeDown``/``CallTimeout`` as a local call would."""
        ...

    def link(self, local: Pid, remote: Pid | tuple[Any, str]) -> None:
        """Tell ``remote``'s node that ``local`` linked to it (it answers with an exit
        ``noproc`` if ``remote`` is gone, ``noconnection`` if its node is unreachable). For
        ``(name, node)`` that node answers which process the name named through
        ``Node.remote_linked``."""
        ...

    def unlink(self, local: Pid, remote: Pid | tuple[Any, str]) -> None:
        """Tell ``remote``'s node the link is gone (for ``(name, node)``: with the process the
        name names there, which also tells this node's side)."""
        ...

    def exit(self, sender: Pid | None, target: Pid, reason: Any, link: bool) -> None:
        """An exit signal to a remote process (``link``: it comes from a linked exit)."""
        ...

    def monitor(self, watcher: Pid, target: Pid | tuple[Any, str], ref: Ref) -> None:
        """``watcher`` monitors remote ``target`` (a pid, or ``(name, node)``: the process
        that name names there); a Down arrives through ``remote_down``."""
        ...

    def demonitor(self, ref: Ref, target: Pid | tuple[Any, str]) -> None:
        """Remove a monitor on a remote process."""
        ...

    def down(self, watcher: Pid, ref: Ref, pid: Pid, reason: Any) -> None:
        """A local process that a remote ``watcher`` monitored has exited."""
        ...

    async def spawn(
        self,
        node: str,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        *,
        spawner: Pid | None = None,
        link: bool = False,
        ref: Ref | None = None,
    ) -> Pid:
        """Spawn ``target`` (``"pkg.mod:Class"``) on ``node`` (its ``Node.serve_spawn``) and
        return its pid. With ``spawner``, the new process is linked to it (``link``) or
        monitored by it under ``ref`` before it runs; the answer reaches
        ``Node.remote_spawned`` ahead of any signal of the new process."""
        ...
