"""Supervisors: OTP's supervision behaviour on Ember's kernel.

A supervisor is an actor that traps exits, starts its children in order (each linked to it),
restarts them by its strategy when they exit, and stops them in reverse order. See
``docs/supervision.md`` for the rules and how they map to OTP's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._errors import StartError, UsageError
from ._actor import Actor
from ._node import call_process
from ._pid import Pid
from ._signals import KILL, SHUTDOWN, Exit, is_shutdown_reason

log = logging.getLogger("ember.supervisor")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Shutdown = float | Literal["brutal_kill"] | None

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
_SUPERVISOR_REF = "ember.actors._supervisor:Supervisor"
RESTARTS = ("permanent", "transient", "temporary")


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (see :func:`child`)."""

    id: Any
    """Unique among the supervisor's children; defaults to the actor class's name."""
    cls: type[Actor] | str
    """The actor class, or its importable reference ``"pkg.mod:Class"``, imported by the
    supervisor the spec is given to (a spec sent to another node's supervisor names a class
    that node can import, and need not be importable here)."""
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
        seconds = isinstance(sd, int | float) and not isinstance(sd, bool) and sd >= 0
        if not (sd is None or sd == "brutal_kill" or seconds):
            raise UsageError(f"shutdown must be seconds >= 0, 'brutal_kill' or None, got {sd!r}")
        cls = self.cls
        if isinstance(cls, str):
            module, sep, qualname = cls.partition(":")
            if not (module and sep and qualname):
                raise UsageError(f"a child reference looks like 'pkg.mod:Class', not {cls!r}")
        elif not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise UsageError(f"a child must be an Actor subclass, got {cls!r}")

    def actor_class(self) -> type[Actor]:
        """The child's actor class, imported if the spec names it by reference."""
        if isinstance(self.cls, str):
            from ._node import resolve_actor

            return resolve_actor(self.cls)
        return self.cls

    def resolved(self) -> ChildSpec:
        """This spec with its class imported (itself if it holds the class)."""
        return self if isinstance(self.cls, type) else replace(self, cls=self.actor_class())


def child(
    cls: type[Actor] | str,
    *args: Any,
    id: Any = None,
    restart: Restart = "permanent",
    shutdown: Shutdown | Literal["default"] = "default",
    name: Any = None,
    **kwargs: Any,
) -> ChildSpec:
    """A child spec: start ``cls(*args, **kwargs)``; ``cls`` may be a reference
    ``"pkg.mod:Class"`` (see :attr:`ChildSpec.cls`). Supervisors default to ``shutdown=None``
    (wait for their whole tree), workers to 5 seconds; a class given by reference is taken for
    a worker unless it is Ember's ``Supervisor`` (pass ``shutdown=`` for your own)."""
    if shutdown == "default":
        if isinstance(cls, str):
            shutdown = None if cls == _SUPERVISOR_REF else 5.0
        else:
            shutdown = None if isinstance(cls, type) and issubclass(cls, Supervisor) else 5.0
    if id is None:
        id = cls.rpartition(":")[2] if isinstance(cls, str) else getattr(cls, "__qualname__", cls)
    return ChildSpec(
        id=id,
        cls=cls,
        args=args,
        kwargs=kwargs,
        restart=restart,
        shutdown=shutdown,
        name=name,
    )


@dataclass(slots=True, eq=False)
class _Child:
    spec: ChildSpec
    pid: Pid | None = None
    restarting: bool = False
    """A restart failed and is to be tried again (OTP's ``{restarting, Pid}``)."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of :meth:`Supervisor.which_children`."""

    id: Any
    """The spec's id; None for the children of a ``simple_one_for_one`` supervisor."""
    pid: Pid | None
    """None when not running (stopped, or waiting for a restart to be tried again)."""
    kind: Literal["worker", "supervisor"]
    behaviour: type[Actor] | str
    """The child's actor class; from a supervisor on another node, its ``"pkg.mod:Class"``
    reference when that module is not loaded on this node."""


@dataclass(frozen=True, slots=True)
class _Request:
    op: str
    arg: Any = None


@dataclass(frozen=True, slots=True, eq=False)
class _TryAgain:
    child: _Child


class Supervisor(Actor):
    """Starts, watches and restarts child processes (OTP's ``supervisor``).

    ``children`` are :func:`child` specs started in order. ``strategy``: ``one_for_one`` restarts
    only the child that exited; ``one_for_all`` stops the others and restarts all;
    ``rest_for_one`` restarts the child and those started after it; ``simple_one_for_one`` has
    one template spec and children added at run time with ``start_child(sup, *args)``.
    More than ``intensity`` restarts within ``period`` seconds shuts the supervisor and its whole
    tree down, and the supervisor exits with ``shutdown``.

    An exit signal from its parent (the process that spawned it linked) or from outside any
    process stops the supervisor, children first, with that reason; exits of other processes
    that are not its children are ignored.
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
        if not (isinstance(intensity, int) and intensity >= 0 and period > 0):
            raise UsageError("intensity must be an int >= 0 and period > 0")
        if not all(isinstance(c, ChildSpec) for c in children):
            raise UsageError("children must be child specs: use ember.child(...)")
        children = [c.resolved() for c in children]
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise UsageError(f"child ids must be unique, got {ids}")
        if strategy == "simple_one_for_one" and len(children) != 1:
            raise UsageError("simple_one_for_one needs exactly one child spec (the template)")
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self._template = children[0] if strategy == "simple_one_for_one" else None
        specs = children if self._template is None else ()
        self._children: dict[_Child, None] = {_Child(s): None for s in specs}  # in start order
        self._by_pid: dict[Pid, _Child] = {}
        self._restarts: deque[float] = deque()
        self._parent: Pid | None = None

    # -- client API (static: they take the supervisor's pid or name) ------------------------------

    @staticmethod
    async def start_child(sup: Any, *args: Any) -> Pid:
        """Add and start a child: pass a :func:`child` spec, or for ``simple_one_for_one`` the
        extra start arguments (appended to the template's). Raises :class:`StartError` if the
        child fails to start, :class:`UsageError` if its id is already taken."""
        pid: Pid = await _call(sup, "start_child", args)
        return pid

    @staticmethod
    async def terminate_child(sup: Any, id_or_pid: Any) -> None:
        """Stop a child by id (its spec is kept unless temporary) or, for
        ``simple_one_for_one``, by pid (the child is removed)."""
        await _call(sup, "terminate_child", id_or_pid)

    @staticmethod
    async def restart_child(sup: Any, child_id: Any) -> Pid:
        """Start again a child whose spec is kept but which is not running."""
        pid: Pid = await _call(sup, "restart_child", child_id)
        return pid

    @staticmethod
    async def delete_child(sup: Any, child_id: Any) -> None:
        """Remove the spec of a child that is not running."""
        await _call(sup, "delete_child", child_id)

    @staticmethod
    async def which_children(sup: Any) -> list[ChildInfo]:
        """Every child in start order: id, pid (None when not running), kind and behaviour."""
        children: list[ChildInfo] = await _call(sup, "which_children")
        return children

    @staticmethod
    async def count_children(sup: Any) -> dict[str, int]:
        """``specs``, ``active``, ``supervisors`` and ``workers`` counts, as OTP reports them."""
        counts: dict[str, int] = await _call(sup, "count_children")
        return counts

    # -- the process ------------------------------------------------------------------------------

    async def started(self) -> None:
        info = self.node.process_info(self.pid)
        if info is not None and info.links:
            self._parent = info.links[0]  # spawned linked: the only link so far is the parent
        children = list(self._children)
        for i, ch in enumerate(children):
            try:
                await self._start(ch)
            except StartError as exc:
                await self._stop(children[:i])
                raise StartError(("failed_to_start_child", ch.spec.id, exc.reason)) from exc

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Exit(pid, reason):
                await self._on_exit(pid, reason)
            case _TryAgain(ch):
                if ch.restarting and ch in self._children:
                    await self._restart(ch)
            case _Request(op, arg):
                try:
                    return await self._handle(op, arg)
                except (UsageError, StartError) as exc:
                    self.defer_reply().fail(exc)  # the caller's mistake, not the supervisor's
            case _:
                log.error("supervisor %s got an unexpected message: %r", self.pid, msg)
        return None

    async def terminate(self, reason: Any) -> None:
        await self._stop(list(self._children))

    # -- exits and restarts -----------------------------------------------------------------------

    async def _on_exit(self, pid: Pid | None, reason: Any) -> None:
        ch = self._by_pid.pop(pid, None) if pid is not None else None
        if ch is None:
            if pid is None or pid == self._parent:
                self.stop(reason)
            return  # a stale exit of a child already stopped, or of an unrelated link
        ch.pid = None
        restart = ch.spec.restart
        if restart == "permanent" or (restart == "transient" and not is_shutdown_reason(reason)):
            await self._restart(ch)
        elif restart == "temporary" or self._template is not None:
            del self._children[ch]

    async def _restart(self, ch: _Child) -> None:
        ch.restarting = False
        if not self._add_restart():
            log.error("supervisor %s reached its restart intensity; shutting down", self.pid)
            self.stop(SHUTDOWN)
            return
        group = [ch]
        if self.strategy in ("one_for_all", "rest_for_one"):
            group = list(self._children)
            if self.strategy == "rest_for_one":
                group = group[group.index(ch) :]
        await self._stop(group)
        for c in group:
            if c.spec.restart == "temporary":
                del self._children[c]  # never restarted, even when a sibling's exit stopped it
        for c in group:
            if c.spec.restart == "temporary":
                continue
            try:
                await self._start(c)
            except StartError:
                # Try again later, as another restart; meanwhile other messages are handled.
                c.restarting = True
                self.node.send(self.pid, _TryAgain(c))
                return

    def _add_restart(self) -> bool:
        now = asyncio.get_running_loop().time()
        self._restarts.append(now)
        while self._restarts[0] < now - self.period:
            self._restarts.popleft()
        if len(self._restarts) > self.intensity:
            return False
        self.node._stats.restarts += 1
        return True

    # -- starting and stopping children -----------------------------------------------------------

    async def _start(self, c: _Child) -> Pid:
        spec = c.spec
        try:
            cls = spec.actor_class()
            pid = await self.node.spawn_link(cls, *spec.args, name=spec.name, **spec.kwargs)
        except StartError:
            raise
        except Exception as exc:  # the constructor failed, or the name is taken
            raise StartError(exc) from exc
        c.pid = pid
        c.restarting = False
        self._by_pid[pid] = c
        return pid

    async def _stop(self, children: list[_Child]) -> None:
        """Stop the running ones among ``children``: one by one in reverse order, or for
        ``simple_one_for_one`` all at once, as OTP does."""
        running = [c for c in children if c.pid is not None]
        if self._template is not None:
            await self._shutdown(running, self._template.shutdown)
        else:
            for c in reversed(running):
                await self._shutdown([c], c.spec.shutdown)

    async def _shutdown(self, children: list[_Child], policy: Shutdown) -> None:
        node = self.node
        pids: list[Pid] = []
        for c in children:
            assert c.pid is not None
            pids.append(c.pid)
            del self._by_pid[c.pid]
            c.pid = None
        done = asyncio.gather(*(node.wait_exit(pid) for pid in pids))
        for pid in pids:
            node.unlink(pid)  # its exit is ours to expect now, not a crash to restart
            node.exit(pid, KILL if policy == "brutal_kill" else SHUTDOWN)
        if isinstance(policy, int | float):
            try:
                async with asyncio.timeout(policy):
                    await asyncio.shield(done)
            except TimeoutError:
                for pid in pids:
                    node.exit(pid, KILL)
        await done

    # -- requests ---------------------------------------------------------------------------------

    async def _handle(self, op: str, arg: Any) -> Any:
        if op == "which_children":
            return [self._info(c) for c in self._children]
        if op == "count_children":
            sups = sum(1 for c in self._children if issubclass(c.spec.actor_class(), Supervisor))
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
        if self._template is not None:
            raise UsageError(f"{op} is not supported by a simple_one_for_one supervisor")
        ch = self._find(arg)
        if ch.pid is not None:
            raise UsageError(f"child {arg!r} is running")
        if ch.restarting:
            raise UsageError(f"child {arg!r} is restarting")
        if op == "restart_child":
            return await self._start(ch)
        if op == "delete_child":
            del self._children[ch]
            return None
        raise UsageError(f"unknown supervisor request {op!r}")

    async def _start_child(self, args: tuple[Any, ...]) -> Pid:
        if self._template is not None:
            spec = replace(self._template, args=self._template.args + args)
        else:
            if len(args) != 1 or not isinstance(args[0], ChildSpec):
                raise UsageError("start_child needs one child spec: use ember.child(...)")
            spec = args[0].resolved()
            old = next((c for c in self._children if c.spec.id == spec.id), None)
            if old is not None:
                state = "already present" if old.pid is None else f"already started as {old.pid}"
                raise UsageError(f"child {spec.id!r} is {state}")
        ch = _Child(spec)
        pid = await self._start(ch)
        self._children[ch] = None
        return pid

    async def _terminate_child(self, id_or_pid: Any) -> None:
        if self._template is not None:
            if not isinstance(id_or_pid, Pid):
                raise UsageError("a simple_one_for_one child is terminated by its pid")
            ch = self._by_pid.get(id_or_pid)
            if ch is None:
                if self.node.process_info(id_or_pid) is not None:
                    raise UsageError(f"{id_or_pid} is not a child of {self.pid}")
                return  # already gone
        else:
            ch = self._find(id_or_pid)
        ch.restarting = False
        await self._stop([ch])
        if ch.spec.restart == "temporary" or self._template is not None:
            del self._children[ch]

    def _find(self, child_id: Any) -> _Child:
        for c in self._children:
            if c.spec.id == child_id:
                return c
        raise UsageError(f"no child {child_id!r}")

    def _info(self, c: _Child) -> ChildInfo:
        cls = c.spec.actor_class()
        kind: Literal["worker", "supervisor"] = (
            "supervisor" if issubclass(cls, Supervisor) else "worker"
        )
        child_id = None if self._template is not None else c.spec.id
        return ChildInfo(id=child_id, pid=c.pid, kind=kind, behaviour=cls)


async def _call(sup: Any, op: str, arg: Any = None) -> Any:
    # OTP's supervisor calls wait forever: a request may wait for children to stop.
    return await call_process(None, sup, _Request(op, arg), None)
