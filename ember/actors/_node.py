"""The node: process table, scheduler, signals (links, monitors, exits), names and timers.

Scheduling: runnable processes wait in one run queue. A small pool of worker tasks takes them in
turn and runs a slice of each one's mailbox. A worker that is suspended inside an actor's
``receive`` (awaiting I/O or a call) keeps that actor; the next enqueue wakes a parked worker or
starts a new one, so a blocked actor never holds up the others. An idle process holds no task.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, Self, TypeVar

from .._errors import (
    CallTimeout,
    EmberError,
    MailboxFull,
    NameTaken,
    NoProc,
    StartError,
    UnknownName,
    UsageError,
)
from .._ratelog import RateLimitedLog
from ._actor import (
    DEAD,
    EXITING,
    IDLE,
    QUEUED,
    RUNNING,
    STARTING,
    STATE_NAMES,
    Actor,
)
from ._mailbox import check_length, drained, release, watch
from ._pid import Pid, Ref
from ._remote import Remote
from ._resolver import Resolver
from ._signals import (
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    RECEIVE_TIMEOUT,
    SHUTDOWN,
    Down,
    Exit,
    NodeEvent,
)

log = logging.getLogger("ember.actors")

A = TypeVar("A", bound=Actor)
T = TypeVar("T")

current_node: contextvars.ContextVar[Node] = contextvars.ContextVar("ember_node")
current_process: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "ember_process", default=None
)

SLICE = 256
"""Messages one process handles before the worker moves on to the next runnable process."""
YIELD_EVERY = 2048
"""Messages a worker handles before it yields to the event loop, so I/O is never starved."""
MAX_PARKED = 8
"""Idle workers kept for reuse; more than this exit."""
DEFAULT_CALL_TIMEOUT = 5.0
EAGER_BUDGET = 64
"""Calls to idle plain-``def`` receivers run eagerly in the caller; every this many, one goes
through the scheduler instead, which lets the event loop run."""
SAMPLE_EVERY = 16
"""With a receive timer installed (``Node.time_receives``), one slice in this many is timed."""

ReceiveTimer = Callable[[float, int], None]
"""``timer(seconds, messages)``: a timed slice of ``messages`` receives took ``seconds``."""


class _ExitNow(BaseException):
    """Unwinds a process's own stack when it exits itself (``exit(self, ...)``)."""

    def __init__(self, reason: Any) -> None:
        self.reason = reason


class LocalCall:
    """A call in flight to a local process: the request envelope and its monitor entry."""

    __slots__ = ("bucket", "fut", "msg", "proc", "scope")

    def __init__(
        self, msg: Any, fut: asyncio.Future[Any], proc: Actor, scope: CallScope | None = None
    ) -> None:
        self.msg = msg
        self.fut = fut
        self.proc = proc
        self.bucket: dict[Any, float] | None = None
        self.scope = scope

    def forget(self) -> None:
        """Drop this call's monitor and deadline entries."""
        mons = self.proc._monitors
        if mons is not None:
            mons.pop(self, None)
        bucket = self.bucket
        if bucket is not None:
            bucket.pop(self, None)
            self.bucket = None

    def reply(self, value: Any) -> None:
        self.forget()
        if not self.fut.done():
            self.fut.set_result(value)

    def fail(self, exc: BaseException) -> None:
        self.forget()
        if not self.fut.done():
            self.fut.set_exception(exc)

    def down(self, pid: Pid, reason: Any) -> None:
        self.fail(NoProc(pid, reason))

    def expire(self, timeout: float) -> None:
        self.fail(CallTimeout(f"call to {self.proc._pid} got no reply within {timeout} s"))


class CallScope(Protocol):
    """Runs around the receive that answers one call (a tracing span, for one): ``enter``
    just before it, ``exit`` just after it, in the same task."""

    def enter(self) -> object: ...

    def exit(self, token: object, exc: BaseException | None) -> None: ...


class Deadlines:
    """Call deadlines grouped in buckets of ``resolution`` seconds, with one loop timer per
    bucket rather than one per call: a call adds and removes a dict entry, nothing more.
    Timeouts fire up to ``resolution`` late, never early."""

    __slots__ = ("_buckets", "_loop", "_scale")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.01) -> None:
        self._loop = loop
        self._scale = 1.0 / resolution
        self._buckets: dict[int, dict[Any, float]] = {}

    def add(self, call: LocalCall, timeout: float) -> dict[Any, float]:
        key = int((self._loop.time() + timeout) * self._scale) + 1
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
            self._loop.call_at(key / self._scale, self._fire, key)
        bucket[call] = timeout
        return bucket

    def _fire(self, key: int) -> None:
        bucket = self._buckets.pop(key, None)
        if bucket:
            for call, timeout in list(bucket.items()):
                call.expire(timeout)


class _ExitWaiter:
    """A monitor entry that resolves a future with the exit reason (``Node.wait_exit``)."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self.fut = fut

    def down(self, pid: Pid, reason: Any) -> None:
        if not self.fut.done():
            self.fut.set_result(reason)


class _ExitCallback:
    """A monitor entry that calls ``fn(pid, reason)`` when the process exits
    (``Node.watch``)."""

    __slots__ = ("fn", "proc")

    def __init__(self, fn: Callable[[Pid, Any], None], proc: Actor) -> None:
        self.fn = fn
        self.proc = proc

    def down(self, pid: Pid, reason: Any) -> None:
        self.fn(pid, reason)


class TimerRef:
    """A timer started by ``send_after``; pass it to ``cancel_timer``. ``when`` is the loop
    time it is due at."""

    __slots__ = ("_handle", "when")

    def __init__(self, when: float) -> None:
        self._handle: asyncio.TimerHandle | None = None  # None once it fired or was cancelled
        self.when = when


@dataclass(slots=True)
class NodeStats:
    """Counters of one node's local runtime (see ``Node.statistics``)."""

    spawned: int = 0
    exited: int = 0
    crashed: int = 0
    messages_processed: int = 0
    restarts: int = 0
    """Children restarted by the node's supervisors."""
    exited_normal: int = 0
    exited_shutdown: int = 0
    """Exits with ``shutdown`` or ``("shutdown", detail)``."""
    exited_killed: int = 0
    exited_noconnection: int = 0
    exited_error: int = 0
    """Exits with an exception as the reason (a crash, or a linked crash propagated)."""
    exited_other: int = 0
    """Exits with any other reason."""
    dropped_dead: int = 0
    """Messages to a process that no longer exists (or was exiting)."""
    dropped_on_exit: int = 0
    """Messages still in a mailbox when its process exited."""
    cast_refused: int = 0
    """Casts (and ``send_after`` timers) another node's message could not be queued for: a full
    queue, a message too large for a frame or not encodable."""
    mailbox_rejected: int = 0
    mailbox_dropped: int = 0
    mailbox_long: int = 0
    """Times a mailbox grew past the node's ``mailbox_warning`` (each logged, rate-limited)."""


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process, for introspection."""

    pid: Pid
    status: str
    behaviour: str
    mailbox_len: int
    links: tuple[Pid, ...]
    monitored_by: int
    monitoring: tuple[Pid, ...]
    name: Any
    trap_exits: bool
    messages: int = 0
    """Messages the process has handled so far (its "reductions", for ``ember top``)."""


@dataclass(frozen=True, slots=True)
class Statistics:
    """Node-wide figures: process count and message counters."""

    processes: int
    counters: dict[str, int] = field(default_factory=dict)
    long_mailboxes: tuple[ProcessInfo, ...] = ()
    """The processes whose mailbox is over ``mailbox_warning`` now (or was, and has not yet
    drained below half of it), longest first."""


class Node:
    """One Ember node: the processes that live on it and the scheduler that runs them.

    Use it as ``async with Node("a") as node:``; leaving the block shuts every process down in
    order. Many nodes may live in one event loop (tests, simulation).
    """

    def __init__(
        self, name: str = "nonode", *, creation: int = 1, mailbox_warning: int | None = 10_000
    ) -> None:
        if not name or "@" in name or "." in name:
            raise UsageError(f"bad node name {name!r}: non-empty, without '@' or '.'")
        if mailbox_warning is not None and (
            mailbox_warning.__class__ is not int or mailbox_warning < 2
        ):
            raise UsageError(
                f"mailbox_warning must be an int >= 2 or None, not {mailbox_warning!r}"
            )
        self.name = name
        self.creation = creation
        self.mailbox_warning = mailbox_warning
        """A mailbox longer than this is logged (once, with its pid and class) and listed in
        :meth:`statistics`; ``None`` turns the check off."""
        self._long: dict[Actor, None] = {}  # processes whose mailbox is long now (ordered set)
        self._reports: RateLimitedLog | None = None
        self._procs: dict[int, Actor] = {}
        self._names: dict[Any, Actor] = {}
        self._serial = itertools.count(1)
        self._refs = itertools.count(1)
        self._runq: deque[Actor] = deque()
        self._parked: list[asyncio.Future[None]] = []
        self._kicked = False
        self._check_pending = False
        self._stats = NodeStats()
        self._starting: dict[Actor, StartWaiter] = {}
        self._spawn_links: dict[Actor, Pid] = {}
        """Starting processes made by ``spawn_link`` -> their spawner (see ``_start_failed``)."""
        self._spawn_monitors: dict[Actor, Ref] = {}
        """Starting processes made by ``spawn_monitor`` -> the monitor's ref."""
        self._signals: deque[tuple[Actor, Any, Any, bool]] = deque()
        self._draining_signals = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._ctx: contextvars.Context | None = None
        self._token: contextvars.Token[Node] | None = None
        self._closing = False
        self._root: Pid | None = None
        self._eager = EAGER_BUDGET
        self._remote: Remote | None = None
        self._resolver: Resolver | None = None
        self._node_watchers: dict[str, set[Pid]] = {}
        self._linking: dict[str, list[tuple[Pid, tuple[Any, str]]]] = {}
        """Links to ``(name, node)`` waiting for that node's answer, by node: (linker, dest)."""
        self._node_subscribers: set[Pid] = set()
        self._cancels: dict[asyncio.Task[Any], int] = {}
        """Cancellations requested of each worker to end the process it runs (see ``_uncancel``)."""
        self._receive_timer: ReceiveTimer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        self._token = current_node.set(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        finally:
            if self._token is not None:
                current_node.reset(self._token)
                self._token = None

    async def start(self) -> None:
        """Start the scheduler and the node's root supervisor."""
        if self._loop is not None:
            raise UsageError(f"node {self.name} already started")
        self._loop = asyncio.get_running_loop()
        self._deadlines = Deadlines(self._loop)
        self._reports = RateLimitedLog(log, 10.0, self._loop.time, self._loop)
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        ctx = contextvars.copy_context()
        ctx.run(current_node.set, self)
        ctx.run(current_process.set, None)
        self._ctx = ctx
        from ._supervisor import Supervisor

        self._root = await self.spawn(Supervisor, strategy="one_for_one", name="ember_root")

    def in_context(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` now in this node's own context, so the tasks and timers it starts
        belong to the node, not to whoever called (services use it to start long-lived work)."""
        if self._ctx is None:
            return fn(*args)
        return self._ctx.copy().run(fn, *args)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a grace period
        """Shut down: the root supervisor stops its tree in reverse start order, then the other
        supervision trees newest first, then every remaining process is stopped with reason
        ``shutdown`` (its ``terminate`` runs, trapping or not) and, after ``timeout`` seconds,
        killed."""
        if self._tg is None or self._closing:
            return
        if self._root is not None and self._root._proc is not None:
            await self._stop_process(self._root, timeout)
        # Supervision trees outside the root go one at a time, newest first, so each stops its
        # children in order; then every remaining process gets shutdown at once. A supervisor
        # linked to an older one is a subtree: its parent stops it (stopping it first would
        # only make the parent restart it).
        from ._supervisor import Supervisor

        def top_level(proc: Actor) -> bool:
            serial = proc._pid.serial
            return not any(
                pid.serial < serial and isinstance(self._lookup(pid), Supervisor)
                for pid in proc._links or ()
            )

        for proc in reversed(list(self._procs.values())):
            if isinstance(proc, Supervisor) and proc._state < EXITING and top_level(proc):
                await self._stop_process(proc._pid, timeout)
        # The rest is not supervised: the node itself orders it to stop. As a supervisor's
        # order would, that runs each terminate hook; unlike a link's exit signal it is not
        # trapped, so a trapping process cannot hold the node up.
        others = [p._pid for p in list(self._procs.values())]
        waits = [self.wait_exit(pid) for pid in others]
        for pid in others:
            other = self._lookup(pid)
            if other is not None:
                self._terminate(other, SHUTDOWN)
        if waits:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
            except TimeoutError:
                for p in list(self._procs.values()):
                    self.exit(p._pid, KILL)
        self._closing = True
        for fut in self._parked:
            if not fut.done():
                fut.cancel()
        self._parked.clear()
        if self._reports is not None:
            self._reports.flush()  # counts of long mailboxes held back by the rate limit
        tg = self._tg
        self._tg = None
        await tg.__aexit__(None, None, None)

    async def _stop_process(self, pid: Pid, timeout: float | None) -> Any:  # noqa: ASYNC109
        """Send ``shutdown``, wait up to ``timeout`` (None: forever), then ``kill``."""
        waiter = self.wait_exit(pid)
        self.exit(pid, SHUTDOWN)
        if timeout is None:
            return await waiter
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(waiter)
        except TimeoutError:
            self.exit(pid, KILL)
            return await waiter

    # -- identifiers ----------------------------------------------------------------------------

    def make_ref(self) -> Ref:
        """A new reference, unique in the cluster."""
        return Ref(self.name, next(self._refs), self.creation)

    def _lookup(self, pid: Pid) -> Actor | None:
        proc = pid._proc
        if proc is not None:
            # Another node sharing this event loop is still another node: its processes are
            # reached through distribution, never directly.
            return proc if proc._node is self or self._remote is None else None
        if pid.node != self.name or pid.creation != self.creation:
            return None
        return self._procs.get(pid.serial)

    def _is_remote(self, dest: Any) -> bool:
        return self._remote is not None and dest.__class__ is Pid and dest.node != self.name

    def attach_remote(self, remote: Remote | None) -> None:
        """Install (or remove) the distribution hooks used for pids on other nodes."""
        self._remote = remote

    def attach_resolver(self, resolver: Resolver | None) -> None:
        """Install (or remove) the resolver of destinations that are neither pids nor local
        names (``ember.Name(...)``; see :class:`~ember.actors._resolver.Resolver`)."""
        self._resolver = resolver

    def _resolve(self, dest: Any) -> Actor | None:
        if dest.__class__ is Pid:
            return self._lookup(dest)
        proc = self._names.get(dest)
        if proc is None and dest.__class__ is tuple and len(dest) == 2 and dest[1] == self.name:
            proc = self._names.get(dest[0])  # (name, this node), as Erlang's {Name, node()}
        return proc

    def _remote_name(self, dest: Any) -> str | None:
        """The node ``dest`` names if it is ``(name, node)`` for another node (Erlang's
        ``{Name, Node}``): the process registered as ``name`` there. Else None."""
        if (
            dest.__class__ is tuple
            and len(dest) == 2
            and dest[1].__class__ is str
            and dest[1] != self.name
            and self._remote is not None
        ):
            node: str = dest[1]
            return node
        return None

    def _dest_pid(self, dest: Any) -> Pid | tuple[Any, str] | None:
        """The pid a destination names now, as far as this node knows: itself, a local
        name's process (also as ``(name, this node)``), or what the resolver says. None: it
        names no process, or it is ``(name, node)`` for another node, which only that node
        can resolve (see :meth:`_remote_name`); the resolver may say so too, as ``(dest,
        node)``."""
        if dest.__class__ is Pid:
            return dest
        proc = self._resolve(dest)
        if proc is not None:
            return proc._pid
        if self._remote_name(dest) is not None or self._resolver is None:
            return None
        return self._resolver.whereis(dest)

    def whereis_dest(self, dest: tuple[Any, str]) -> Pid | None:
        """The local process ``(name, this node)`` names, for a peer's call, link or monitor
        (called by the transport layer): a name registered here, else the resolver's answer
        for this node."""
        pid = self.whereis(dest[0])
        if pid is None and self._resolver is not None:
            found = self._resolver.whereis((dest[0], self.name))
            if isinstance(found, Pid):
                return found
        return pid

    # -- spawning -------------------------------------------------------------------------------

    def _create(self, cls: type[A], args: tuple[Any, ...], kwargs: dict[str, Any], name: Any) -> A:
        if self._loop is None or self._closing:
            raise UsageError(f"node {self.name} is not running")
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise UsageError(f"spawn needs an Actor subclass, got {cls!r}")
        if name is not None:
            self._check_name(name)  # before the process exists, so a taken name leaves none
        proc = cls.__new__(cls)
        pid = Pid(self.name, next(self._serial), self.creation)
        pid._proc = proc
        proc._pid = pid
        proc._node = self
        proc._mbox = None
        proc._state = STARTING
        proc._links = None
        proc._monitors = None
        proc._watching = None
        proc._trap = cls.trap_exits
        proc._name = None
        proc._worker = None
        proc._exit = None
        proc._itimer = None
        proc._rtimeout = cls.receive_timeout
        proc._call = None
        proc._mbox_check = check_length(cls, self.mailbox_warning)
        proc._watch = None
        proc._handled = 0
        proc.__init__(*args, **kwargs)  # type: ignore[misc]
        self._procs[pid.serial] = proc
        self._stats.spawned += 1
        return proc

    def _launch(
        self,
        proc: Actor,
        name: Any,
        link_to: Actor | Pid | None,
        monitor_by: Actor | tuple[Pid, Ref] | None,
        waiter: StartWaiter | None,
    ) -> Ref | None:
        """Register, link and monitor a new process, all before it runs, then schedule it.
        ``link_to``/``monitor_by`` is the spawner: a local process, or a pid (and the monitor's
        ref) on the node that asked for the spawn. ``waiter`` hears how ``started`` ended."""
        if name is not None:
            self._register(name, proc)
        spawner: Pid | None = None
        if isinstance(link_to, Pid):
            spawner = link_to
            if proc._links is None:
                proc._links = set()
            proc._links.add(link_to)
        elif link_to is not None:
            spawner = link_to._pid
            self._add_link(link_to, proc)
        ref: Ref | None = None
        if isinstance(monitor_by, tuple):
            watcher, ref = monitor_by
            if proc._monitors is None:
                proc._monitors = {}
            proc._monitors[ref] = watcher
        elif monitor_by is not None:
            ref = self._add_monitor(monitor_by, proc)
        if proc._has_started:
            assert waiter is not None
            self._starting[proc] = waiter
            if spawner is not None:
                self._spawn_links[proc] = spawner
            if ref is not None:
                self._spawn_monitors[proc] = ref
            self._runq.append(proc)
            if not self._kicked:
                self._kick()
        elif proc._mbox:  # __init__ sent it a message
            self._schedule(proc)
        else:
            proc._state = IDLE
            if proc._rtimeout is not None:
                self._arm_idle(proc)
        return ref

    def spawn_nowait(self, cls: type[Actor], *args: Any, name: Any = None, **kwargs: Any) -> Pid:
        """Start a process without waiting for its ``started`` hook; returns its pid at once."""
        proc = self._create(cls, args, kwargs, name)
        fut = self._start_future(proc)
        self._launch(proc, name, None, None, fut)
        if fut is not None:
            fut.add_done_callback(_consume)
        return proc._pid

    def _start_future(self, proc: Actor) -> asyncio.Future[None] | None:
        """The future ``spawn`` awaits until ``started`` has run (None: it has no hook)."""
        if not proc._has_started:
            return None
        assert self._loop is not None
        return self._loop.create_future()

    async def spawn(
        self,
        cls: type[Actor] | str,
        *args: Any,
        name: Any = None,
        on: str | None = None,
        **kwargs: Any,
    ) -> Pid:
        """Start a process running ``cls(*args, **kwargs)`` and return its pid once its
        ``started`` hook has run; raises :class:`StartError` if that hook fails.

        ``cls`` may be an importable reference ``"pkg.mod:Class"``; with ``on="b"`` the process
        starts on node ``b``, which imports the reference (if its allow-list permits).
        """
        if on is not None and on != self.name:
            return await self._spawn_on(on, cls, args, kwargs, name)
        pid, _ = await self._spawn(_actor_class(cls), args, kwargs, name, None, monitor_by=None)
        return pid

    async def spawn_link(
        self,
        cls: type[Actor] | str,
        *args: Any,
        name: Any = None,
        on: str | None = None,
        **kwargs: Any,
    ) -> Pid:
        """Like ``spawn``, and link the new process to the calling process atomically: the
        link exists before the new process runs, on this node or on node ``on``."""
        me = self._caller("spawn_link")
        if on is not None and on != self.name:
            return await self._spawn_on(on, cls, args, kwargs, name, spawner=me._pid, link=True)
        pid, _ = await self._spawn(_actor_class(cls), args, kwargs, name, me, monitor_by=None)
        return pid

    async def spawn_monitor(
        self,
        cls: type[Actor] | str,
        *args: Any,
        name: Any = None,
        on: str | None = None,
        **kwargs: Any,
    ) -> tuple[Pid, Ref]:
        """Like ``spawn``, and monitor the new process from the calling process atomically:
        the monitor exists before the new process runs, on this node or on node ``on``."""
        me = self._caller("spawn_monitor")
        if on is not None and on != self.name:
            ref = self.make_ref()
            pid = await self._spawn_on(on, cls, args, kwargs, name, spawner=me._pid, ref=ref)
            return pid, ref
        pid, made = await self._spawn(_actor_class(cls), args, kwargs, name, None, monitor_by=me)
        assert made is not None
        return pid, made

    async def _spawn(
        self,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        link_to: Actor | None,
        *,
        monitor_by: Actor | None,
    ) -> tuple[Pid, Ref | None]:
        proc = self._create(cls, args, kwargs, name)
        fut = self._start_future(proc)
        ref = self._launch(proc, name, link_to, monitor_by, fut)
        if fut is not None:
            await fut
        return proc._pid, ref

    async def _spawn_on(
        self,
        node: str,
        cls: type[Actor] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        *,
        spawner: Pid | None = None,
        link: bool = False,
        ref: Ref | None = None,
    ) -> Pid:
        """Ask node ``node`` to spawn ``cls`` (by reference), linked to ``spawner`` or
        monitored by it under ``ref`` from the start (see :meth:`serve_spawn`)."""
        if not isinstance(cls, str):
            cls = f"{cls.__module__}:{cls.__qualname__}"
        if self._remote is None:
            raise UsageError(f"node {self.name} is not distributed: cannot spawn on {node!r}")
        return await self._remote.spawn(
            node, cls, args, kwargs, name, spawner=spawner, link=link, ref=ref
        )

    def serve_spawn(
        self,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        done: Callable[[Pid, BaseException | None], None],
        *,
        link: Pid | None = None,
        monitor: tuple[Pid, Ref] | None = None,
    ) -> None:
        """Start a process that another node's ``spawn(..., on=...)`` asked for (called by
        the transport layer), linked to the remote spawner ``link`` and monitored by
        ``monitor`` (its pid and ref) before it runs.

        ``done(pid, None)`` is called once ``started`` has returned, ``done(pid, error)`` with
        the :class:`StartError` if it failed; synchronously, before the new process handles
        anything else, so an answer sent from ``done`` reaches the spawner's node ahead of
        every signal of the new process (OTP guarantees the same of ``spawn_request``'s reply).
        A process whose ``started`` fails is unlinked and demonitored first, as for a local
        spawn. Raises at once what ``spawn`` raises before the process exists (``UsageError``,
        ``NameTaken``, what the constructor raised); ``done`` is then not called.
        """
        proc = self._create(cls, args, kwargs, name)
        hook = _StartHook(proc._pid, done) if proc._has_started else None
        self._launch(proc, name, link, monitor, hook)
        if hook is None:
            done(proc._pid, None)

    def remote_spawned(self, spawner: Pid, child: Pid, link: bool, ref: Ref | None) -> bool:
        """The answer to a ``spawn_link``/``spawn_monitor`` on another node (called by the
        transport layer): ``child`` runs there, linked to local ``spawner`` or monitored by it
        under ``ref``. Records this side, before any signal of the child arrives (they follow
        the answer). False if ``spawner`` is gone: the caller then undoes the other side."""
        proc = self._lookup(spawner)
        if proc is None or proc._node is not self:
            return False
        if link:
            if proc._links is None:
                proc._links = set()
            proc._links.add(child)
        if ref is not None:
            if proc._watching is None:
                proc._watching = {}
            proc._watching[ref] = child
        return True

    def _caller(self, what: str) -> Actor:
        me = current_process.get()
        if me is None or me._node is not self:
            raise UsageError(f"{what} must be called from a process on node {self.name}")
        return me

    # -- messages -------------------------------------------------------------------------------

    def send(self, dest: Any, msg: Any) -> None:
        """Send ``msg`` to a pid, a registered name, or ``(name, node)`` (the process registered
        as ``name`` on node ``node``, as Erlang's ``{Name, Node}``). Never blocks; a message to
        a dead pid, or to a name not registered on another node, is dropped and counted. Raises
        :class:`UnknownName` for a local name that is not registered and :class:`MailboxFull`
        for a full bounded mailbox with the ``reject`` policy."""
        if dest.__class__ is Pid:
            if dest._proc is None and self._remote is not None and dest.node != self.name:
                self._remote.send(None, dest, msg)  # the remote fast path: no local lookup
                return
            proc = self._lookup(dest)
            if proc is None:
                if self._remote is not None and dest.node != self.name:
                    self._remote.send(None, dest, msg)
                else:
                    self._stats.dropped_dead += 1
                return
        else:
            proc = self._resolve(dest)
            if proc is None:
                node = self._remote_name(dest)
                if node is not None:
                    self._remote.send_named(dest[0], node, msg)  # type: ignore[union-attr]
                    return
                if self._resolver is not None and self._resolver.send(dest, msg):
                    return
                raise UnknownName(dest)
        proc._deliver(msg)

    async def send_wait(self, dest: Any, msg: Any) -> None:
        """Like :meth:`send`, but when ``dest``'s bounded mailbox is full, wait for room
        instead of raising :class:`MailboxFull` (or dropping, for ``drop_newest``): a producer
        goes at the pace of its consumer. For a process on another node it also waits for room
        in the queue to that node, and the receiver grants room as its mailbox drains (see
        ``docs/nodes.md``, Back-pressure). Raises :class:`UnknownName` for an unregistered
        name; a message to a dead pid is dropped and counted, as by ``send``."""
        if self._is_remote(dest) and (dest._proc is None or dest._proc._node is not self):
            await self._remote.send_wait(dest, msg)  # type: ignore[union-attr]
            return
        while True:
            proc = self._resolve(dest)
            if proc is None:
                self.send(dest, msg)  # raises UnknownName, or counts the dead pid
                return
            limit = proc.mailbox_size
            mbox = proc._mbox
            if limit is None or mbox is None or len(mbox) < limit or proc._state >= EXITING:
                proc._deliver(msg)
                return
            assert self._loop is not None
            room: asyncio.Future[None] = self._loop.create_future()
            watch(proc, limit - 1, partial(_resolve_once, room))
            await room

    def cast(self, dest: Any, msg: Any) -> None:
        """Send ``msg``; like ``send`` but never raises: an unknown name, a full mailbox or
        queue, a message another node cannot be sent (too large, not encodable) are counted
        (``dropped_dead``, ``mailbox_rejected``, ``cast_refused``)."""
        proc = self._resolve(dest)
        if proc is None:
            try:
                if self._is_remote(dest):
                    me = current_process.get()
                    self._remote.send(me._pid if me is not None else None, dest, msg)  # type: ignore[union-attr]
                elif (node := self._remote_name(dest)) is not None:
                    self._remote.send_named(dest[0], node, msg)  # type: ignore[union-attr]
                elif (
                    dest.__class__ is Pid
                    or self._resolver is None
                    or not self._resolver.send(dest, msg)
                ):
                    self._stats.dropped_dead += 1
            except EmberError:
                self._stats.cast_refused += 1
            return
        try:
            proc._deliver(msg)
        except MailboxFull:
            pass  # counted by the mailbox

    def call(
        self, dest: Any, msg: Any, timeout: float | None = DEFAULT_CALL_TIMEOUT
    ) -> asyncio.Future[Any]:
        """Send ``msg`` as a request and return what the target's ``receive`` returns. The
        target is a pid, a registered name or ``(name, node)`` (see :meth:`send`).

        Raises :class:`NoProc` if the target does not exist or exits before answering,
        :class:`CallTimeout` after ``timeout`` seconds (None waits forever).
        """
        return call_process(self, dest, msg, timeout)

    def _failed(self, exc: BaseException) -> asyncio.Future[Any]:
        assert self._loop is not None
        fut = self._loop.create_future()
        fut.set_exception(exc)
        return fut

    def _call_eager(self, proc: Actor, msg: Any, timeout: float | None) -> asyncio.Future[Any]:
        assert self._loop is not None
        fut = self._loop.create_future()
        proc._state = RUNNING
        if proc._itimer is not None:
            proc._itimer.cancel()
            proc._itimer = None
        eager = EagerCall()
        proc._call = eager
        token = current_process.set(proc)
        try:
            result = proc.receive(msg)
            if proc._async_receive:
                # It has no await: the first step runs it to the end (StopIteration).
                try:
                    result.send(None)
                except StopIteration as done:
                    result = done.value
                else:  # pragma: no cover - can_suspend() rules this out
                    raise RuntimeError(f"{type(proc).__qualname__}.receive suspended")
        except BaseException as exc:
            current_process.reset(token)
            proc._call = None
            reason = exc.reason if isinstance(exc, _ExitNow) else exc
            self._exit_later(proc, reason)
            if reason is exc:
                self._log_crash(proc, exc)
            if not isinstance(exc, Exception | _ExitNow):
                raise
            err = NoProc(proc._pid, reason)
            err.__cause__ = exc
            fut.set_exception(err)
            return fut
        current_process.reset(token)
        self._stats.messages_processed += 1
        proc._handled += 1
        deferred = proc._call is not eager
        proc._call = None
        if proc._exit is not None:
            self._exit_later(proc, proc._exit)
        elif proc._mbox:
            self._schedule(proc)
        else:
            proc._state = IDLE
            proc._mbox = None
            if proc._rtimeout is not None:
                self._arm_idle(proc)
        if not deferred:
            fut.set_result(result)
        elif eager.done:
            if eager.exc is not None:
                fut.set_exception(eager.exc)
            else:
                fut.set_result(eager.value)
        elif proc._state >= EXITING:
            fut.set_exception(NoProc(proc._pid, proc._exit))
        else:
            # receive deferred its reply: from now on it is an ordinary call in flight.
            call = LocalCall(msg, fut, proc)
            eager.target = call
            if proc._monitors is None:
                proc._monitors = {}
            proc._monitors[call] = call
            if timeout is not None:
                call.bucket = self._deadlines.add(call, timeout)  # type: ignore[union-attr]
        return fut

    def _exit_later(self, proc: Actor, reason: Any) -> None:
        """Hand a process that must exit to a worker, which runs terminate and finalizes it."""
        proc._exit = reason
        proc._state = EXITING
        self._runq.append(proc)
        if not self._kicked:
            self._kick()

    def send_after(self, delay: float, dest: Any, msg: Any) -> TimerRef:
        """Send ``msg`` to ``dest`` after ``delay`` seconds (dropped if ``dest`` is gone by
        then)."""
        assert self._loop is not None
        timer = TimerRef(self._loop.time() + delay)
        timer._handle = self._loop.call_later(delay, self._timer_fired, timer, dest, msg)
        timer.when = timer._handle.when()
        return timer

    def _timer_fired(self, timer: TimerRef, dest: Any, msg: Any) -> None:
        timer._handle = None
        self.cast(dest, msg)

    def cancel_timer(self, timer: TimerRef) -> float | None:
        """Cancel a timer; returns the seconds it had left (0.0 if it was due but had not fired:
        the message is not sent either way), or None if it already fired or was cancelled."""
        assert self._loop is not None
        handle = timer._handle
        if handle is None:
            return None
        timer._handle = None
        handle.cancel()
        return max(0.0, timer.when - self._loop.time())

    # -- scheduler ------------------------------------------------------------------------------

    def _schedule(self, proc: Actor) -> None:
        proc._state = QUEUED
        self._runq.append(proc)
        if not self._kicked:
            self._kick()

    def _kick(self) -> None:
        self._kicked = True
        if self._parked:
            self._parked.pop().set_result(None)
        elif self._tg is not None and not self._closing:
            assert self._ctx is not None
            self._tg.create_task(self._worker(), context=self._ctx.copy())

    def _check(self) -> None:
        # Runs once the running worker has yielded or blocked in an actor: if work is still
        # queued then, someone must take it.
        self._check_pending = False
        if self._runq and not self._kicked:
            self._kick()

    async def _worker(self) -> None:
        assert self._loop is not None
        loop = self._loop
        runq = self._runq
        stats = self._stats
        me = asyncio.current_task()
        budget = YIELD_EVERY
        countdown = SAMPLE_EVERY - 1
        clock = time.perf_counter  # real time: uvloop's loop.time() is per-iteration, in ms
        self._kicked = False
        while True:
            if not runq:
                if len(self._parked) >= MAX_PARKED or self._closing:
                    return
                fut = loop.create_future()
                self._parked.append(fut)
                try:
                    await fut
                except asyncio.CancelledError:
                    return
                self._kicked = False
                budget = YIELD_EVERY
                continue
            proc = runq.popleft()
            if runq and not self._check_pending:
                self._check_pending = True
                loop.call_soon(self._check)
            state = proc._state
            if state != QUEUED:
                if state == STARTING:
                    await self._start(proc)
                elif state == EXITING:
                    await self._exit_hook(proc, proc._exit)
                continue
            # Run a slice of the mailbox. This is the hot path: keep it inline.
            proc._state = RUNNING
            proc._worker = me
            if proc._itimer is not None:
                proc._itimer.cancel()
                proc._itimer = None
            current_process.set(proc)
            mbox = proc._mbox
            assert mbox is not None
            recv: Callable[[Any], Any] = proc.receive  # a coroutine function or a plain one
            n = 0
            t0: float | None = None
            if countdown:
                countdown -= 1
            elif self._receive_timer is not None:  # time one slice in SAMPLE_EVERY
                countdown = SAMPLE_EVERY - 1
                t0 = clock()
            try:
                if proc._async_receive:
                    while mbox and n < SLICE:
                        msg = mbox.popleft()
                        n += 1
                        if msg.__class__ is LocalCall:
                            proc._call = msg
                            if msg.scope is None:
                                result = await recv(msg.msg)
                            else:
                                result = await _scoped_async(recv, msg)
                            if proc._call is msg:
                                proc._call = None
                                msg.reply(result)
                        else:
                            await recv(msg)
                        if proc._exit is not None:
                            break
                else:
                    while mbox and n < SLICE:
                        msg = mbox.popleft()
                        n += 1
                        if msg.__class__ is LocalCall:
                            proc._call = msg
                            result = recv(msg.msg) if msg.scope is None else _scoped(recv, msg)
                            if proc._call is msg:
                                proc._call = None
                                msg.reply(result)
                        else:
                            recv(msg)
                        if proc._exit is not None:
                            break
            except BaseException as exc:  # every way out of receive ends it
                stats.messages_processed += n
                proc._handled += n
                await self._crashed(proc, exc)
                continue
            stats.messages_processed += n
            proc._handled += n
            if t0 is not None and self._receive_timer is not None:
                self._receive_timer(clock() - t0, n)
            proc._worker = None
            if proc._watch is not None:
                drained(proc)
            if proc._exit is not None:
                await self._exit_hook(proc, proc._exit)
            elif mbox:
                proc._state = QUEUED
                runq.append(proc)
            else:
                proc._state = IDLE
                proc._mbox = None
                if proc._rtimeout is not None:
                    self._arm_idle(proc)
            budget -= n
            if budget <= 0:
                budget = YIELD_EVERY
                await asyncio.sleep(0)

    async def _start(self, proc: Actor) -> None:
        proc._state = RUNNING
        proc._worker = asyncio.current_task()
        current_process.set(proc)
        fut = self._starting.pop(proc, None)
        try:
            started: Callable[[], Any] = proc.started
            if proc._async_started:
                await started()
            else:
                started()
        except BaseException as exc:
            reason = self._reason_of(proc, exc)
            self._start_failed(proc, fut, reason)
            current_process.set(None)
            self._finalize(proc, reason)
            if reason is exc:
                self._log_crash(proc, exc)
            if not isinstance(exc, Exception | asyncio.CancelledError | _ExitNow):
                raise
            return
        current_process.set(None)
        proc._worker = None
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self._spawn_links:
            self._spawn_links.pop(proc, None)
        if self._spawn_monitors:
            self._spawn_monitors.pop(proc, None)
        if proc._exit is not None:
            await self._exit_hook(proc, proc._exit)
        elif proc._mbox:
            proc._state = QUEUED
            self._runq.append(proc)
        else:
            proc._state = IDLE
            proc._mbox = None
            if proc._rtimeout is not None:
                self._arm_idle(proc)

    def _reason_of(self, proc: Actor, exc: BaseException) -> Any:
        if isinstance(exc, _ExitNow):
            return exc.reason
        if isinstance(exc, asyncio.CancelledError) and proc._exit is not None:
            self._uncancel()
            return proc._exit
        return exc

    async def _crashed(self, proc: Actor, exc: BaseException) -> None:
        reason = self._reason_of(proc, exc)
        proc._worker = None
        if reason == KILLED:
            self._finalize(proc, KILLED)
        else:
            await self._exit_hook(proc, reason)
        if reason is exc:  # its own code raised: not an exit signal, exit() or stop()
            self._log_crash(proc, exc)
        if not isinstance(exc, Exception | asyncio.CancelledError | _ExitNow):
            raise exc

    async def _exit_hook(self, proc: Actor, reason: Any) -> None:
        """Run ``terminate(reason)`` (unless killed), then finalize the process."""
        if self._cancels:
            self._uncancel()  # its code swallowed the cancellation meant to end it
        if proc._has_terminate and reason != KILLED:
            proc._state = EXITING
            proc._exit = reason
            proc._worker = asyncio.current_task()
            current_process.set(proc)
            try:
                terminate: Callable[[Any], Any] = proc.terminate
                if proc._async_terminate:
                    await terminate(reason)
                else:
                    terminate(reason)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError) and proc._exit == KILLED:
                    reason = KILLED
                elif isinstance(exc, _ExitNow):
                    reason = exc.reason
                elif isinstance(exc, Exception):
                    log.error("terminate of %s failed", proc._pid, exc_info=exc)
                else:
                    self._finalize(proc, reason)
                    raise
            finally:
                current_process.set(None)
            if proc._exit == KILLED:
                reason = KILLED  # killed during terminate, even if terminate swallowed it
            if self._cancels:
                self._uncancel()
        self._finalize(proc, reason)

    def _log_crash(self, proc: Actor, exc: BaseException) -> None:
        """Count and log a process whose own code raised ``exc`` (only that process: those that
        exit because of its exit signal did not crash)."""
        self._stats.crashed += 1
        log.error(
            "process %s (%s) crashed: %r", proc._pid, type(proc).__qualname__, exc, exc_info=exc
        )

    def _arm_idle(self, proc: Actor) -> None:
        assert self._loop is not None and proc._rtimeout is not None
        proc._itimer = self._loop.call_later(proc._rtimeout, self._idle_fired, proc)

    def _idle_fired(self, proc: Actor) -> None:
        proc._itimer = None
        if proc._state == IDLE:
            proc._deliver_signal(RECEIVE_TIMEOUT)

    # -- exits, links, monitors -----------------------------------------------------------------

    def exit(self, pid: Pid, reason: Any) -> None:
        """Send an exit signal to ``pid`` (Erlang's ``exit/2``) from the calling process.

        ``kill`` cannot be trapped and makes the target exit with ``killed``; ``normal`` is ignored
        by a target that does not trap exits, unless the target is the caller itself.
        """
        me = current_process.get()
        sender = me._pid if me is not None else None
        target = self._lookup(pid)
        if target is None:
            if self._is_remote(pid):
                self._remote.exit(sender, pid, reason, False)  # type: ignore[union-attr]
            return
        if target is me and _runs_here(target):
            # The process exits itself: unwind its stack now. (A task the process started
            # shares its identity but not its stack: for it, this is an ordinary signal.)
            if reason == KILL:
                raise _ExitNow(KILLED)
            if not target._trap:
                raise _ExitNow(reason)
        self._enqueue_signal(target, sender, reason, False)

    def _enqueue_signal(self, target: Actor, sender: Any, reason: Any, link: bool) -> None:
        """Apply an exit signal from ``sender`` (a pid, None from outside any process, or the
        destination a link to a name was given) to ``target``, after those already queued."""
        if target._node is not self:  # another node in this process: it keeps its own books
            target._node._enqueue_signal(target, sender, reason, link)
            return
        self._signals.append((target, sender, reason, link))
        if self._draining_signals:
            return
        self._draining_signals = True
        try:
            while self._signals:
                self._apply_signal(*self._signals.popleft())
        finally:
            self._draining_signals = False

    def _apply_signal(self, target: Actor, sender: Any, reason: Any, link: bool) -> None:
        if target._state == DEAD:
            return
        if link and sender is not None:
            if target._links is None or sender not in target._links:
                return  # unlinked meanwhile: the signal is void
            target._links.discard(sender)
        if reason == KILL and not link:
            self._terminate(target, KILLED)
        elif target._trap:
            target._deliver_signal(Exit(sender, reason))
        elif reason == NORMAL and sender != target._pid:
            return
        else:
            self._terminate(target, reason)

    def _terminate(self, proc: Actor, reason: Any) -> None:
        """Make ``proc`` exit with ``reason`` as soon as possible, from outside its receive."""
        state = proc._state
        if state == DEAD:
            return
        if state == RUNNING or (state == EXITING and proc._worker is not None):
            if state == EXITING and reason != KILLED:
                return
            if proc._exit is None or reason == KILLED:  # the first reason wins, but for kill
                proc._exit = reason
            worker = proc._worker
            if worker is not None and worker is not asyncio.current_task():
                self._cancel_worker(worker)
            elif worker is not None and self._loop is not None:
                # The process is the caller itself, mid-receive: it stops after this message,
                # or is cancelled at its next await.
                self._loop.call_soon(self._cancel_if_running, proc, worker)
            return
        if state == EXITING:
            if reason == KILLED:
                self._finalize(proc, KILLED)
            return
        fut = self._starting.pop(proc, None)
        if fut is not None:
            self._start_failed(proc, fut, reason)
            self._finalize(proc, reason)
            return
        if proc._has_terminate and reason != KILLED:
            proc._state = EXITING
            proc._exit = reason
            if state == IDLE:
                self._runq.append(proc)
                if not self._kicked:
                    self._kick()
            return
        self._finalize(proc, reason)

    def _cancel_if_running(self, proc: Actor, worker: asyncio.Task[None]) -> None:
        if proc._worker is worker and proc._state == RUNNING:
            self._cancel_worker(worker)

    def _cancel_worker(self, worker: asyncio.Task[Any]) -> None:
        """Cancel a worker suspended inside the process it runs, to end that process."""
        self._cancels[worker] = self._cancels.get(worker, 0) + 1
        worker.cancel()

    def _uncancel(self) -> None:
        """In a worker back from a process that was ended by cancellation, take back every
        cancellation requested of it: they were meant for that process (however many signals
        came, and even if its code swallowed them), not for whatever the worker runs next."""
        task = asyncio.current_task()
        if task is not None:
            for _ in range(self._cancels.pop(task, 0)):
                task.uncancel()

    def _finalize(self, proc: Actor, reason: Any) -> None:
        if proc._state == DEAD:
            return
        proc._state = DEAD
        proc._worker = None
        pid = proc._pid
        pid._proc = None
        self._procs.pop(pid.serial, None)
        self._count_exit(reason)
        if proc._name is not None:
            self._names.pop(proc._name, None)
            proc._name = None
        if proc._itimer is not None:
            proc._itimer.cancel()
            proc._itimer = None
        mbox = proc._mbox
        proc._mbox = None
        if proc._watch is not None:
            release(proc)
        self._long.pop(proc, None)
        pending = proc._call
        proc._call = None
        if pending is not None and pending.__class__ is LocalCall:
            pending.down(pid, reason)
        if mbox:
            for m in mbox:
                if m.__class__ is LocalCall:
                    m.down(pid, reason)
                else:
                    self._stats.dropped_on_exit += 1
        fut = self._starting.pop(proc, None)
        if fut is not None:
            self._start_failed(proc, fut, reason)
        watching = proc._watching
        proc._watching = None
        if watching:
            for ref, target_pid in watching.items():
                self._unwatch(ref, target_pid)
        monitors = proc._monitors
        proc._monitors = None
        if monitors:
            for ref, watcher in monitors.items():
                if watcher.__class__ is Pid:
                    self._down(watcher, ref, pid, reason)
                else:
                    watcher.down(pid, reason)
        links = proc._links
        proc._links = None
        if links:
            for other in links:
                target = self._lookup(other)
                if target is not None:
                    self._enqueue_signal(target, pid, reason, True)
                elif self._is_remote(other):
                    self._remote.exit(pid, other, reason, True)  # type: ignore[union-attr]

    def _count_exit(self, reason: Any) -> None:
        s = self._stats
        s.exited += 1
        if reason.__class__ is str:
            if reason == NORMAL:
                s.exited_normal += 1
            elif reason == SHUTDOWN:
                s.exited_shutdown += 1
            elif reason == KILLED:
                s.exited_killed += 1
            elif reason == NOCONNECTION:
                s.exited_noconnection += 1
            else:
                s.exited_other += 1
        elif isinstance(reason, BaseException):
            s.exited_error += 1
        elif isinstance(reason, tuple) and reason and reason[0] == SHUTDOWN:
            s.exited_shutdown += 1
        else:
            s.exited_other += 1

    def _down(self, watcher: Pid, ref: Ref, pid: Pid, reason: Any) -> None:
        proc = self._lookup(watcher)
        if proc is None:
            if self._is_remote(watcher):
                self._remote.down(watcher, ref, pid, reason)  # type: ignore[union-attr]
            return
        if proc._watching is not None:
            proc._watching.pop(ref, None)
        proc._deliver_signal(Down(ref, pid, reason))

    def _add_link(self, a: Actor, b: Actor) -> None:
        if a._links is None:
            a._links = set()
        if b._links is None:
            b._links = set()
        a._links.add(b._pid)
        b._links.add(a._pid)

    def _start_failed(self, proc: Actor, fut: StartWaiter | None, reason: Any) -> None:
        """Fail ``spawn``'s future. A ``spawn_link`` or ``spawn_monitor`` spawner hears of it
        from StartError, not also from an exit signal or a Down, so that link and monitor go
        first; links the process made itself stay (its children still get its exit signal)."""
        if fut is not None and not fut.done():
            error = StartError(reason)
            if isinstance(reason, BaseException):
                error.__cause__ = reason  # its traceback shows where started failed
            fut.set_exception(error)
        spawner = self._spawn_links.pop(proc, None) if self._spawn_links else None
        if spawner is not None and proc._links is not None:
            proc._links.discard(spawner)
            other = self._lookup(spawner)
            if other is not None and other._links is not None:
                other._links.discard(proc._pid)
        ref = self._spawn_monitors.pop(proc, None) if self._spawn_monitors else None
        if ref is not None and proc._monitors is not None:
            watcher = proc._monitors.pop(ref, None)
            other = self._lookup(watcher) if watcher.__class__ is Pid else None
            if other is not None and other._watching is not None:
                other._watching.pop(ref, None)

    def _add_monitor(self, watcher: Actor, target: Actor) -> Ref:
        ref = self.make_ref()
        if target._monitors is None:
            target._monitors = {}
        target._monitors[ref] = watcher._pid
        if watcher._watching is None:
            watcher._watching = {}
        watcher._watching[ref] = target._pid
        return ref

    def link(self, pid: Any) -> None:
        """Link the calling process to ``pid``: when either exits, the other gets an exit signal.

        ``pid`` may be a destination that names a process: a local name, ``(name, node)`` (the
        process registered as ``name`` on ``node`` now) or what the resolver knows; the link is
        with the process it names. Linking to a local process that does not exist raises
        :class:`NoProc` in the caller, or, if the caller traps exits, delivers
        ``Exit(pid, "noproc")`` (``pid`` the destination it was given). Towards another node the
        answer comes later, as an exit signal ``noproc`` (or ``noconnection``) from ``pid``.
        """
        me = self._caller("link")
        if pid.__class__ is not Pid:
            resolved = self._dest_pid(pid)
            if isinstance(resolved, tuple):  # the resolver: only that node can say
                pid, resolved = resolved, None
            if resolved is None:
                node = self._remote_name(pid)
                if node is not None:  # its node answers which process that is (LINKED)
                    self._linking.setdefault(node, []).append((me._pid, pid))
                    self._remote.link(me._pid, pid)  # type: ignore[union-attr]
                    return
                if me._trap:
                    me._deliver_signal(Exit(pid, NOPROC))
                    return
                raise NoProc(pid)
            pid = resolved
        target = self._lookup(pid)
        if target is None and self._is_remote(pid):
            if me._links is None:
                me._links = set()
            if pid not in me._links:
                me._links.add(pid)
                self._remote.link(me._pid, pid)  # type: ignore[union-attr]
            return
        if target is None or target._state >= EXITING:
            if me._trap:
                me._deliver_signal(Exit(pid, NOPROC))
                return
            raise NoProc(pid)
        if target is not me:
            self._add_link(me, target)

    def remote_linked(
        self, linker: Pid, dest: tuple[Any, str], pid: Pid | None, reason: Any = NOPROC
    ) -> bool:
        """The answer to ``link((name, node))`` of local ``linker`` (called by the transport
        layer): ``pid`` is the process ``name`` named there, now linked to ``linker``; None if
        there was none (or its node cannot be reached: ``reason``), and ``linker`` gets an exit
        signal ``reason`` from ``dest``. False if ``linker`` is gone: the caller then tells
        ``pid``, whose link has no other end."""
        pending = self._linking.get(dest[1])
        if not pending or (linker, dest) not in pending:
            return True  # its node went down meanwhile: the linker had noconnection already
        pending.remove((linker, dest))
        if not pending:
            del self._linking[dest[1]]
        proc = self._lookup(linker)
        if pid is None:
            if proc is not None:
                self._enqueue_signal(proc, dest, reason, False)
            return True
        if proc is None:
            return False
        if proc._links is None:
            proc._links = set()
        proc._links.add(pid)
        return True

    def unlink(self, pid: Any) -> None:
        """Remove the link between the calling process and ``pid``, if any. For ``(name,
        node)`` the name is looked up on that node, which removes both sides of the link (an
        exit signal already on its way may still arrive; unlink the pid to rule that out)."""
        me = self._caller("unlink")
        if pid.__class__ is not Pid:
            resolved = self._dest_pid(pid)
            if isinstance(resolved, tuple):
                pid, resolved = resolved, None
            if resolved is None:
                if self._remote_name(pid) is not None:
                    self._remote.unlink(me._pid, pid)  # type: ignore[union-attr]
                return
            pid = resolved
        if me._links is not None:
            me._links.discard(pid)
        if self._is_remote(pid):
            self._remote.unlink(me._pid, pid)  # type: ignore[union-attr]
            return
        target = self._lookup(pid)
        if target is not None and target._links is not None:
            target._links.discard(me._pid)

    def monitor(self, pid: Any) -> Ref:
        """Monitor ``pid`` from the calling process; a :class:`Down` message arrives when it exits
        (at once, with reason ``noproc``, if it does not exist). Monitors stack.

        ``pid`` may be a destination: a local name, ``(name, node)`` (Erlang's
        ``monitor(process, {Name, Node})``) or what the resolver knows; the monitor is on the
        process it names now. The Down of a name that names no process carries the name.
        """
        me = self._caller("monitor")
        if pid.__class__ is not Pid:
            resolved = self._dest_pid(pid)
            if isinstance(resolved, tuple):
                pid, resolved = resolved, None
            if resolved is None:
                ref = self.make_ref()
                if self._remote_name(pid) is not None:  # its node resolves the name
                    if me._watching is None:
                        me._watching = {}
                    me._watching[ref] = pid
                    self._remote.monitor(me._pid, pid, ref)  # type: ignore[union-attr]
                else:
                    me._deliver_signal(Down(ref, pid, NOPROC))
                return ref
            pid = resolved
        target = self._lookup(pid)
        if target is None and self._is_remote(pid):
            ref = self.make_ref()
            if me._watching is None:
                me._watching = {}
            me._watching[ref] = pid
            self._remote.monitor(me._pid, pid, ref)  # type: ignore[union-attr]
            return ref
        if target is None or target._state >= EXITING:
            ref = self.make_ref()
            me._deliver_signal(Down(ref, pid, NOPROC))
            return ref
        return self._add_monitor(me, target)

    def demonitor(self, ref: Ref, flush: bool = False) -> bool:
        """Remove a monitor; with ``flush``, also drop its Down message if already delivered.
        Returns True if the monitor was still active (for a process on another node: if this
        node had not yet heard of its Down). No Down of it arrives after this returns."""
        me = self._caller("demonitor")
        active = False
        if me._watching is not None:
            target_pid = me._watching.pop(ref, None)
            if target_pid is not None:
                active = self._unwatch(ref, target_pid)
        if flush and me._mbox:
            kept = [m for m in me._mbox if not (m.__class__ is Down and m.ref == ref)]
            me._mbox.clear()
            me._mbox.extend(kept)
        return active

    def _unwatch(self, ref: Ref, target: Pid | tuple[Any, str]) -> bool:
        """Remove monitor ``ref`` from its target, here or on its node; False if it was gone."""
        if target.__class__ is Pid:
            proc = self._lookup(target)
            if proc is not None and proc._monitors is not None:
                return proc._monitors.pop(ref, None) is not None
            if not self._is_remote(target):
                return False
        if self._remote is None:
            return False
        self._remote.demonitor(ref, target)
        return True

    def flush_messages(self, match: Callable[[Any], bool]) -> int:
        """Remove from the calling process's mailbox every queued message (not call) for
        which ``match(msg)`` is true, and return how many: the flush of Erlang's
        ``demonitor(Ref, [flush])`` for notifications of a subscription just ended."""
        me = self._caller("flush_messages")
        if not me._mbox:
            return 0
        kept = [m for m in me._mbox if m.__class__ is LocalCall or not match(m)]
        removed = len(me._mbox) - len(kept)
        me._mbox.clear()
        me._mbox.extend(kept)
        return removed

    def wait_exit(self, pid: Pid) -> asyncio.Future[Any]:
        """A future that resolves to ``pid``'s exit reason (``noproc`` if it does not exist).

        Usable from outside any process, e.g. in tests and shutdown code.
        """
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        target = self._lookup(pid)
        if target is None or target._state == DEAD:
            fut.set_result(NOPROC)
            return fut
        if target._monitors is None:
            target._monitors = {}
        waiter = _ExitWaiter(fut)
        target._monitors[waiter] = waiter

        def forget(_: asyncio.Future[Any]) -> None:  # e.g. cancelled by a timeout
            if target._monitors is not None:
                target._monitors.pop(waiter, None)

        fut.add_done_callback(forget)
        return fut

    def is_alive(self, pid: Pid) -> bool:
        """Whether ``pid`` is a live process of this node (Erlang's ``is_process_alive``)."""
        proc = self._lookup(pid)
        return proc is not None and proc._state < EXITING and proc._node is self

    def watch(self, pid: Pid, on_exit: Callable[[Pid, Any], None]) -> Any:
        """Call ``on_exit(pid, reason)`` when local process ``pid`` exits: a monitor for the
        layers above the kernel, which have no process to receive a Down. It is called from
        the loop, synchronously, while the process is being finalized: it must not block, and
        what it raises propagates into the exit path, so it must not raise. Returns a handle
        for :meth:`unwatch`, or None (and never calls) if ``pid`` is not a live process here.
        """
        target = self._lookup(pid)
        if target is None or target._state >= EXITING or target._node is not self:
            return None
        if target._monitors is None:
            target._monitors = {}
        handle = _ExitCallback(on_exit, target)
        target._monitors[handle] = handle
        return handle

    def unwatch(self, handle: Any) -> None:
        """Remove a :meth:`watch` (a no-op once it fired)."""
        mons = handle.proc._monitors
        if mons is not None:
            mons.pop(handle, None)

    # -- names ----------------------------------------------------------------------------------

    def _check_name(self, name: Any) -> None:
        if name is None or name.__class__ is Pid:
            raise UsageError("a name must not be None or a pid")
        holder = self._names.get(name)
        if holder is not None:
            raise NameTaken(name, holder._pid)

    def _register(self, name: Any, proc: Actor) -> None:
        self._check_name(name)
        if proc._name is not None:
            raise UsageError(f"{proc._pid} is already registered as {proc._name!r}")
        self._names[name] = proc
        proc._name = name

    def register(self, name: Any, pid: Pid) -> None:
        """Register a local process under ``name``; the name is freed when the process exits."""
        self._check_name(name)
        proc = self._lookup(pid)
        if proc is None or proc._state >= EXITING or proc._node is not self:
            raise NoProc(pid)
        self._register(name, proc)

    def unregister(self, name: Any) -> None:
        """Remove a name; raises :class:`UnknownName` if it is not registered."""
        proc = self._names.pop(name, None)
        if proc is None:
            raise UnknownName(name)
        proc._name = None

    def whereis(self, name: Any) -> Pid | None:
        """The pid registered under ``name`` on this node, or None."""
        proc = self._names.get(name)
        return proc._pid if proc is not None else None

    def registered(self) -> list[Any]:
        """All locally registered names."""
        return list(self._names)

    # -- inbound distribution (called by the transport layer) ------------------------------------

    def local_pid(self, pid: Pid) -> Pid:
        """The canonical pid object of a live local process equal to ``pid``, else ``pid``."""
        if pid.node == self.name and pid.creation == self.creation:
            proc = self._procs.get(pid.serial)
            if proc is not None:
                return proc._pid
        return pid

    def remote_deliver(self, pid: Pid, msg: Any) -> None:
        """A message from another node for local ``pid`` (dropped and counted if it is gone)."""
        self._deliver_remote(self._lookup(pid), msg)

    def remote_deliver_named(self, name: Any, msg: Any) -> None:
        """A message from another node for the process registered here as ``name`` (dropped
        and counted if there is none)."""
        self._deliver_remote(self._names.get(name), msg)

    def _deliver_remote(self, proc: Actor | None, msg: Any) -> None:
        if proc is None:
            self._stats.dropped_dead += 1
            return
        try:
            proc._deliver(msg)
        except MailboxFull:
            pass  # counted by the mailbox

    def remote_link(self, local: Pid, remote: Pid) -> bool:
        """``remote`` linked to ``local``; False if ``local`` does not exist (answer noproc)."""
        proc = self._lookup(local)
        if proc is None or proc._state >= EXITING:
            return False
        if proc._links is None:
            proc._links = set()
        proc._links.add(remote)
        return True

    def remote_unlink(self, local: Pid, remote: Pid) -> None:
        """``remote`` removed its link to ``local``."""
        proc = self._lookup(local)
        if proc is not None and proc._links is not None:
            proc._links.discard(remote)

    def remote_exit(self, target: Pid, sender: Pid | None, reason: Any, link: bool) -> None:
        """An exit signal from another node to local ``target``."""
        proc = self._lookup(target)
        if proc is not None:
            self._enqueue_signal(proc, sender, reason, link)

    def remote_monitor(self, target: Pid, watcher: Pid, ref: Ref) -> bool:
        """Remote ``watcher`` monitors local ``target``; False if it does not exist."""
        proc = self._lookup(target)
        if proc is None or proc._state >= EXITING:
            return False
        if proc._monitors is None:
            proc._monitors = {}
        proc._monitors[ref] = watcher
        return True

    def remote_demonitor(self, target: Pid, ref: Ref) -> None:
        """A remote watcher removed its monitor on local ``target``."""
        proc = self._lookup(target)
        if proc is not None and proc._monitors is not None:
            proc._monitors.pop(ref, None)

    def remote_down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        """A remote process that local ``watcher`` monitored has exited (``pid`` is the
        ``(name, node)`` monitored, if that name named no process). Dropped if the monitor was
        removed meanwhile: no Down arrives after ``demonitor`` returns, as in Erlang."""
        proc = self._lookup(watcher)
        if proc is None or proc._watching is None or proc._watching.pop(ref, None) is None:
            return
        proc._deliver_signal(Down(ref, pid, reason))

    def monitor_node(self, name: str) -> None:
        """The calling process gets ``NodeEvent(name, up=False)`` once, when node ``name``
        becomes unreachable (at once if it is not connected now)."""
        me = self._caller("monitor_node")
        if self._remote is None or not self._remote.is_connected(name):
            me._deliver_signal(NodeEvent(name, False, NOCONNECTION))
            return
        self._node_watchers.setdefault(name, set()).add(me._pid)

    def subscribe_nodes(self, flag: bool = True) -> None:
        """The calling process gets a ``NodeEvent`` each time a node connects or goes down."""
        me = self._caller("subscribe_nodes")
        if flag:
            self._node_subscribers.add(me._pid)
        else:
            self._node_subscribers.discard(me._pid)

    def _node_event(self, event: NodeEvent) -> None:
        # A process both monitoring the node and subscribed gets one event for each, as in
        # Erlang a monitor_node and a monitor_nodes subscription each send their message.
        watchers = self._node_watchers.pop(event.node, set()) if not event.up else set()
        for pid in [*watchers, *self._node_subscribers]:
            proc = self._lookup(pid)
            if proc is None:
                self._node_subscribers.discard(pid)
            else:
                proc._deliver_signal(event)

    def node_up(self, name: str) -> None:
        """Node ``name`` connected (called by the transport layer)."""
        self._node_event(NodeEvent(name, True))

    def node_down(self, name: str) -> None:
        """Node ``name`` became unreachable: links to its processes get ``noconnection`` exit
        signals (links to its names not yet answered too), monitors of them fire
        ``noconnection``, its monitors of ours are dropped."""
        self._node_event(NodeEvent(name, False, NOCONNECTION))
        for linker, dest in self._linking.pop(name, ()):
            waiting = self._lookup(linker)
            if waiting is not None:
                self._enqueue_signal(waiting, dest, NOCONNECTION, False)
        for proc in list(self._procs.values()):
            if proc._state == DEAD:
                continue
            if proc._monitors:
                for ref in [
                    r for r, w in proc._monitors.items() if w.__class__ is Pid and w.node == name
                ]:
                    del proc._monitors[ref]
            if proc._watching:
                for ref, target in [
                    (r, t) for r, t in proc._watching.items() if _node_of(t) == name
                ]:
                    del proc._watching[ref]
                    proc._deliver_signal(Down(ref, target, NOCONNECTION))
            if proc._links:
                for other in [p for p in proc._links if p.node == name]:
                    self._enqueue_signal(proc, other, NOCONNECTION, True)

    # -- introspection --------------------------------------------------------------------------

    def processes(self) -> list[Pid]:
        """Pids of every live process on this node, in spawn order."""
        return [p._pid for p in self._procs.values()]

    def process_info(self, pid: Pid) -> ProcessInfo | None:
        """A snapshot of a local process, or None if it does not exist."""
        proc = self._lookup(pid)
        if proc is None or proc._node is not self:
            return None
        mons = proc._monitors or {}
        return ProcessInfo(
            pid=proc._pid,
            status=STATE_NAMES[proc._state],
            behaviour=f"{type(proc).__module__}.{type(proc).__qualname__}",
            mailbox_len=len(proc._mbox or ()),
            links=tuple(sorted(proc._links or ())),
            monitored_by=sum(1 for w in mons.values() if w.__class__ is Pid),
            monitoring=tuple((proc._watching or {}).values()),
            name=proc._name,
            trap_exits=proc._trap,
            messages=proc._handled,
        )

    def statistics(self) -> Statistics:
        """Process count, the node's message and lifecycle counters, and its long mailboxes."""
        s = self._stats
        counters = {name: getattr(s, name) for name in s.__dataclass_fields__}
        infos = [info for p in self._long if (info := self.process_info(p._pid)) is not None]
        infos.sort(key=lambda info: -info.mailbox_len)
        return Statistics(
            processes=len(self._procs), counters=counters, long_mailboxes=tuple(infos)
        )

    def _report(self, key: Any, msg: str, *args: Any) -> None:
        """A warning that may repeat (long mailboxes): rate-limited per ``key``."""
        if self._reports is None:
            log.warning(msg, *args)
        else:
            self._reports.emit(key, msg, *args)

    def time_receives(self, timer: ReceiveTimer | None) -> None:
        """Install (None: remove) ``timer(seconds, messages)``, called for one scheduling slice
        in :data:`SAMPLE_EVERY` with how long its receives took. The cost when none is
        installed is one counter per slice; calls run eagerly in their caller are not timed
        (one in ``EAGER_BUDGET`` goes through the scheduler, so they are sampled too)."""
        self._receive_timer = timer

    def iter_processes(self) -> Iterator[ProcessInfo]:
        """A :class:`ProcessInfo` for every live process, in spawn order (for introspection
        tools: the admin API, ``ember top``)."""
        for proc in list(self._procs.values()):
            info = self.process_info(proc._pid)
            if info is not None:
                yield info

    def mailbox_lengths(self) -> Iterator[tuple[Pid, int, int]]:
        """``(pid, mailbox length, messages handled)`` of every live process: the cheap scan
        behind the mailbox metrics and top-N views."""
        for proc in self._procs.values():
            yield proc._pid, len(proc._mbox or ()), proc._handled

    @property
    def root(self) -> Pid:
        """The node's root supervisor (one_for_one); add children with ``start_child``."""
        if self._root is None:
            raise UsageError(f"node {self.name} is not running")
        return self._root

    async def start_child(self, spec: Any) -> Pid:
        """Start a child (an ``ember.child(...)`` spec) under the node's root supervisor."""
        from ._supervisor import Supervisor

        return await Supervisor.start_child(self.root, spec)

    def __repr__(self) -> str:
        return f"<Node {self.name} processes={len(self._procs)}>"


class StartWaiter(Protocol):
    """Hears how a new process's ``started`` hook ended: ``spawn``'s future, or the
    :class:`_StartHook` of a spawn another node asked for."""

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class _StartHook:
    """Stands in for ``spawn``'s future when another node asked for the spawn: it calls
    ``fn(pid, error)`` at once rather than one loop iteration later (see ``serve_spawn``)."""

    __slots__ = ("_done", "fn", "pid")

    def __init__(self, pid: Pid, fn: Callable[[Pid, BaseException | None], None]) -> None:
        self.pid = pid
        self.fn = fn
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: None, /) -> None:
        self._call(None)

    def set_exception(self, exception: BaseException, /) -> None:
        self._call(exception)

    def _call(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self.fn(self.pid, error)
        except Exception:  # it runs inside the scheduler, which must not die of it
            log.exception("answering the spawn of %s failed", self.pid)


def _node_of(target: Pid | tuple[Any, str]) -> str:
    """The node of a monitor's target: a pid's, or ``(name, node)``'s."""
    return target.node if isinstance(target, Pid) else target[1]


def _actor_class(cls: type[Actor] | str) -> type[Actor]:
    return resolve_actor(cls) if isinstance(cls, str) else cls


def resolve_actor(target: str) -> type[Actor]:
    """Import ``"pkg.mod:Class"`` and check that it names an Actor subclass."""
    from ._refs import resolve_class

    return resolve_class(target, Actor, "an actor")


def _resolve_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


# Calls take their deadline as a ``timeout`` argument, as gen_server:call does (ASYNC109).
def call_process(
    node: Node | None,
    dest: Any,
    msg: Any,
    timeout: float | None,
    scope: CallScope | None = None,
) -> asyncio.Future[Any]:
    """The one implementation behind ``ember.call`` and ``Node.call``.

    Returns a future rather than being a coroutine: a call is on the hot path, and the future
    is all the caller awaits. Errors are set on the future, so ``gather(call(a), call(b))``
    behaves as with coroutines. ``scope`` runs around the receive that answers (a call with
    one always goes through the scheduler).
    """
    proc = dest._proc if dest.__class__ is Pid else None
    if proc is not None and node is not None and proc._node is not node:
        proc = node._lookup(dest)
    if proc is None:
        if node is None:
            node = _node_here()
        proc = node._resolve(dest)
        if proc is None:
            if node._is_remote(dest) or node._remote_name(dest) is not None:
                return node._remote.call(dest, msg, timeout)  # type: ignore[union-attr]
            if dest.__class__ is not Pid and node._resolver is not None:
                pid = node._resolver.whereis(dest)
                if isinstance(pid, tuple):  # only that node can say
                    return node._remote.call(pid, msg, timeout)  # type: ignore[union-attr]
                if pid is not None:
                    return call_process(node, pid, msg, timeout)
            return node._failed(NoProc(dest))
    node = proc._node
    state = proc._state
    if state >= EXITING:
        return node._failed(NoProc(dest))
    if state == IDLE and proc._eager_receive and scope is None:
        # A receive that cannot suspend (plain def, or async def without await), on an idle
        # process, runs right here: the caller waits for it anyway, and nothing else could run
        # before it. Bounded, so a loop of calls cannot starve the event loop.
        node._eager -= 1
        if node._eager > 0:
            return node._call_eager(proc, msg, timeout)
        node._eager = EAGER_BUDGET
    worker = proc._worker
    if worker is not None and worker is asyncio.current_task():
        return node._failed(UsageError(f"{proc._pid} called itself: that would never return"))
    loop = node._loop
    assert loop is not None
    fut = loop.create_future()
    call = LocalCall(msg, fut, proc, scope)
    # No monitor entry: until answered, the call sits in the mailbox or in ``proc._call``, and
    # the process fails both when it exits (see ``_finalize``). A caller that is cancelled
    # cancels the future; the reply or the deadline then finds it done and cleans up.
    try:
        proc._deliver(call)
    except MailboxFull as exc:
        fut.set_exception(exc)
        return fut
    if timeout is not None:
        call.bucket = node._deadlines.add(call, timeout)  # type: ignore[union-attr]
    return fut


def _scoped(recv: Callable[[Any], Any], call: LocalCall) -> Any:
    scope = call.scope
    assert scope is not None
    token = scope.enter()
    try:
        result = recv(call.msg)
    except BaseException as exc:
        scope.exit(token, exc)
        raise
    scope.exit(token, None)
    return result


async def _scoped_async(recv: Callable[[Any], Any], call: LocalCall) -> Any:
    scope = call.scope
    assert scope is not None
    token = scope.enter()
    try:
        result = await recv(call.msg)
    except BaseException as exc:
        scope.exit(token, exc)
        raise
    scope.exit(token, None)
    return result


def _runs_here(proc: Actor) -> bool:
    """Whether the caller is ``proc``'s own code (its receive, started or terminate), as
    opposed to a task that ``proc`` started, which inherits its identity but runs apart."""
    worker = proc._worker
    if worker is None:
        return proc._state == RUNNING  # a plain-def receive run eagerly in its caller's task
    return worker is asyncio.current_task()


def _node_here() -> Node:
    me = current_process.get()
    if me is not None:
        return me._node
    node = current_node.get(None)
    if node is None:
        raise UsageError("no Ember node is running here: use `async with ember.Node(...)`")
    return node


class EagerCall:
    """Stands in for a call run eagerly (see ``Node._call_eager``) until receive returns; if
    receive defers its reply, it forwards to a real :class:`LocalCall`."""

    __slots__ = ("done", "exc", "target", "value")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.exc: BaseException | None = None
        self.target: LocalCall | None = None

    def reply(self, value: Any) -> None:
        if self.target is not None:
            self.target.reply(value)
        elif not self.done:
            self.done, self.value = True, value

    def fail(self, exc: BaseException) -> None:
        if self.target is not None:
            self.target.fail(exc)
        elif not self.done:
            self.done, self.exc = True, exc
