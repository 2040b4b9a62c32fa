"""Supervisors: OTP's supervision behaviour on Ember's kernel.

A supervisor is an actor that traps exits, starts its children in order (each linked to it),
restarts them by its strategy when they exit, and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._errors import StartError, UsageError
from ._actor import Actor
from ._node import current_node, current_process
from ._pid import Pid
from ._signals import KILL, SHUTDOWN, Exit, is_shutdown_reason

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Shutdown = float | Literal["brutal_kill"] | None

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
RESTARTS = ("permanent", "transient", "temporary")


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (see :func:`child`)."""

    id: Any
    """Unique among the supervisor's children; defaults to the actor class's name."""
    cls: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    restart: Restart = "permanent"
    """permanent: always restarted; transient: only after an abnormal exit (not ``normal``,
    ``shutdown`` or ``("shutdown", x)``); temporary: never."""
    shutdown: Shutdown = 5.0
    """Seconds to wait after ``shutdown`` before ``kill``; ``"brutal_kill"`` kills at once;
    ``None`` waits forever (the default for supervisors)."""
    name: Any = None
    """A local name to register the child under."""

    def __post_init__(self) -> None:
        if self.restart not in RESTARTS:
            raise UsageError(f"restart must be one of {RESTARTS}, got {self.restart!r}")
        sd = self.shutdown
        if not (sd is None or sd == "brutal_kill" or (isinstance(sd, int | float) and sd >= 0)):
            raise UsageError(f"shutdown must be seconds >= 0, 'brutal_kill' or None, got {sd!r}")
        if not (isinstance(self.cls, type) and issubclass(self.cls, Actor)):
            raise UsageError(f"a child must be an Actor subclass, got {self.cls!r}")


def child(
    cls: type[Actor],
    *args: Any,
    id: Any = None,  # noqa: A002 - OTP's name for it
    restart: Restart = "permanent",
    shutdown: Shutdown | Literal["default"] = "default",
    name: Any = None,
    **kwargs: Any,
) -> ChildSpec:
    """A child spec: start ``cls(*args, **kwargs)``. Supervisors default to ``shutdown=None``
    (wait for their whole tree), workers to 5 seconds."""
    if shutdown == "default":
        shutdown = None if issubclass(cls, Supervisor) else 5.0
    return ChildSpec(
        id=id if id is not None else cls.__qualname__,
        cls=cls,
        args=args,
        kwargs=kwargs,
        restart=restart,
        shutdown=shutdown,
        name=name,
    )


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    pid: Pid | None = None


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of :meth:`Supervisor.which_children`."""

    id: Any
    pid: Pid | None
    kind: Literal["worker", "supervisor"]
    behaviour: type[Actor]


@dataclass(frozen=True, slots=True)
class _Request:
    op: str
    arg: Any = None


class Supervisor(Actor):
    """Starts, watches and restarts child processes (OTP's ``supervisor``).

    ``children`` are :func:`child` specs started in order. ``strategy``: ``one_for_one`` restarts
    only the child that exited; ``one_for_all`` stops the others and restarts all;
    ``rest_for_one`` restarts the child and those started after it; ``simple_one_for_one`` has
    one template spec and children added at run time with ``start_child(sup, *args)``.
    More than ``intensity`` restarts within ``period`` seconds shuts the supervisor and its whole
    tree down, and the supervisor exits with ``shutdown``.
    """

    trap_exits = True

    def __init__(
        self,
        children: list[ChildSpec] | tuple[ChildSpec, ...] = (),
        strategy: Strategy = "one_for_one",
        intensity: int = 1,
        period: float = 5.0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise UsageError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if intensity < 0 or period <= 0:
            raise UsageError("intensity must be >= 0 and period > 0")
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise UsageError(f"child ids must be unique, got {ids}")
        if strategy == "simple_one_for_one" and len(children) != 1:
            raise UsageError("simple_one_for_one needs exactly one child spec (the template)")
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self._template: ChildSpec | None = children[0] if strategy == "simple_one_for_one" else None
        self._children: list[_Child] = (
            [] if self._template is not None else [_Child(spec) for spec in children]
        )
        self._restarts: deque[float] = deque()

    # -- client API (static: they take the supervisor's pid) -------------------------------------

    @staticmethod
    async def start_child(sup: Any, *args: Any) -> Pid:
        """Add and start a child: pass a :func:`child` spec, or for ``simple_one_for_one`` the
        extra start arguments (appended to the template's). Raises :class:`StartError` if the
        child fails to start."""
        result: Pid = await _sup_call(sup, _Request("start_child", args))
        return result

    @staticmethod
    async def terminate_child(sup: Any, id_or_pid: Any) -> None:
        """Stop a child by id (it stays in the spec list) or, for simple_one_for_one, by pid."""
        await _sup_call(sup, _Request("terminate_child", id_or_pid))

    @staticmethod
    async def restart_child(sup: Any, child_id: Any) -> Pid:
        """Start again a child that was stopped with ``terminate_child``."""
        result: Pid = await _sup_call(sup, _Request("restart_child", child_id))
        return result

    @staticmethod
    async def delete_child(sup: Any, child_id: Any) -> None:
        """Remove a stopped child's spec."""
        await _sup_call(sup, _Request("delete_child", child_id))

    @staticmethod
    async def which_children(sup: Any) -> list[ChildInfo]:
        """Every child: id, pid (None when not running), kind and behaviour."""
        result: list[ChildInfo] = await _sup_call(sup, _Request("which_children"))
        return result

    @staticmethod
    async def count_children(sup: Any) -> dict[str, int]:
        """``specs``, ``active``, ``supervisors`` and ``workers`` counts, as OTP reports them."""
        result: dict[str, int] = await _sup_call(sup, _Request("count_children"))
        return result

    # -- the process ------------------------------------------------------------------------------

    async def started(self) -> None:
        for i, ch in enumerate(self._children):
            try:
                ch.pid = await self._spawn(ch.spec)
            except StartError:
                await self._stop_children(self._children[:i])
                raise

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Exit(pid, reason):
                await self._on_exit(pid, reason)
                return None
            case _Request(op, arg):
                try:
                    return await self._handle(op, arg)
                except (UsageError, StartError) as exc:
                    # A bad request fails the caller, not the supervisor.
                    self.defer_reply().fail(exc)
                    return None
            case _:
                return None

    async def terminate(self, reason: Any) -> None:
        await self._stop_children(self._children)

    # -- internals ----------------------------------------------------------------------------

    async def _spawn(self, spec: ChildSpec) -> Pid:
        return await self.node.spawn_link(spec.cls, *spec.args, name=spec.name, **spec.kwargs)

    def _find_pid(self, pid: Pid | None) -> int | None:
        for i, ch in enumerate(self._children):
            if ch.pid == pid:
                return i
        return None

    def _find_id(self, child_id: Any) -> int | None:
        for i, ch in enumerate(self._children):
            if ch.spec.id == child_id:
                return i
        return None

    async def _on_exit(self, pid: Pid | None, reason: Any) -> None:
        i = self._find_pid(pid) if pid is not None else None
        if i is None:
            if reason != "normal":
                # An exit signal from outside the tree (our parent, or the node): stop with it.
                self.stop(reason)
            return
        ch = self._children[i]
        ch.pid = None
        restart = ch.spec.restart
        if restart == "temporary" or (restart == "transient" and is_shutdown_reason(reason)):
            if restart == "temporary" or self._template is not None:
                del self._children[i]
            return
        await self._restart(i)

    async def _restart(self, i: int) -> None:
        while True:
            if not self._note_restart():
                self.stop(SHUTDOWN)
                return
            try:
                await self._restart_by_strategy(i)
                return
            except StartError:
                continue  # counted as another restart, as OTP retries

    def _note_restart(self) -> bool:
        now = asyncio.get_running_loop().time()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - self.period:
            self._restarts.popleft()
        return len(self._restarts) <= self.intensity

    async def _restart_by_strategy(self, i: int) -> None:
        if self.strategy in ("one_for_one", "simple_one_for_one"):
            group = [self._children[i]]
        elif self.strategy == "one_for_all":
            group = list(self._children)
        else:
            group = self._children[i:]
        await self._stop_children([c for c in group if c.pid is not None])
        for c in group:
            if c.spec.restart == "temporary" and c is not self._children[i]:
                self._children.remove(c)
        for c in group:
            if c in self._children and c.pid is None:
                c.pid = await self._spawn(c.spec)

    async def _stop_children(self, children: list[_Child]) -> None:
        for ch in reversed(children):
            if ch.pid is not None:
                await self._stop_child(ch)

    async def _stop_child(self, ch: _Child) -> None:
        pid = ch.pid
        assert pid is not None
        ch.pid = None
        node = self.node
        waiter = node.wait_exit(pid)
        node.unlink(pid)
        sd = ch.spec.shutdown
        if sd == "brutal_kill":
            node.exit(pid, KILL)
            await waiter
            return
        node.exit(pid, SHUTDOWN)
        if sd is None:
            await waiter
            return
        assert isinstance(sd, int | float)
        try:
            async with asyncio.timeout(sd):
                await asyncio.shield(waiter)
        except TimeoutError:
            node.exit(pid, KILL)
            await waiter

    async def _handle(self, op: str, arg: Any) -> Any:
        if op == "which_children":
            return [_info(c) for c in self._children]
        if op == "count_children":
            sups = sum(1 for c in self._children if issubclass(c.spec.cls, Supervisor))
            return {
                "specs": 1 if self._template is not None else len(self._children),
                "active": sum(1 for c in self._children if c.pid is not None),
                "supervisors": sups,
                "workers": len(self._children) - sups,
            }
        if op == "start_child":
            return await self._start_child(arg)
        if op == "terminate_child":
            return await self._terminate_child(arg)
        if op == "restart_child":
            i = self._find_id(arg)
            if i is None:
                raise UsageError(f"no child {arg!r}")
            ch = self._children[i]
            if ch.pid is not None:
                raise UsageError(f"child {arg!r} is running")
            ch.pid = await self._spawn(ch.spec)
            return ch.pid
        if op == "delete_child":
            i = self._find_id(arg)
            if i is None:
                raise UsageError(f"no child {arg!r}")
            if self._children[i].pid is not None:
                raise UsageError(f"child {arg!r} is running")
            del self._children[i]
            return None
        raise UsageError(f"unknown supervisor request {op!r}")

    async def _start_child(self, arg: tuple[Any, ...]) -> Pid:
        if self._template is not None:
            t = self._template
            spec = replace(t, args=t.args + tuple(arg))
        else:
            if len(arg) != 1 or not isinstance(arg[0], ChildSpec):
                raise UsageError("start_child needs a child spec")
            spec = arg[0]
            if self._find_id(spec.id) is not None:
                raise UsageError(f"a child with id {spec.id!r} already exists")
        pid = await self._spawn(spec)
        self._children.append(_Child(spec, pid))
        return pid

    async def _terminate_child(self, arg: Any) -> None:
        if self._template is not None:
            i = self._find_pid(arg) if isinstance(arg, Pid) else None
            if i is None:
                raise UsageError(f"{arg!r} is not a child")
            ch = self._children.pop(i)
        else:
            i = self._find_id(arg)
            if i is None:
                raise UsageError(f"no child {arg!r}")
            ch = self._children[i]
        if ch.pid is not None:
            await self._stop_child(ch)
        if ch.spec.restart == "temporary" and ch in self._children:
            self._children.remove(ch)


def _info(c: _Child) -> ChildInfo:
    kind: Literal["worker", "supervisor"] = (
        "supervisor" if issubclass(c.spec.cls, Supervisor) else "worker"
    )
    return ChildInfo(id=c.spec.id, pid=c.pid, kind=kind, behaviour=c.spec.cls)


async def _sup_call(sup: Any, req: _Request) -> Any:
    me = current_process.get()
    node = me.node if me is not None else current_node.get()
    return await node.call(sup, req, timeout=None)
