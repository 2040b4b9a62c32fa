"""Exit reasons, and the messages the runtime itself delivers: ``Exit``, ``Down`` and
``ReceiveTimeout``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._pid import Pid, Ref

NORMAL = "normal"
"""A process finished its work. Links that do not trap exits ignore it."""
SHUTDOWN = "shutdown"
"""A supervisor or the node asked the process to stop."""
KILL = "kill"
"""Sent with :func:`ember.exit`, it cannot be trapped: the target dies with ``killed``."""
KILLED = "killed"
"""The reason of a process that was sent ``kill``."""
NOPROC = "noproc"
"""The process did not exist."""
NOCONNECTION = "noconnection"
"""The node hosting the process became unreachable."""


@dataclass(frozen=True, slots=True)
class Exit:
    """An exit signal turned into a message, delivered to a process that traps exits.

    ``pid`` is the process the signal came from (``None`` when sent from outside any process;
    the destination itself, such as ``(name, node)``, when a link to a name found no process).
    """

    pid: Pid | None
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored process exited (or never existed: reason ``noproc``). ``pid`` is the
    destination the monitor was given (a name, ``(name, node)``) when it named no process."""

    ref: Ref
    pid: Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A node connected (``up``) or became unreachable; sent to processes that called
    ``monitor_node`` (down only, once) or ``subscribe_nodes`` (every event)."""

    node: str
    up: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReceiveTimeout:
    """Delivered when an actor with a ``receive_timeout`` got no message for that long."""


RECEIVE_TIMEOUT = ReceiveTimeout()


def is_shutdown_reason(reason: Any) -> bool:
    """``normal``, ``shutdown`` or ``("shutdown", detail)``: the reasons a transient child is not
    restarted for."""
    if reason in (NORMAL, SHUTDOWN):
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == SHUTDOWN
