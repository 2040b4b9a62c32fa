"""Spawning, send/cast/call, deferred replies, bounded mailboxes and the started/terminate hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actorkit import Blocker, Boom, Crasher, Do, Idle, Inbox, Puppet, flush, inside, puppet

import ember
from ember import (
    CallTimeout,
    EmberError,
    Exit,
    MailboxFull,
    NameTaken,
    NoProc,
    StartError,
    UsageError,
)

# -- spawning -------------------------------------------------------------------------------------


class Greeter(ember.Actor):
    def __init__(self, greeting: str, *, punctuation: str = "!") -> None:
        self.greeting = greeting
        self.punctuation = punctuation

    async def receive(self, msg: Any) -> Any:
        return f"{self.greeting}, {msg}{self.punctuation}"


async def test_spawn_passes_arguments_and_returns_a_live_pid() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Greeter, "hello", punctuation="?")
        assert pid.node == "a"
        assert pid in node.processes()
        assert await node.call(pid, "bob") == "hello, bob?"


async def test_spawn_nowait_returns_before_started_runs() -> None:
    log: list[Any] = []

    class Slow(ember.Actor):
        async def started(self) -> None:
            log.append("started")

        async def receive(self, msg: Any) -> Any:
            log.append(msg)
            return msg

    async with ember.Node("a") as node:
        pid = node.spawn_nowait(Slow)
        assert log == []  # started has not run yet
        node.send(pid, 1)
        assert await node.call(pid, 2) == 2
        assert log == ["started", 1, 2]


async def test_spawn_with_a_name_registers_it() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle, name="idle")
        assert node.whereis("idle") == pid
        assert node.process_info(pid).name == "idle"  # type: ignore[union-attr]
        other = node.spawn_nowait(Idle, name="other")
        assert node.whereis("other") == other


async def test_spawn_with_a_taken_name_fails_and_leaves_no_process() -> None:
    async with ember.Node("a") as node:
        owner = await node.spawn(Idle, name="x")
        before = node.processes()
        spawned = node.statistics().counters["spawned"]
        with pytest.raises(NameTaken) as info:
            await node.spawn(Idle, name="x")
        assert info.value.owner == owner
        with pytest.raises(NameTaken):
            node.spawn_nowait(Idle, name="x")
        assert node.processes() == before
        assert node.statistics().counters["spawned"] == spawned
        assert node.whereis("x") == owner


class FailsInInit(ember.Actor):
    def __init__(self) -> None:
        raise Boom("in __init__")


async def test_an_exception_in_init_propagates_from_spawn_and_leaves_no_process() -> None:
    async with ember.Node("a") as node:
        before = node.processes()
        with pytest.raises(Boom):
            await node.spawn(FailsInInit, name="x")
        with pytest.raises(Boom):
            node.spawn_nowait(FailsInInit)
        assert node.processes() == before
        assert node.whereis("x") is None


async def test_spawn_needs_an_actor_class() -> None:
    async with ember.Node("a") as node:
        with pytest.raises(UsageError):
            await node.spawn(object)  # type: ignore[arg-type]


# -- send -----------------------------------------------------------------------------------------


class Producer(ember.Actor):
    """On ``(dest, tag, count)`` sends ``(tag, 0) ... (tag, count - 1)`` to ``dest``, yielding to
    the event loop now and then so that concurrent producers interleave."""

    async def receive(self, msg: Any) -> Any:
        dest, tag, count = msg
        for i in range(count):
            ember.send(dest, (tag, i))
            if i % 100 == 99:
                await asyncio.sleep(0)


async def test_messages_from_one_sender_arrive_in_send_order() -> None:
    async with ember.Node("a") as node:
        sink, inbox = await puppet(node)
        producer = await node.spawn(Producer)
        await node.call(producer, (sink, "p", 10_000))
        await flush(node, sink)
        assert inbox.received == [("p", i) for i in range(10_000)]


async def test_order_is_kept_per_sender_when_senders_interleave() -> None:
    async with ember.Node("a") as node:
        sink, inbox = await puppet(node)
        producers = [await node.spawn(Producer) for _ in range(3)]
        await asyncio.gather(*(node.call(p, (sink, k, 3_000)) for k, p in enumerate(producers)))
        await flush(node, sink)
        assert len(inbox.received) == 9_000
        for k in range(3):
            assert [i for tag, i in inbox.received if tag == k] == list(range(3_000))
        # The senders really did interleave, or this test would prove nothing.
        assert [tag for tag, _ in inbox.received[:3_000]] != [0] * 3_000


async def test_send_from_outside_any_process_keeps_order() -> None:
    async with ember.Node("a") as node:
        sink, inbox = await puppet(node)
        for i in range(1_000):
            ember.send(sink, i)
        await flush(node, sink)
        assert inbox.received == list(range(1_000))


async def test_send_to_a_dead_pid_is_dropped_and_counted() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        exited = node.wait_exit(pid)
        node.exit(pid, "kill")
        assert await exited == "killed"
        before = node.statistics().counters["dropped_dead"]
        ember.send(pid, "hello")
        node.send(pid, "hello")
        node.send(ember.Pid("a", pid.serial, pid.creation), "hello")  # an equal pid, not the same
        assert node.statistics().counters["dropped_dead"] == before + 3


async def test_send_to_an_unknown_name_raises_unknown_name() -> None:
    async with ember.Node("a") as node:
        with pytest.raises(ember.UnknownName) as info:
            ember.send("nobody", "hello")
        assert info.value.name == "nobody"
        with pytest.raises(ember.UnknownName):
            node.send("nobody", "hello")


async def test_cast_never_raises() -> None:
    class Tiny(Blocker):
        mailbox_size = 1

    async with ember.Node("a") as node:
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        await node.wait_exit(dead)
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        full = await node.spawn(Tiny, entered)
        node.send(full, "block")
        await entered
        node.send(full, "fills the mailbox")
        before = node.statistics().counters
        ember.cast("nobody", "x")
        ember.cast(dead, "x")
        ember.cast(full, "x")
        node.cast("nobody", "x")
        after = node.statistics().counters
        assert after["dropped_dead"] == before["dropped_dead"] + 3
        assert after["mailbox_rejected"] == before["mailbox_rejected"] + 1
        node.exit(full, "kill")


# -- call -----------------------------------------------------------------------------------------


class AsyncEcho(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, BaseException):
            raise msg
        await asyncio.sleep(0)
        return ("echo", msg)


class SyncEcho(ember.Actor):
    def receive(self, msg: Any) -> Any:
        if isinstance(msg, BaseException):
            raise msg
        return ("echo", msg)


ECHOES = [AsyncEcho, SyncEcho]


@pytest.mark.parametrize("echo", ECHOES)
async def test_call_returns_what_receive_returns(echo: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(echo, name="echo")
        assert await node.call(pid, 1) == ("echo", 1)
        assert await ember.call(pid, 2) == ("echo", 2)
        assert await ember.call("echo", 3) == ("echo", 3)
        # Many calls in a row: the plain-def ones alternate between the eager path and the
        # scheduler, which must give the same answers.
        assert [await ember.call(pid, i) for i in range(200)] == [("echo", i) for i in range(200)]


@pytest.mark.parametrize("echo", ECHOES)
async def test_call_from_inside_a_process(echo: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(echo)
        caller, _ = await puppet(node)
        assert await inside(node, caller, lambda _: ember.call(pid, "x")) == ("echo", "x")


async def test_call_returns_none_when_receive_returns_nothing() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        assert await node.call(pid, "anything") is None


async def test_call_to_a_dead_pid_raises_noproc() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        node.exit(pid, "kill")
        await node.wait_exit(pid)
        with pytest.raises(NoProc) as info:
            await node.call(pid, "x")
        assert info.value.reason == "noproc" and info.value.pid == pid
        with pytest.raises(NoProc):
            await ember.call(ember.Pid("a", pid.serial, pid.creation), "x")
        with pytest.raises(NoProc):
            await ember.call("nobody", "x")


@pytest.mark.parametrize("echo", ECHOES)
async def test_callee_crash_during_call_raises_noproc_with_the_exception(
    echo: type[ember.Actor],
) -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(echo)
        exited = node.wait_exit(pid)
        boom = Boom("crash")
        with pytest.raises(NoProc) as info:
            await node.call(pid, boom)
        assert info.value.reason is boom
        assert await exited is boom


async def test_callee_exiting_with_calls_queued_fails_them_all() -> None:
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pid = await node.spawn(Blocker, entered)
        first = asyncio.ensure_future(node.call(pid, "blocks"))
        await entered
        queued = [asyncio.ensure_future(node.call(pid, i)) for i in range(3)]
        await asyncio.sleep(0)
        node.exit(pid, "stopped")
        for fut in [first, *queued]:
            with pytest.raises(NoProc) as info:
                await fut
            assert info.value.reason == "stopped"


async def test_call_timeout_raises_call_timeout() -> None:
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pid = await node.spawn(Blocker, entered)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(CallTimeout) as info:
            await node.call(pid, "x", timeout=2.0)
        assert loop.time() - start >= 2.0
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, EmberError)
        with pytest.raises(TimeoutError):
            await ember.call(pid, "y", timeout=0.5)
        node.exit(pid, "kill")


class Gate(ember.Actor):
    """Answers ``("wait", fut)`` with ``("waited", result)`` once ``fut`` resolves; answers any
    other message at once."""

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, tuple) and msg[0] == "wait":
            return ("waited", await msg[1])
        return ("now", msg)


async def test_a_late_reply_after_timeout_is_ignored() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Gate)
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        with pytest.raises(CallTimeout):
            await node.call(pid, ("wait", gate), timeout=1.0)
        gate.set_result("late")  # receive now returns its answer to a caller that left
        assert await node.call(pid, "next") == ("now", "next")
        assert node.process_info(pid).status == "idle"  # type: ignore[union-attr]


async def test_call_without_timeout_waits_for_the_reply() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Gate)
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(600, gate.set_result, "much later")
        assert await node.call(pid, ("wait", gate), timeout=None) == ("waited", "much later")


async def test_calling_itself_raises_usage_error() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)

        async def call_myself(me: Puppet) -> Any:
            try:
                return await ember.call(me.pid, "x")
            except UsageError as exc:
                return exc

        assert isinstance(await inside(node, pid, call_myself), UsageError)


class Helper(ember.Actor):
    """Its receive starts a helper task (which inherits the process's context) that calls
    the process back: not a self-call, since the process is free to answer."""

    async def receive(self, msg: Any) -> Any:
        if msg == "spawn helper":
            pid = self.pid

            async def ping() -> Any:
                return await ember.call(pid, "ping")

            return asyncio.ensure_future(ping())
        return "pong"


async def test_a_task_started_by_a_process_may_call_that_process() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Helper)
        task = await node.call(pid, "spawn helper")
        assert await task == "pong"


# -- deferred replies -----------------------------------------------------------------------------


class Deferring(ember.Actor):
    """Defers every call; the test answers through the handle it is given."""

    def __init__(self, handles: asyncio.Queue[ember.ReplyHandle]) -> None:
        self.handles = handles

    async def receive(self, msg: Any) -> Any:
        self.handles.put_nowait(self.defer_reply())
        return "ignored: the reply was deferred"


class SyncDeferring(ember.Actor):
    def __init__(self, handles: asyncio.Queue[ember.ReplyHandle]) -> None:
        self.handles = handles

    def receive(self, msg: Any) -> Any:
        self.handles.put_nowait(self.defer_reply())
        return "ignored: the reply was deferred"


DEFERRING = [Deferring, SyncDeferring]


@pytest.mark.parametrize("cls", DEFERRING)
async def test_defer_reply_answers_later_from_another_task(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        handles: asyncio.Queue[ember.ReplyHandle] = asyncio.Queue()
        pid = await node.spawn(cls, handles)
        call = asyncio.ensure_future(node.call(pid, "q"))
        handle = await handles.get()

        async def answer() -> None:
            await asyncio.sleep(1)
            handle.reply(42)

        answering = asyncio.ensure_future(answer())
        assert await call == 42
        await answering
        handle.reply(43)  # only the first answer counts
        handle.fail(Boom())


@pytest.mark.parametrize("cls", DEFERRING)
async def test_defer_reply_fail_raises_in_the_caller(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        handles: asyncio.Queue[ember.ReplyHandle] = asyncio.Queue()
        pid = await node.spawn(cls, handles)
        call = asyncio.ensure_future(node.call(pid, "q"))
        boom = Boom()
        (await handles.get()).fail(boom)
        with pytest.raises(Boom) as info:
            await call
        assert info.value is boom
        assert node.process_info(pid) is not None


@pytest.mark.parametrize("cls", DEFERRING)
async def test_process_exiting_before_a_deferred_reply_raises_noproc(
    cls: type[ember.Actor],
) -> None:
    async with ember.Node("a") as node:
        handles: asyncio.Queue[ember.ReplyHandle] = asyncio.Queue()
        pid = await node.spawn(cls, handles)
        call = asyncio.ensure_future(node.call(pid, "q"))
        handle = await handles.get()
        node.exit(pid, "gone")
        with pytest.raises(NoProc) as info:
            await call
        assert info.value.reason == "gone"
        handle.reply("too late")  # harmless


@pytest.mark.parametrize("cls", DEFERRING)
async def test_deferred_call_still_times_out(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        handles: asyncio.Queue[ember.ReplyHandle] = asyncio.Queue()
        pid = await node.spawn(cls, handles)
        with pytest.raises(CallTimeout):
            await node.call(pid, "q", timeout=1.0)
        (await handles.get()).reply("late")  # ignored
        assert node.process_info(pid).monitored_by == 0  # type: ignore[union-attr]


async def test_defer_reply_outside_a_call_is_a_usage_error() -> None:
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node)

        def defer_in_a_cast(me: Puppet) -> None:
            try:
                me.defer_reply()
            except UsageError as exc:
                me.inbox.put(exc)

        node.send(pid, Do(defer_in_a_cast))  # a cast, not a call
        assert isinstance(await inbox.get(), UsageError)


# -- bounded mailboxes ----------------------------------------------------------------------------


class Bounded(ember.Actor):
    """Blocks on its first message until ``gate`` resolves, then records the others."""

    mailbox_size = 2

    def __init__(self, entered: asyncio.Future[None], gate: asyncio.Future[None]) -> None:
        self.entered = entered
        self.gate = gate
        self.got: asyncio.Queue[Any] = asyncio.Queue()

    async def receive(self, msg: Any) -> Any:
        if not self.entered.done():
            self.entered.set_result(None)
            await self.gate
        else:
            self.got.put_nowait(msg)


class BoundedDrop(Bounded):
    mailbox_policy = "drop_newest"


async def _blocked(
    node: ember.Node, cls: type[Bounded]
) -> tuple[ember.Pid, asyncio.Future[None], asyncio.Queue[Any]]:
    """A bounded process stuck in its first message; resolve the future to unblock it, and
    read what it handled next from the queue."""
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[None] = loop.create_future()
    gate: asyncio.Future[None] = loop.create_future()
    got: asyncio.Queue[Any] = asyncio.Queue()

    class Spy(cls):  # type: ignore[valid-type, misc]
        def __init__(self) -> None:
            super().__init__(entered, gate)
            self.got = got

    pid = await node.spawn(Spy)
    node.send(pid, "block")
    await entered
    return pid, gate, got


async def test_bounded_mailbox_rejects_at_the_sender_and_counts() -> None:
    async with ember.Node("a") as node:
        pid, gate, got = await _blocked(node, Bounded)
        node.send(pid, 1)
        ember.send(pid, 2)
        with pytest.raises(MailboxFull) as info:
            ember.send(pid, 3)
        assert info.value.pid == pid
        with pytest.raises(MailboxFull):
            node.send(pid, 4)
        with pytest.raises(MailboxFull):
            await node.call(pid, 5)
        assert node.statistics().counters["mailbox_rejected"] == 3
        assert node.process_info(pid).mailbox_len == 2  # type: ignore[union-attr]
        gate.set_result(None)
        assert [await got.get(), await got.get()] == [1, 2]
        node.send(pid, 6)  # room again
        assert await got.get() == 6


async def test_bounded_mailbox_drop_newest_drops_and_counts() -> None:
    async with ember.Node("a") as node:
        pid, gate, got = await _blocked(node, BoundedDrop)
        for i in range(1, 6):
            ember.send(pid, i)  # never raises
        assert node.statistics().counters["mailbox_dropped"] == 3
        assert node.statistics().counters["mailbox_rejected"] == 0
        gate.set_result(None)
        assert [await got.get(), await got.get()] == [1, 2]
        node.send(pid, 6)
        assert await got.get() == 6
        assert got.empty()


# -- started and terminate hooks ------------------------------------------------------------------


class AsyncHooks(ember.Actor):
    def __init__(self, log: list[Any], fail_start: BaseException | None = None) -> None:
        self.log = log
        self.fail_start = fail_start

    async def started(self) -> None:
        await asyncio.sleep(0)
        if self.fail_start is not None:
            raise self.fail_start
        self.log.append("started")

    async def receive(self, msg: Any) -> Any:
        self.log.append(msg)
        if isinstance(msg, BaseException):
            raise msg
        if isinstance(msg, tuple) and msg[0] == "stop":
            self.stop(msg[1])
        return msg

    async def terminate(self, reason: Any) -> None:
        await asyncio.sleep(0)
        self.log.append(("terminate", reason))


class SyncHooks(ember.Actor):
    def __init__(self, log: list[Any], fail_start: BaseException | None = None) -> None:
        self.log = log
        self.fail_start = fail_start

    def started(self) -> None:  # type: ignore[override]
        if self.fail_start is not None:
            raise self.fail_start
        self.log.append("started")

    def receive(self, msg: Any) -> Any:
        self.log.append(msg)
        if isinstance(msg, BaseException):
            raise msg
        if isinstance(msg, tuple) and msg[0] == "stop":
            self.stop(msg[1])
        return msg

    def terminate(self, reason: Any) -> None:  # type: ignore[override]
        self.log.append(("terminate", reason))


HOOKS = [AsyncHooks, SyncHooks]


@pytest.mark.parametrize("cls", HOOKS)
async def test_started_runs_before_the_first_message(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = node.spawn_nowait(cls, log)
        node.send(pid, "first")
        assert await node.call(pid, "second") == "second"
        assert log == ["started", "first", "second"]


@pytest.mark.parametrize("cls", HOOKS)
async def test_started_runs_inside_the_new_process(cls: type[ember.Actor]) -> None:
    seen: list[Any] = []

    class Whoami(cls):  # type: ignore[valid-type, misc]
        def started(self) -> None:
            seen.append(ember.self() == self.pid)

    async with ember.Node("a") as node:
        await node.spawn(Whoami, [])
        assert seen == [True]


@pytest.mark.parametrize("cls", HOOKS)
async def test_failing_started_makes_spawn_raise_start_error(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        boom = Boom("no start")
        before = set(node.processes())
        with pytest.raises(StartError) as info:
            await node.spawn(cls, log, boom, name="doomed")
        assert info.value.reason is boom
        assert set(node.processes()) == before
        assert node.whereis("doomed") is None
        assert log == []  # neither receive nor terminate ran


@pytest.mark.parametrize("cls", HOOKS)
async def test_failing_started_with_spawn_nowait_ends_the_process(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        boom = Boom("no start")
        pid = node.spawn_nowait(cls, [], boom)
        assert await node.wait_exit(pid) is boom
        assert node.process_info(pid) is None


@pytest.mark.parametrize("cls", HOOKS)
async def test_terminate_gets_the_stop_reason(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = await node.spawn(cls, log)
        node.send(pid, ("stop", "done"))
        node.send(pid, "after stop")  # never handled
        assert await node.wait_exit(pid) == "done"
        assert log == ["started", ("stop", "done"), ("terminate", "done")]
        assert node.statistics().counters["dropped_on_exit"] == 1


@pytest.mark.parametrize("cls", HOOKS)
async def test_terminate_gets_the_crash_reason(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = await node.spawn(cls, log)
        boom = Boom()
        node.send(pid, boom)
        assert await node.wait_exit(pid) is boom
        assert log == ["started", boom, ("terminate", boom)]


@pytest.mark.parametrize("cls", HOOKS)
async def test_terminate_gets_shutdown(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = await node.spawn(cls, log)
        node.exit(pid, "shutdown")
        assert await node.wait_exit(pid) == "shutdown"
        assert log == ["started", ("terminate", "shutdown")]


@pytest.mark.parametrize("cls", HOOKS)
async def test_terminate_runs_on_node_shutdown(cls: type[ember.Actor]) -> None:
    log: list[Any] = []
    async with ember.Node("a") as node:
        await node.spawn(cls, log)
    assert log == ["started", ("terminate", "shutdown")]


@pytest.mark.parametrize("cls", HOOKS)
async def test_terminate_is_not_called_on_kill(cls: type[ember.Actor]) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = await node.spawn(cls, log)
        exited = node.wait_exit(pid)
        node.exit(pid, "kill")
        assert await exited == "killed"
        assert log == ["started"]


async def test_stop_ends_the_process_after_the_current_message() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)

        def stop(me: Puppet) -> str:
            me.stop("finished")
            return "still answering"

        exited = node.wait_exit(pid)
        assert await inside(node, pid, stop) == "still answering"
        assert await exited == "finished"


async def test_stop_defaults_to_normal() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        exited = node.wait_exit(pid)
        await inside(node, pid, lambda me: me.stop())
        assert await exited == "normal"


async def test_crash_of_a_cast_is_the_exit_reason() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Crasher)
        boom = Boom()
        node.send(pid, boom)
        assert await node.wait_exit(pid) is boom


async def test_inbox_helper_sees_plain_messages() -> None:
    # The kit itself: a test that relies on Inbox must be able to fail.
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node)
        node.send(pid, "hello")
        assert await inbox.get() == "hello"
        with pytest.raises(TimeoutError):
            await inbox.get(within=1.0)
        assert isinstance(inbox, Inbox)


class SendsToItself(ember.Actor):
    """Sends itself a message from ``__init__`` (the pid is usable there)."""

    def __init__(self, got: asyncio.Future[Any]) -> None:
        self.got = got
        ember.send(self.pid, "from __init__")

    async def receive(self, msg: Any) -> Any:
        self.got.set_result(msg)


class SendsToItselfStarted(SendsToItself):
    async def started(self) -> None:
        pass


@pytest.mark.parametrize("cls", [SendsToItself, SendsToItselfStarted])
async def test_a_message_sent_from_init_is_handled(cls: type[SendsToItself]) -> None:
    async with ember.Node("a") as node:
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await node.spawn(cls, got)
        assert await got == "from __init__"  # with no other message to wake it up


class BoundedTrapper(Bounded):
    trap_exits = True


async def test_exit_and_down_messages_are_not_refused_by_a_full_mailbox() -> None:
    """Exit and Down messages come from the runtime, not from a sender that could be told
    MailboxFull: a full bounded mailbox still takes them (and they are not counted as
    rejected), so a trapping or monitoring process never misses an exit."""
    async with ember.Node("a") as node:
        pid, gate, got = await _blocked(node, BoundedTrapper)
        linked, _ = await puppet(node)
        watched, _ = await puppet(node)
        await inside(node, linked, lambda _: ember.link(pid))
        node.send(pid, 1)
        node.send(pid, 2)  # full now
        with pytest.raises(MailboxFull):
            node.send(pid, 3)
        node.exit(linked, "custom")
        node.exit(pid, "from outside")
        node.exit(watched, "kill")  # unrelated: the node keeps working
        assert node.statistics().counters["mailbox_rejected"] == 1
        gate.set_result(None)
        received = [await got.get() for _ in range(4)]
        assert received == [1, 2, Exit(linked, "custom"), Exit(None, "from outside")]


async def test_down_is_not_refused_by_a_full_mailbox() -> None:
    class BoundedWatcher(Bounded):
        async def receive(self, msg: Any) -> Any:
            if isinstance(msg, Do):
                return msg.fn(self)  # type: ignore[arg-type]
            return await super().receive(msg)

    async with ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[None] = loop.create_future()
        gate: asyncio.Future[None] = loop.create_future()
        got: asyncio.Queue[Any] = asyncio.Queue()
        watcher = await node.spawn(BoundedWatcher, entered, gate)
        target = await node.spawn(Idle)
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")

        def setup(me: Any) -> ember.Ref:
            me.got = got
            return ember.monitor(target)

        ref = await node.call(watcher, Do(setup))
        node.send(watcher, "block")
        await entered
        node.send(watcher, 1)
        node.send(watcher, 2)  # full now
        node.exit(target, "custom")
        gate.set_result(None)
        assert [await got.get() for _ in range(3)] == [1, 2, ember.Down(ref, target, "custom")]

        def monitor_dead_when_full(me: Any) -> ember.Ref:
            for i in range(5):
                ember.cast(me.pid, i)  # fills the mailbox (2), the rest is refused
            return ember.monitor(dead)

        ref2 = await node.call(watcher, Do(monitor_dead_when_full))
        assert [await got.get() for _ in range(3)] == [0, 1, ember.Down(ref2, dead, "noproc")]


class StartsSlowly(ember.Actor):
    def __init__(self, entered: asyncio.Future[None] | None, log: list[Any]) -> None:
        self.entered = entered
        self.log = log

    async def started(self) -> None:
        if self.entered is not None:
            self.entered.set_result(None)
            await asyncio.sleep(3600)
        self.log.append("started")

    async def terminate(self, reason: Any) -> None:
        self.log.append(("terminate", reason))


async def test_exit_signal_before_started_runs_ends_the_process() -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        pid = node.spawn_nowait(StartsSlowly, None, log)
        exited = node.wait_exit(pid)
        node.exit(pid, "custom")  # it has not had a chance to run started yet
        assert await exited == "custom"
        assert log == []


@pytest.mark.parametrize("reason", ["custom", "kill"])
async def test_exit_signal_during_started_makes_spawn_raise_start_error(reason: str) -> None:
    async with ember.Node("a") as node:
        log: list[Any] = []
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        spawning = asyncio.ensure_future(node.spawn(StartsSlowly, entered, log))
        await entered
        (pid,) = [p for p in node.processes() if p != node.root]
        node.exit(pid, reason)
        with pytest.raises(StartError) as info:
            await spawning
        assert info.value.reason == ("killed" if reason == "kill" else reason)
        assert node.process_info(pid) is None
        assert log == []  # terminate is for processes that started
