"""The ``Actor`` base class: the behaviour users write, and the per-process state the runtime keeps.

The runtime state lives in ``__slots__`` on the same object as the user's behaviour, so an idle
process costs one object, its pid and one table entry: no task, no mailbox until a message comes.
"""

from __future__ import annotations

import dis
import inspect
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._errors import MailboxFull, UsageError
from ._mailbox import over_check
from ._pid import Pid, Ref

if TYPE_CHECKING:
    import asyncio

    from ._node import Node

# Process states, ordered: everything from EXITING on refuses messages.
STARTING = 0
IDLE = 1
QUEUED = 2
RUNNING = 3
EXITING = 4
DEAD = 5

STATE_NAMES = ("starting", "idle", "queued", "running", "exiting", "dead")

MailboxPolicy = Literal["reject", "drop_newest"]


class Actor:
    """Base class of every actor.

    Subclass it and write ``receive``; the return value of ``receive`` answers a ``call``.
    Optional hooks: ``started()`` runs in the new process before its first message (an exception
    there makes ``spawn`` raise :class:`ember.StartError`), and ``terminate(reason)`` runs when the
    process exits for any reason but ``killed``. Each may be ``async def`` or plain ``def``.

    Class attributes tune the process: ``mailbox_size`` (``None`` = unbounded) with
    ``mailbox_policy`` (``"reject"`` raises :class:`ember.MailboxFull` at the sender,
    ``"drop_newest"`` drops and counts), ``trap_exits`` (initial value) and ``receive_timeout``
    (seconds without a message before :data:`ember.RECEIVE_TIMEOUT` is delivered).
    """

    __slots__ = (
        "_call",
        "_exit",
        "_handled",
        "_itimer",
        "_links",
        "_mbox",
        "_mbox_check",
        "_monitors",
        "_name",
        "_node",
        "_pid",
        "_rtimeout",
        "_state",
        "_trap",
        "_watch",
        "_watching",
        "_worker",
    )

    mailbox_size: ClassVar[int | None] = None
    mailbox_policy: ClassVar[MailboxPolicy] = "reject"
    trap_exits: ClassVar[bool] = False
    receive_timeout: ClassVar[float | None] = None

    # Filled in per class by __init_subclass__ so the scheduler never inspects per message.
    _async_receive: ClassVar[bool] = True
    _eager_receive: ClassVar[bool] = True
    _async_started: ClassVar[bool] = True
    _async_terminate: ClassVar[bool] = True
    _has_started: ClassVar[bool] = False
    _has_terminate: ClassVar[bool] = False

    _pid: Pid
    _node: Node
    _mbox: deque[Any] | None
    _state: int
    _links: set[Pid] | None
    _monitors: dict[Any, Any] | None  # monitors on this process: ref -> watcher
    _watching: dict[Ref, Any] | None  # monitors it holds: ref -> target pid or (name, node)
    _trap: bool
    _name: Any
    _worker: asyncio.Task[None] | None
    _exit: Any  # a pending exit reason, or None
    _itimer: asyncio.TimerHandle | None
    _rtimeout: float | None
    _call: Any  # the call being answered, while receive runs for it
    _mbox_check: int  # the mailbox length at which a delivery takes the slow path (_mailbox.py)
    _watch: list[tuple[int, Any]] | None  # callbacks waiting for the mailbox to drain
    _handled: int  # messages this process has handled (counted per slice)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._async_receive = inspect.iscoroutinefunction(cls.receive)
        cls._eager_receive = not cls._async_receive or not can_suspend(cls.receive)
        cls._async_started = inspect.iscoroutinefunction(cls.started)
        cls._async_terminate = inspect.iscoroutinefunction(cls.terminate)
        cls._has_started = cls.started is not Actor.started
        cls._has_terminate = cls.terminate is not Actor.terminate
        if cls.mailbox_policy not in ("reject", "drop_newest"):
            raise UsageError(f"{cls.__qualname__}.mailbox_policy must be 'reject' or 'drop_newest'")

    async def receive(self, msg: Any) -> Any:
        """Handle one message. For a ``call``, the return value is the reply."""
        return None

    async def started(self) -> None:
        """Runs in the new process before its first message."""

    async def terminate(self, reason: Any) -> None:
        """Runs when the process exits, unless it was killed."""

    @property
    def pid(self) -> Pid:
        """This process's pid."""
        return self._pid

    @property
    def node(self) -> Node:
        """The node this process runs on."""
        return self._node

    def stop(self, reason: Any = "normal") -> None:
        """Exit with ``reason`` once the current message is handled."""
        self._exit = reason

    def set_trap_exits(self, flag: bool) -> None:
        """Turn exit signals into :class:`ember.Exit` messages (Erlang's ``trap_exit``)."""
        self._trap = flag

    def set_receive_timeout(self, seconds: float | None) -> None:
        """Deliver :data:`ember.RECEIVE_TIMEOUT` after ``seconds`` without a message (None:
        never). Takes effect the next time the process waits for a message."""
        self._rtimeout = seconds

    def defer_reply(self) -> ReplyHandle:
        """Answer the call being handled later, from anywhere, with the returned handle.

        ``receive``'s return value is then ignored for this call.
        """
        call = self._call
        if call is None:
            raise UsageError("defer_reply() is only valid while receive handles a call")
        self._call = None
        if hasattr(call, "down"):  # a queued call: the caller must hear if this process exits
            if self._monitors is None:
                self._monitors = {}
            self._monitors[call] = call
        return ReplyHandle(call)

    def send_after(self, delay: float, msg: Any) -> Any:
        """Send ``msg`` to this process after ``delay`` seconds; returns a timer for
        ``cancel_timer``."""
        return self._node.send_after(delay, self._pid, msg)

    # -- runtime side -------------------------------------------------------------------------

    def _deliver(self, msg: Any) -> None:
        mbox = self._mbox
        if mbox is None:
            if self._state >= EXITING:
                self._node._stats.dropped_dead += 1
                return
            mbox = self._mbox = deque()
        else:
            if len(mbox) >= self._mbox_check and over_check(self, msg):
                return
            if self._state >= EXITING:
                self._node._stats.dropped_dead += 1
                return
        mbox.append(msg)
        if self._state == IDLE:
            self._state = QUEUED
            node = self._node
            node._runq.append(self)
            if not node._kicked:
                node._kick()

    def _deliver_signal(self, msg: Any) -> None:
        """Deliver a message from the runtime itself (``Exit``, ``Down``, ``RECEIVE_TIMEOUT``):
        no sender could be told ``MailboxFull``, so a bounded mailbox takes it anyway."""
        if self._state >= EXITING:
            self._node._stats.dropped_dead += 1
            return
        mbox = self._mbox
        if mbox is None:
            mbox = self._mbox = deque()
        mbox.append(msg)
        if self._state == IDLE:
            self._node._schedule(self)

    def _overflow(self, msg: Any) -> None:
        stats = self._node._stats
        if self.mailbox_policy == "drop_newest":
            stats.mailbox_dropped += 1
            return
        stats.mailbox_rejected += 1
        raise MailboxFull(self._pid)


_SUSPENDING_OPS = frozenset(
    {"GET_AWAITABLE", "SEND", "YIELD_VALUE", "BEFORE_ASYNC_WITH", "GET_AITER", "GET_ANEXT"}
)


def can_suspend(fn: Any) -> bool:
    """Whether coroutine function ``fn`` can ever suspend: whether its own code has an
    ``await``, ``async with`` or ``async for``. One that cannot is as good as a plain function,
    and a call to an idle process may run it at once, in the caller."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return True
    return any(ins.opname in _SUSPENDING_OPS for ins in dis.get_instructions(code))


class ReplyHandle:
    """Answers one call later: ``reply(value)`` or ``fail(exception)``; only the first counts."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def reply(self, value: Any) -> None:
        """Send ``value`` as the call's result."""
        self._call.reply(value)

    def fail(self, exc: BaseException) -> None:
        """Make the caller's ``call`` raise ``exc``."""
        self._call.fail(exc)
