"""Ember's exceptions, grouped by who is at fault.

Every error Ember raises derives from :class:`EmberError`. Timeouts also derive from the built-in
:class:`TimeoutError`, so ``except TimeoutError`` catches them as it catches ``asyncio.timeout``.
"""

from __future__ import annotations

from typing import Any


class EmberError(Exception):
    """Root of every error Ember raises."""


class UsageError(EmberError):
    """The API was misused: a bad argument, or a call from the wrong place."""


class BindError(EmberError, OSError):
    """A node could not bind a socket it listens on (its TCP port, or the membership's UDP
    socket on the same port): the port is in use, or the address is not this host's. The node
    did not start. Choose another port (``listen="host:0"`` picks a free one)."""


class NoProc(EmberError):
    """The target process does not exist, or exited before answering.

    ``reason`` is the exit reason: ``"noproc"`` when the process was already gone,
    otherwise the reason it exited with while the call was outstanding.
    """

    def __init__(self, pid: Any, reason: Any = "noproc") -> None:
        super().__init__(f"no process {pid} (reason: {reason!r})")
        self.pid = pid
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.pid, self.reason))


class NodeDown(NoProc):
    """The node hosting the target process became unreachable (reason ``"noconnection"``)."""

    def __init__(self, pid: Any, reason: Any = "noconnection") -> None:
        super().__init__(pid, reason)


class CallTimeout(EmberError, TimeoutError):
    """A call got no reply within its timeout. The request may still be processed."""


class MailboxFull(EmberError):
    """A bounded mailbox with the ``reject`` policy refused a message."""

    def __init__(self, pid: Any) -> None:
        super().__init__(f"mailbox of {pid} is full")
        self.pid = pid

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.pid,))


class NameTaken(EmberError):
    """The name is already registered; ``owner`` is the pid that holds it."""

    def __init__(self, name: Any, owner: Any) -> None:
        super().__init__(f"name {name!r} is taken by {owner}")
        self.name = name
        self.owner = owner

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.name, self.owner))


class UnknownName(EmberError):
    """No process is registered under that name."""

    def __init__(self, name: Any) -> None:
        super().__init__(f"no process registered as {name!r}")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.name,))


class StartError(EmberError):
    """An actor's ``started`` hook failed, so ``spawn`` could not start it; ``reason`` says why."""

    def __init__(self, reason: Any) -> None:
        super().__init__(f"actor failed to start: {reason!r}")
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.reason,))


class RemoteError(EmberError):
    """An exception raised on another node that has no Ember type to arrive as (a user's own
    exception, a ``KeyError`` from a constructor...). Ember's own errors cross nodes with their
    type; anything else arrives as this, carrying what the remote node knew of it.

    ``type_name`` is the remote exception's ``module.QualName`` (``"builtins.KeyError"``),
    ``message`` its ``str()``, ``remote_traceback`` its formatted traceback on the remote node
    (empty if it had none) and ``node`` the node it was raised on.
    """

    def __init__(
        self, type_name: str, message: str, remote_traceback: str = "", node: str | None = None
    ) -> None:
        where = f" (on node {node})" if node else ""
        super().__init__(f"{type_name}: {message}{where}" if message else f"{type_name}{where}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        self.node = node

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.type_name, self.message, self.remote_traceback, self.node))
