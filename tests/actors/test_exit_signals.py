"""Exit signals and links, one test per rule of OTP's semantics.

The rules are those of the Erlang Reference Manual, chapter "Processes" (sections "Links",
"Sending Exit Signals", "Receiving Exit Signals"), and of the ``erlang:exit/2``,
``erlang:link/1`` and ``erlang:unlink/1`` reference pages; docs/actors.md restates them in
Ember's terms (rules 1-8). Each test names the rule it checks in its docstring.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actorkit import Blocker, Boom, Do, Idle, Puppet, flush, inside, puppet, raising

import ember
from ember import Exit, NoProc


async def link(node: ember.Node, a: ember.Pid, b: ember.Pid) -> None:
    """Link ``a`` to ``b``, from inside ``a``."""
    await inside(node, a, lambda _: ember.link(b))


# -- 1. an exiting process signals its links --------------------------------------------------


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "detail"), "custom"])
async def test_rule_exit_reason_is_sent_to_every_link(reason: Any) -> None:
    """Rule 1 (Processes, "Sending Exit Signals"): a process that terminates emits its exit
    reason in an exit signal to every linked process."""
    async with ember.Node("a") as node:
        watchers = [await puppet(node, trap=True) for _ in range(3)]
        dying, _ = await puppet(node)
        for w, _inbox in watchers:
            await link(node, dying, w)
        await inside(node, dying, lambda me: me.stop(reason))
        for _w, inbox in watchers:
            assert await inbox.get() == Exit(dying, reason)


async def test_rule_a_crash_sends_the_exception_to_links() -> None:
    """The exit reason of a crash is the exception itself, and that is what links get."""
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node, trap=True)
        dying, _ = await puppet(node)
        await link(node, dying, watcher)
        boom = Boom()
        node.send(dying, raising(boom))
        msg = await inbox.get()
        assert msg.pid == dying and msg.reason is boom


# -- 2. non-trapping receivers die of abnormal reasons ------------------------------------------


@pytest.mark.parametrize("reason", ["shutdown", "custom", ("shutdown", 1)])
async def test_rule_non_trapping_receiver_exits_with_the_same_reason(reason: Any) -> None:
    """Rule 2 (Processes, "Receiving Exit Signals"): a process that does not trap exits and
    receives an exit signal with a reason other than normal terminates with that same reason
    (and in turn signals its own links)."""
    async with ember.Node("a") as node:
        a, _ = await puppet(node)
        b, _ = await puppet(node)
        await link(node, a, b)
        a_exit, b_exit = node.wait_exit(a), node.wait_exit(b)
        node.exit(a, reason)
        assert await a_exit == reason
        assert await b_exit == reason


async def test_rule_non_trapping_receiver_of_a_crash_exits_with_the_exception() -> None:
    async with ember.Node("a") as node:
        a, _ = await puppet(node)
        b, _ = await puppet(node)
        await link(node, a, b)
        b_exit = node.wait_exit(b)
        boom = Boom()
        node.send(a, raising(boom))
        assert await b_exit is boom


# -- 3. normal is ignored unless trapping -----------------------------------------------------


async def test_rule_normal_exit_of_a_link_is_ignored_by_a_non_trapping_process() -> None:
    """Rule 3 (Processes, "Receiving Exit Signals"): an exit signal with reason normal is
    ignored by a process that does not trap exits."""
    async with ember.Node("a") as node:
        a, _ = await puppet(node)
        b, _ = await puppet(node)
        await link(node, a, b)
        a_exit = node.wait_exit(a)
        await inside(node, a, lambda me: me.stop("normal"))
        assert await a_exit == "normal"
        await flush(node, b)
        info = node.process_info(b)
        assert info is not None and info.links == ()


async def test_rule_exit_normal_to_another_non_trapping_process_is_ignored() -> None:
    """Rule 3 (erlang:exit/2): if Reason is normal, Pid does not exit -- unless Pid is the
    calling process."""
    async with ember.Node("a") as node:
        sender, _ = await puppet(node)
        target, _ = await puppet(node)
        await inside(node, sender, lambda _: ember.exit(target, "normal"))
        node.exit(target, "normal")  # from outside any process, too
        await flush(node, target)
        assert node.process_info(target) is not None


async def test_rule_exit_self_normal_terminates_the_caller_with_normal() -> None:
    """Rule 3 (erlang:exit/2): exit(self(), normal) terminates the caller with reason
    normal."""
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        exited = node.wait_exit(pid)
        after: list[str] = []

        def exit_self(me: Puppet) -> None:
            ember.exit(me.pid, "normal")
            after.append("exit returned")  # it must not

        node.send(pid, Do(exit_self))
        assert await exited == "normal"
        assert after == []


# -- 4. trapping turns signals into messages --------------------------------------------------


@pytest.mark.parametrize("reason", ["normal", "shutdown", "custom", "killed"])
async def test_rule_trapping_turns_link_signals_into_exit_messages(reason: Any) -> None:
    """Rule 4 (Processes, "Receiving Exit Signals"): a process trapping exits does not
    terminate on an exit signal; the signal becomes a message {'EXIT', FromPid, Reason} --
    for reason normal too."""
    async with ember.Node("a") as node:
        trapper, inbox = await puppet(node, trap=True)
        other, _ = await puppet(node)
        await link(node, other, trapper)
        await inside(node, other, lambda me: me.stop(reason))
        assert await inbox.get() == Exit(other, reason)
        assert node.process_info(trapper) is not None


@pytest.mark.parametrize("reason", ["normal", "shutdown", "custom"])
async def test_rule_trapping_turns_exit_calls_into_exit_messages(reason: Any) -> None:
    """Rule 4 (erlang:exit/2): to a process trapping exits, the signal of exit(Pid, Reason)
    becomes a message {'EXIT', From, Reason}; From is the sender, None from outside any
    process."""
    async with ember.Node("a") as node:
        trapper, inbox = await puppet(node, trap=True)
        sender, _ = await puppet(node)
        await inside(node, sender, lambda _: ember.exit(trapper, reason))
        assert await inbox.get() == Exit(sender, reason)
        node.exit(trapper, reason)
        assert await inbox.get() == Exit(None, reason)
        assert node.process_info(trapper) is not None


async def test_rule_trapping_can_be_switched_on_and_off() -> None:
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node)
        await inside(node, pid, lambda _: ember.trap_exits(True))
        assert node.process_info(pid).trap_exits  # type: ignore[union-attr]
        node.exit(pid, "custom")
        assert await inbox.get() == Exit(None, "custom")
        await inside(node, pid, lambda me: me.set_trap_exits(False))
        exited = node.wait_exit(pid)
        node.exit(pid, "custom")
        assert await exited == "custom"


async def test_rule_exit_self_when_trapping_is_a_message() -> None:
    """Rule 4: exit(self(), Reason) in a trapping process gives it {'EXIT', self(), Reason}."""
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node, trap=True)
        await inside(node, pid, lambda me: ember.exit(me.pid, "custom"))
        assert await inbox.get() == Exit(pid, "custom")
        await inside(node, pid, lambda me: ember.exit(me.pid, "normal"))
        assert await inbox.get() == Exit(pid, "normal")
        assert node.process_info(pid) is not None


# -- 5. kill --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trap", [False, True])
async def test_rule_kill_is_untrappable_and_the_target_dies_killed(trap: bool) -> None:
    """Rule 5 (erlang:exit/2): exit(Pid, kill) sends an untrappable exit signal; Pid
    unconditionally exits with reason killed."""
    async with ember.Node("a") as node:
        target, inbox = await puppet(node, trap=trap)
        exited = node.wait_exit(target)
        node.exit(target, "kill")
        assert await exited == "killed"
        assert inbox.received == []


async def test_rule_killed_target_signals_killed_to_its_links() -> None:
    """Rule 5: the killed process's links get its exit reason, killed -- a trapping link as a
    message, a non-trapping link by exiting with killed."""
    async with ember.Node("a") as node:
        target, _ = await puppet(node)
        trapper, inbox = await puppet(node, trap=True)
        plain, _ = await puppet(node)
        await link(node, target, trapper)
        await link(node, target, plain)
        plain_exit = node.wait_exit(plain)
        node.exit(target, "kill")
        assert await inbox.get() == Exit(target, "killed")
        assert await plain_exit == "killed"


async def test_rule_kill_from_self_is_untrappable() -> None:
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node, trap=True)
        exited = node.wait_exit(pid)
        node.send(pid, Do(lambda me: ember.exit(me.pid, "kill")))
        assert await exited == "killed"
        assert inbox.received == []


async def test_rule_kill_reason_through_a_link_is_trappable() -> None:
    """Rule 5: a process that *exits* with reason kill sends kill to its links as an
    ordinary exit signal (only exit/2's kill is untrappable): a trapping link gets
    {'EXIT', Pid, kill}."""
    async with ember.Node("a") as node:
        dying, _ = await puppet(node)
        trapper, inbox = await puppet(node, trap=True)
        await link(node, dying, trapper)
        await inside(node, dying, lambda me: me.stop("kill"))
        assert await inbox.get() == Exit(dying, "kill")
        assert node.process_info(trapper) is not None


async def test_rule_kill_reason_through_a_link_kills_a_non_trapping_process_with_kill() -> None:
    """Rule 5, continued: a non-trapping link exits with that same reason, kill -- not
    killed (rule 2 applies, as for any other reason)."""
    async with ember.Node("a") as node:
        dying, _ = await puppet(node)
        plain, _ = await puppet(node)
        further, inbox = await puppet(node, trap=True)
        await link(node, dying, plain)
        await link(node, plain, further)
        plain_exit = node.wait_exit(plain)
        await inside(node, dying, lambda me: me.stop("kill"))
        assert await plain_exit == "kill"
        assert await inbox.get() == Exit(plain, "kill")


# -- 6. links to missing processes ----------------------------------------------------------------


async def test_rule_link_to_a_dead_pid_raises_noproc_in_a_non_trapping_caller() -> None:
    """Rule 6 (erlang:link/1): linking to a process that does not exist fails with noproc in
    a caller that does not trap exits (Ember raises NoProc)."""
    async with ember.Node("a") as node:
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        caller, _ = await puppet(node)

        def try_link(_: Puppet) -> Any:
            try:
                ember.link(dead)
            except NoProc as exc:
                return exc
            return None

        exc = await inside(node, caller, try_link)
        assert isinstance(exc, NoProc) and exc.pid == dead and exc.reason == "noproc"
        assert node.process_info(caller).links == ()  # type: ignore[union-attr]


async def test_rule_link_to_a_dead_pid_gives_a_trapping_caller_an_exit_noproc() -> None:
    """Rule 6 (erlang:link/1): a caller trapping exits gets an exit signal with reason noproc
    instead, which arrives as {'EXIT', Pid, noproc}."""
    async with ember.Node("a") as node:
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        caller, inbox = await puppet(node, trap=True)
        await link(node, caller, dead)
        assert await inbox.get() == Exit(dead, "noproc")
        assert node.process_info(caller).links == ()  # type: ignore[union-attr]


# -- link bookkeeping -----------------------------------------------------------------------------


async def test_rule_unlink_prevents_the_signal() -> None:
    """erlang:unlink/1: removes the link between the caller and Pid; no exit signal travels
    over it afterwards, whichever end exits."""
    async with ember.Node("a") as node:
        a, a_inbox = await puppet(node, trap=True)
        b, _ = await puppet(node)
        c, _ = await puppet(node)
        await link(node, a, b)
        await link(node, a, c)
        await inside(node, a, lambda _: ember.unlink(b))
        await inside(node, c, lambda _: ember.unlink(a))  # from the other end
        b_exit, c_exit = node.wait_exit(b), node.wait_exit(c)
        node.exit(b, "custom")
        node.exit(c, "custom")
        assert (await b_exit, await c_exit) == ("custom", "custom")
        await flush(node, a)
        assert a_inbox.received == []
        assert node.process_info(a).links == ()  # type: ignore[union-attr]


async def test_rule_unlink_of_a_process_that_is_not_linked_is_harmless() -> None:
    async with ember.Node("a") as node:
        a, _ = await puppet(node)
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        await inside(node, a, lambda _: ember.unlink(dead))
        await inside(node, a, lambda me: ember.unlink(me.pid))
        assert node.process_info(a) is not None


async def test_rule_links_are_bidirectional() -> None:
    """Processes, "Links": links are bidirectional -- the signal travels whichever end exits,
    whoever made the link."""
    async with ember.Node("a") as node:
        a, a_inbox = await puppet(node, trap=True)
        b, b_inbox = await puppet(node, trap=True)
        await link(node, a, b)
        assert node.process_info(a).links == (b,)  # type: ignore[union-attr]
        assert node.process_info(b).links == (a,)  # type: ignore[union-attr]
        x, _ = await puppet(node)
        await link(node, x, a)  # linked from the other side
        node.exit(x, "custom")
        assert await a_inbox.get() == Exit(x, "custom")
        await inside(node, b, lambda me: me.stop("custom"))
        assert await a_inbox.get() == Exit(b, "custom")
        assert b_inbox.received == []


async def test_rule_links_are_set_like() -> None:
    """erlang:link/1: there is at most one link between two processes; linking again does
    nothing (so one exit sends one signal)."""
    async with ember.Node("a") as node:
        a, a_inbox = await puppet(node, trap=True)
        b, _ = await puppet(node)
        for _ in range(3):
            await link(node, a, b)
            await link(node, b, a)
        assert node.process_info(a).links == (b,)  # type: ignore[union-attr]
        node.exit(b, "custom")
        assert await a_inbox.get() == Exit(b, "custom")
        await flush(node, a)
        assert a_inbox.pending() == []  # one link, one signal


async def test_rule_one_unlink_removes_a_link_made_twice() -> None:
    async with ember.Node("a") as node:
        a, a_inbox = await puppet(node, trap=True)
        b, _ = await puppet(node)
        await link(node, a, b)
        await link(node, a, b)
        await inside(node, a, lambda _: ember.unlink(b))
        assert node.process_info(b).links == ()  # type: ignore[union-attr]
        node.exit(b, "custom")
        await flush(node, a)
        assert a_inbox.received == []


async def test_rule_link_to_self_is_a_no_op() -> None:
    async with ember.Node("a") as node:
        a, _ = await puppet(node)
        await inside(node, a, lambda me: ember.link(me.pid))
        assert node.process_info(a).links == ()  # type: ignore[union-attr]


async def test_spawn_link_links_before_the_child_runs() -> None:
    """spawn_link is atomic: a child that dies in its first message still takes its parent."""
    async with ember.Node("a") as node:
        parent, inbox = await puppet(node, trap=True)
        boom = Boom()
        child = await inside(node, parent, lambda _: ember.spawn_link(_Crasher, boom))
        msg = await inbox.get()
        assert msg.pid == child and msg.reason is boom


class _Crasher(ember.Actor):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def started(self) -> None:
        ember.send(self.pid, "go")

    async def receive(self, msg: Any) -> Any:
        raise self.exc


class _FailsToStart(ember.Actor):
    """Links to ``other`` in its started hook, then fails."""

    def __init__(self, other: ember.Pid, exc: BaseException) -> None:
        self.other = other
        self.exc = exc

    async def started(self) -> None:
        ember.link(self.other)
        raise self.exc


async def test_spawn_link_start_failure_reaches_the_spawner_as_start_error_only() -> None:
    """The spawner of a child whose started hook fails learns it from StartError, not also
    from an exit signal (it is unlinked first, as with OTP's proc_lib:init_fail); the links
    the child made itself still get its exit signal."""
    async with ember.Node("a") as node:
        spawner, spawner_inbox = await puppet(node)  # not trapping: a signal would kill it
        other, other_inbox = await puppet(node, trap=True)
        boom = Boom()

        async def spawn_it(_: Puppet) -> Any:
            try:
                await ember.spawn_link(_FailsToStart, other, boom)
            except ember.StartError as exc:
                return exc
            return None

        err = await inside(node, spawner, spawn_it)
        assert isinstance(err, ember.StartError) and err.reason is boom
        msg = await other_inbox.get()
        assert isinstance(msg, Exit) and msg.reason is boom
        await flush(node, spawner)
        assert spawner_inbox.received == []
        info = node.process_info(spawner)
        assert info is not None and info.links == ()


# -- propagation at scale and timing --------------------------------------------------------------


class ChainLink(ember.Actor):
    """Links itself to ``prev`` when it starts."""

    def __init__(self, prev: ember.Pid | None) -> None:
        self.prev = prev

    def started(self) -> None:  # type: ignore[override]
        if self.prev is not None:
            ember.link(self.prev)


class ChainLinkWithTerminate(ChainLink):
    def __init__(self, prev: ember.Pid | None, reasons: list[Any]) -> None:
        super().__init__(prev)
        self.reasons = reasons

    async def terminate(self, reason: Any) -> None:
        self.reasons.append(reason)


async def _chain(node: ember.Node, n: int, cls: type[ChainLink], *args: Any) -> list[ember.Pid]:
    prev = await node.spawn(Idle)
    pids = [prev]
    for _ in range(n - 1):
        prev = await node.spawn(cls, prev, *args)
        pids.append(prev)
    return pids


async def test_cascade_through_10_000_linked_processes() -> None:
    """Rules 1 and 2 at scale: an exit propagates through a long chain of links without
    recursion."""
    async with ember.Node("a") as node:
        pids = await _chain(node, 10_000, ChainLink)
        last = node.wait_exit(pids[-1])
        node.exit(pids[0], "cascade")
        assert await last == "cascade"
        assert not set(pids) & set(node.processes())


async def test_cascade_through_10_000_linked_processes_with_terminate_hooks() -> None:
    async with ember.Node("a") as node:
        reasons: list[Any] = []
        pids = await _chain(node, 10_000, ChainLinkWithTerminate, reasons)
        last = node.wait_exit(pids[-1])
        node.exit(pids[0], "cascade")
        assert await last == "cascade"
        assert reasons == ["cascade"] * 9_999
        assert not set(pids) & set(node.processes())


async def test_exit_signal_ends_a_process_suspended_in_receive_promptly() -> None:
    """Rule 8: an exit signal to a process that is awaiting inside receive cancels that await:
    the process ends at once (no virtual time passes) with the signal's reason, and its
    terminate hook still runs."""
    async with ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[None] = loop.create_future()
        terminated: list[Any] = []
        pid = await node.spawn(Blocker, entered, terminated)
        node.send(pid, "block forever")
        await entered
        assert node.process_info(pid).status == "running"  # type: ignore[union-attr]
        start = loop.time()
        exited = node.wait_exit(pid)
        node.exit(pid, "wake up")
        assert await exited == "wake up"
        assert loop.time() == start
        assert terminated == ["wake up"]


async def test_kill_ends_a_process_suspended_in_receive_without_terminate() -> None:
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        terminated: list[Any] = []
        pid = await node.spawn(Blocker, entered, terminated)
        node.send(pid, "block forever")
        await entered
        exited = node.wait_exit(pid)
        node.exit(pid, "kill")
        assert await exited == "killed"
        assert terminated == []


class SlowTerminate(ember.Actor):
    def __init__(self, entered: asyncio.Future[None], cancelled: list[bool]) -> None:
        self.entered = entered
        self.cancelled = cancelled

    async def terminate(self, reason: Any) -> None:
        self.entered.set_result(None)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.append(True)
            raise


async def test_kill_during_a_slow_async_terminate_ends_it_with_killed() -> None:
    async with ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[None] = loop.create_future()
        cancelled: list[bool] = []
        pid = await node.spawn(SlowTerminate, entered, cancelled)
        exited = node.wait_exit(pid)
        node.exit(pid, "shutdown")
        await entered
        start = loop.time()
        node.exit(pid, "other")  # ignored: the process is already exiting
        assert node.process_info(pid).status == "exiting"  # type: ignore[union-attr]
        node.exit(pid, "kill")
        assert await exited == "killed"
        assert loop.time() == start
        assert cancelled == [True]


async def test_first_exit_reason_wins_but_kill_overrides_it() -> None:
    """Once a process is exiting, further exit signals do not change its reason -- except
    kill, which cuts its terminate hook short."""
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pid = await node.spawn(SlowTerminate, entered, [])
        watcher, inbox = await puppet(node)
        ref = await inside(node, watcher, lambda _: ember.monitor(pid))
        node.exit(pid, "first")
        await entered
        node.exit(pid, "second")
        await flush(node, watcher)
        assert inbox.received == []
        node.exit(pid, "kill")
        assert await inbox.get() == ember.Down(ref, pid, "killed")


async def test_first_of_two_signals_to_a_process_suspended_in_receive_wins() -> None:
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        terminated: list[Any] = []
        pid = await node.spawn(Blocker, entered, terminated)
        node.send(pid, "block")
        await entered
        exited = node.wait_exit(pid)
        node.exit(pid, "first")
        node.exit(pid, "second")  # before the process had a chance to run
        assert await exited == "first"
        assert terminated == ["first"]


async def test_exit_self_from_a_task_the_process_started_ends_the_process() -> None:
    """A task started inside receive shares the process's identity but not its stack: its
    exit(self, reason) is an ordinary exit signal that ends the process (it must not escape
    into the event loop as the kernel's internal unwinding exception)."""
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        exited = node.wait_exit(pid)
        helpers: list[asyncio.Future[None]] = []

        def start_helper(_: Puppet) -> None:
            async def helper() -> None:
                ember.exit(ember.self(), "from helper")

            helpers.append(asyncio.ensure_future(helper()))

        await inside(node, pid, start_helper)
        assert await exited == "from helper"
        await helpers[0]  # finished normally: exit() returned in the helper
