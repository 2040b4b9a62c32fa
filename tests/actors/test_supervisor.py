"""Supervisors, one test per rule of OTP's supervisor documentation (``supervisor(3)`` and
"Supervisor Behaviour" in OTP Design Principles), quoted in each docstring.

Tests run on the virtual-time loop, so restart periods and shutdown timeouts take no real time.
Workers record ``("start", name)`` and ``("stop", name)`` in a shared :class:`Log`; a test waits
for events or for exits (``Node.wait_exit``), never for time to pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember import KILL, SHUTDOWN, ChildSpec, StartError, Supervisor, UsageError, child

WAIT = 60.0
"""Virtual seconds to wait for an event that must happen."""


class Log:
    """Lifecycle events of the workers of one test, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.failing: dict[str, int] = {}
        """name -> how many more times that worker's ``started`` fails."""
        self._changed = asyncio.Event()

    def add(self, what: str, name: str) -> None:
        self.events.append((what, name))
        self._changed.set()

    async def wait(self, n: int) -> list[tuple[str, str]]:
        """Wait until ``n`` events were logged; return them all."""
        async with asyncio.timeout(WAIT):
            while len(self.events) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    def take(self) -> list[tuple[str, str]]:
        """The events so far, and start afresh."""
        events, self.events = self.events, []
        return events


class Worker(ember.Actor):
    """Logs its start and stop; ``("exit", reason)`` makes it exit with ``reason``."""

    def __init__(self, log: Log, name: str, *extra: Any, hang: bool = False) -> None:
        self.log = log
        self.name = name
        self.extra = extra
        self.hang = hang

    async def started(self) -> None:
        if self.log.failing.get(self.name, 0) > 0:
            self.log.failing[self.name] -= 1
            raise RuntimeError(f"{self.name} refuses to start")
        self.log.add("start", self.name)

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("exit", reason):
                self.stop(reason)
            case "extra":
                return self.extra
        return None

    async def terminate(self, reason: Any) -> None:
        self.log.add("stop", self.name)
        if self.hang:
            await asyncio.get_running_loop().create_future()  # never returns


def w(log: Log, tag: str, /, **opts: Any) -> ChildSpec:
    """A :class:`Worker` child spec whose id is its name in the log."""
    return child(Worker, log, tag, id=tag, **opts)


async def pids(sup: Any) -> dict[Any, ember.Pid | None]:
    return {c.id: c.pid for c in await Supervisor.which_children(sup)}


async def crash(node: ember.Node, pid: ember.Pid | None, reason: Any = "boom") -> None:
    """Make a worker exit with ``reason`` and wait until it has."""
    assert pid is not None
    exited = node.wait_exit(pid)
    if reason == "killed":
        node.exit(pid, KILL)
    else:
        node.send(pid, ("exit", reason))
    assert await exited == reason


def starts(*names: str) -> list[tuple[str, str]]:
    return [("start", n) for n in names]


def stops(*names: str) -> list[tuple[str, str]]:
    return [("stop", n) for n in names]


# -- starting and stopping ------------------------------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    """ "When the supervisor is started, the child processes are started in order from left to
    right according to this list. When the supervisor is going to terminate, it first
    terminates its child processes in reversed start order, from right to left." """
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a"), w(log, "b"), w(log, "c")])
        assert log.take() == starts("a", "b", "c")  # spawn returns once all have started
        children = await pids(sup)
        node.exit(sup, SHUTDOWN)
        assert await node.wait_exit(sup) == SHUTDOWN
        assert log.take() == stops("c", "b", "a")
        for pid in children.values():
            assert pid is not None and node.process_info(pid) is None


async def test_start_failure_raises_and_stops_the_children_already_started() -> None:
    """ "If any child process start function fails [...], the supervisor first terminates all
    already started child processes with reason shutdown and then terminate itself and returns
    {error, {shutdown, Reason}}." """
    log = Log()
    log.failing["c"] = 1
    async with ember.Node("t") as node:
        before = set(node.processes())
        with pytest.raises(StartError) as info:
            await node.spawn(Supervisor, [w(log, "a"), w(log, "b"), w(log, "c"), w(log, "d")])
        assert log.events == [*starts("a", "b"), *stops("b", "a")]
        assert set(node.processes()) == before
        failure = info.value.reason
        assert isinstance(failure, StartError)
        assert failure.reason[:2] == ("failed_to_start_child", "c")


async def test_a_child_whose_constructor_fails_is_a_start_failure() -> None:
    """ "If the child process start function [...] fails, [...]" the supervisor fails to start:
    a bad constructor call counts like a failing ``started`` hook."""
    log = Log()
    async with ember.Node("t") as node:
        with pytest.raises(StartError):
            await node.spawn(Supervisor, [w(log, "a"), child(Worker, id="bad")])
        assert log.events == [*starts("a"), *stops("a")]


async def test_bad_specs_and_flags_are_refused() -> None:
    """supervisor.erl ``check_flags`` and ``check_startspec``: an unknown strategy or restart
    type, a negative intensity, a bad shutdown, duplicate ids ("duplicate_child_name") and a
    simple_one_for_one without exactly one spec are errors of the caller."""
    log = Log()
    bad: Any = "bad"  # not what the annotations allow: checked at run time
    for kwargs in [{"restart": bad}, {"shutdown": -1}, {"shutdown": bad}]:
        with pytest.raises(UsageError):
            child(Worker, **kwargs)
    with pytest.raises(UsageError):
        child(bad)  # not an Actor subclass
    flags: list[tuple[list[Any], dict[str, Any]]] = [
        ([], {"strategy": "one_for_none"}),
        ([], {"intensity": -1}),
        ([], {"period": 0}),
        ([w(log, "a"), w(log, "a")], {}),
        ([], {"strategy": "simple_one_for_one"}),
        (["not a spec"], {}),
    ]
    async with ember.Node("t") as node:
        for args, kwargs in flags:
            with pytest.raises(UsageError):
                await node.spawn(Supervisor, args, **kwargs)
        assert log.events == []


# -- strategies ----------------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    """ "one_for_one - If one child process terminates and is to be restarted, only that child
    process is affected." """
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a"), w(log, "b"), w(log, "c")])
        before = await pids(sup)
        log.take()
        await crash(node, before["b"])
        after = await pids(sup)
        assert log.take() == [*stops("b"), *starts("b")]
        assert after["a"] == before["a"] and after["c"] == before["c"]
        assert after["b"] not in (None, before["b"])


async def test_one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_order() -> None:
    """ "one_for_all - If one child process terminates and is to be restarted, all other child
    processes are terminated and then all child processes are restarted." """
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(
            Supervisor, [w(log, "a"), w(log, "b"), w(log, "c")], strategy="one_for_all"
        )
        before = await pids(sup)
        log.take()
        await crash(node, before["b"])
        after = await pids(sup)
        assert log.take() == [*stops("b", "c", "a"), *starts("a", "b", "c")]
        assert all(after[k] not in (None, before[k]) for k in "abc")


async def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    """ "rest_for_one - [...] the 'rest' of the child processes (that is, the child processes
    after the terminated child process in the start order) are terminated. Then the terminated
    child process and all child processes after it are restarted." """
    log = Log()
    async with ember.Node("t") as node:
        specs = [w(log, "a"), w(log, "b"), w(log, "c"), w(log, "d")]
        sup = await node.spawn(Supervisor, specs, strategy="rest_for_one", intensity=5)
        before = await pids(sup)
        log.take()
        await crash(node, before["b"])
        after = await pids(sup)
        assert log.take() == [*stops("b", "d", "c"), *starts("b", "c", "d")]
        assert after["a"] == before["a"]
        assert all(after[k] != before[k] for k in "bcd")


# -- restart types -------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "x"), "boom", "killed"])
async def test_permanent_child_is_always_restarted(reason: Any) -> None:
    """ "A permanent child process is always restarted." """
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")])
        old = (await pids(sup))["a"]
        await crash(node, old, reason)
        assert (await pids(sup))["a"] not in (None, old)


@pytest.mark.parametrize(
    ("reason", "restarted"),
    [
        ("normal", False),
        ("shutdown", False),
        (("shutdown", "x"), False),
        ("boom", True),
        ("killed", True),  # killed is not one of the three: abnormal
    ],
)
async def test_transient_child_is_restarted_only_after_an_abnormal_exit(
    reason: Any, restarted: bool
) -> None:
    """ "A transient child process is restarted only if it terminates abnormally, that is, with
    another exit reason than normal, shutdown, or {shutdown,Term}." Its spec is kept either way
    (``del_child`` only removes temporary children)."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a", restart="transient")])
        old = (await pids(sup))["a"]
        await crash(node, old, reason)
        new = (await pids(sup))["a"]
        assert (new is not None and new != old) if restarted else new is None


@pytest.mark.parametrize("reason", ["normal", "boom", "killed"])
async def test_temporary_child_is_never_restarted_and_its_spec_is_removed(reason: Any) -> None:
    """ "A temporary child process is never restarted"; "the child specification is deleted as
    soon as the process terminates"."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a"), w(log, "t", restart="temporary")])
        await crash(node, (await pids(sup))["t"], reason)
        assert list(await pids(sup)) == ["a"]
        assert log.events[2:] in ([], stops("t"))  # not started again


async def test_temporary_sibling_stopped_by_one_for_all_is_not_restarted() -> None:
    """ "A temporary child process is never restarted (even when the supervisor's restart
    strategy is rest_for_one or one_for_all and a sibling's death causes the temporary process
    to be terminated)." """
    log = Log()
    async with ember.Node("t") as node:
        specs = [
            w(log, "t1", restart="temporary"),
            w(log, "a"),
            w(log, "t2", restart="temporary"),
            w(log, "b"),
        ]
        sup = await node.spawn(Supervisor, specs, strategy="one_for_all")
        log.take()
        await crash(node, (await pids(sup))["b"])
        assert list(await pids(sup)) == ["a", "b"]
        assert log.take() == [*stops("b", "t2", "a", "t1"), *starts("a", "b")]


# -- restart intensity ---------------------------------------------------------------------------


async def test_more_than_intensity_restarts_within_period_shut_the_supervisor_down() -> None:
    """ "if more than MaxR restarts occur within MaxT seconds, the supervisor terminates all
    child processes and then itself. The termination reason for the supervisor itself in that
    case will be shutdown." """
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a"), w(log, "b")], intensity=2, period=5)
        for _ in range(2):
            await crash(node, (await pids(sup))["b"])
        b = (await pids(sup))["b"]  # answered once the second restart is done
        log.take()
        sup_exit = node.wait_exit(sup)
        await crash(node, b)  # the third restart within 5 s
        assert await sup_exit == SHUTDOWN
        assert log.take() == stops("b", "a")


async def test_restarts_spread_over_more_than_period_are_fine() -> None:
    """Only restarts "within MaxT seconds" count: one restart every 6 s never exceeds
    intensity 1 in a period of 5 s."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")], intensity=1, period=5)
        for _ in range(5):
            await crash(node, (await pids(sup))["a"])
            await asyncio.sleep(6)  # virtual time: lets the period pass, synchronizes nothing
        assert node.process_info(sup) is not None
        assert log.events == [("start", "a"), *[("stop", "a"), ("start", "a")] * 5]


async def test_intensity_zero_means_no_restart_at_all() -> None:
    """``intensity`` is "MaxR": with 0, the first restart is already one too many."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")], intensity=0)
        sup_exit = node.wait_exit(sup)
        await crash(node, (await pids(sup))["a"])
        assert await sup_exit == SHUTDOWN


async def test_failed_restart_is_tried_again_and_counts_as_a_restart() -> None:
    """supervisor.erl: when a restart fails, ``try_again_restart`` retries it later, each try
    going through ``add_restart`` like any restart; meanwhile other requests are handled."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")], intensity=3, period=5)
        log.failing["a"] = 2
        await crash(node, (await pids(sup))["a"])
        assert (await pids(sup))["a"] is None  # answered between two tries
        await log.wait(3)  # start a, stop a, start a (after two failed tries)
        assert (await pids(sup))["a"] is not None

        sup2 = await node.spawn(Supervisor, [w(log, "b")], intensity=2, period=5)
        log.failing["b"] = 2
        sup2_exit = node.wait_exit(sup2)
        await crash(node, (await pids(sup2))["b"])
        assert await sup2_exit == SHUTDOWN  # 3 tries > intensity 2


async def test_rest_for_one_retries_from_the_child_that_failed_to_start() -> None:
    """supervisor.erl ``restart_multiple_children``: when a child of the group fails to start,
    the retry (``try_again``) is for that child, so with rest_for_one the children before it
    are not restarted twice."""
    log = Log()
    async with ember.Node("t") as node:
        specs = [w(log, "a"), w(log, "b"), w(log, "c")]
        sup = await node.spawn(Supervisor, specs, strategy="rest_for_one", intensity=5)
        log.take()
        log.failing["b"] = 1
        await crash(node, (await pids(sup))["a"])
        await log.wait(6)
        assert log.take() == [*stops("a", "c", "b"), *starts("a", "b", "c")]


# -- shutdown -----------------------------------------------------------------------------------


async def test_brutal_kill_kills_without_running_terminate() -> None:
    """ "brutal_kill means that the child process is unconditionally terminated using
    exit(Child,kill)": it exits ``killed`` and its ``terminate`` does not run."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a", shutdown="brutal_kill")])
        a = (await pids(sup))["a"]
        assert a is not None
        exited = node.wait_exit(a)
        await Supervisor.terminate_child(sup, "a")
        assert await exited == "killed"
        assert log.events == starts("a")


async def test_shutdown_timeout_then_kill() -> None:
    """ "An integer time-out value means that the supervisor tells the child process to
    terminate by calling exit(Child,shutdown) and then wait for an exit signal [...]. If no exit
    signal is received within the specified number of milliseconds, the child process is
    unconditionally terminated using exit(Child,kill)." """
    log = Log()
    async with ember.Node("t") as node:
        loop = asyncio.get_running_loop()
        specs = [w(log, "hangs", shutdown=2.0, hang=True), w(log, "quick", shutdown=2.0)]
        sup = await node.spawn(Supervisor, specs)
        children = await pids(sup)
        exits = {k: node.wait_exit(p) for k, p in children.items() if p is not None}
        t0 = loop.time()
        node.exit(sup, SHUTDOWN)
        assert await exits["quick"] == SHUTDOWN
        assert loop.time() == t0
        assert await exits["hangs"] == "killed"
        assert loop.time() - t0 == pytest.approx(2.0)
        assert await node.wait_exit(sup) == SHUTDOWN
        assert log.events == [*starts("hangs", "quick"), *stops("quick", "hangs")]


async def test_supervisor_child_shutdown_defaults_to_infinity_and_waits_for_its_subtree() -> None:
    """ "If the child process is another supervisor, the shutdown time must be set to infinity
    to give the subtree ample time to shut down" (the default for supervisors; 5 s for
    workers)."""
    log = Log()
    assert child(Supervisor).shutdown is None
    assert child(Worker, log, "x").shutdown == 5.0
    async with ember.Node("t") as node:
        loop = asyncio.get_running_loop()
        inner = child(Supervisor, [w(log, "slow", shutdown=30.0, hang=True)], id="inner")
        sup = await node.spawn(Supervisor, [inner])
        inner_pid = (await pids(sup))["inner"]
        assert inner_pid is not None
        inner_exit = node.wait_exit(inner_pid)
        t0 = loop.time()
        node.exit(sup, SHUTDOWN)
        assert await node.wait_exit(sup) == SHUTDOWN
        assert await inner_exit == SHUTDOWN  # waited for, not killed
        assert loop.time() - t0 == pytest.approx(30.0)


# -- simple_one_for_one --------------------------------------------------------------------------


async def test_simple_one_for_one_appends_extra_args_to_the_template() -> None:
    """ "the child process is then started by appending ExtraArgs to the existing start function
    arguments, that is, by calling apply(M, F, A++ExtraArgs)"; which_children reports the id as
    "undefined for a simple_one_for_one supervisor"; count_children gives specs 1."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(
            Supervisor, [child(Worker, log, "w", id="tmpl")], strategy="simple_one_for_one"
        )
        assert await Supervisor.which_children(sup) == []
        p1 = await Supervisor.start_child(sup, "x", 1)
        p2 = await Supervisor.start_child(sup)
        assert await node.call(p1, "extra") == ("x", 1)
        assert await node.call(p2, "extra") == ()
        rows = await Supervisor.which_children(sup)
        assert [(r.id, r.pid, r.kind, r.behaviour) for r in rows] == [
            (None, p1, "worker", Worker),
            (None, p2, "worker", Worker),
        ]
        assert await Supervisor.count_children(sup) == {
            "specs": 1,
            "active": 2,
            "supervisors": 0,
            "workers": 2,
        }


async def test_simple_one_for_one_restarts_a_child_with_its_own_args() -> None:
    """A dynamic permanent child is restarted like any other, from ``A++ExtraArgs``
    (supervisor.erl ``restart(simple_one_for_one, ...)`` uses the stored args)."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [child(Worker, log, "w")], strategy="simple_one_for_one")
        p1 = await Supervisor.start_child(sup, 7)
        await crash(node, p1)
        [row] = await Supervisor.which_children(sup)
        assert row.pid not in (None, p1)
        assert await node.call(row.pid, "extra") == (7,)


async def test_simple_one_for_one_terminate_child_by_pid() -> None:
    """ "If the supervisor is simple_one_for_one, Id must be the pid() of the child process. [...]
    If the child specification identifier is specified instead of a pid(), the function returns
    {error,simple_one_for_one}"; delete_child and restart_child "are invalid"."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(
            Supervisor, [child(Worker, log, "w", id="tmpl")], strategy="simple_one_for_one"
        )
        p1 = await Supervisor.start_child(sup)
        p2 = await Supervisor.start_child(sup)
        await Supervisor.terminate_child(sup, p1)
        assert node.process_info(p1) is None
        assert [r.pid for r in await Supervisor.which_children(sup)] == [p2]
        await Supervisor.terminate_child(sup, p1)  # already gone: ok, as in OTP
        for bad in (
            Supervisor.terminate_child(sup, "tmpl"),
            Supervisor.terminate_child(sup, sup),  # alive, but not a child
            Supervisor.restart_child(sup, "tmpl"),
            Supervisor.delete_child(sup, "tmpl"),
        ):
            with pytest.raises(UsageError):
                await bad
        assert await Supervisor.count_children(sup) == {
            "specs": 1,
            "active": 1,
            "supervisors": 0,
            "workers": 1,
        }


async def test_simple_one_for_one_transient_child_exiting_normally_is_removed() -> None:
    """A transient dynamic child that exits normally is not restarted and, having no spec of
    its own, leaves the supervisor (``del_child`` erases dynamic children)."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(
            Supervisor,
            [child(Worker, log, "w", restart="transient")],
            strategy="simple_one_for_one",
        )
        await crash(node, await Supervisor.start_child(sup), "normal")
        assert await Supervisor.which_children(sup) == []


async def test_simple_one_for_one_stops_all_children_at_once() -> None:
    """ "As a simple_one_for_one supervisor can have many children, it shuts them all down
    asynchronously. This means that the children do their cleanup in parallel": three children
    that each take their full 2 s shutdown time are all gone after 2 s, not 6."""
    log = Log()
    async with ember.Node("t") as node:
        loop = asyncio.get_running_loop()
        tmpl = child(Worker, log, "w", shutdown=2.0, hang=True)
        sup = await node.spawn(Supervisor, [tmpl], strategy="simple_one_for_one")
        children = [await Supervisor.start_child(sup) for _ in range(3)]
        exits = [node.wait_exit(p) for p in children]
        t0 = loop.time()
        node.exit(sup, SHUTDOWN)
        assert await node.wait_exit(sup) == SHUTDOWN
        assert loop.time() - t0 == pytest.approx(2.0)
        assert await asyncio.gather(*exits) == ["killed"] * 3
        assert log.events.count(("stop", "w")) == 3


# -- dynamic children of ordinary supervisors ----------------------------------------------------


async def test_start_child_adds_a_spec_and_a_duplicate_id_is_refused() -> None:
    """ "start_child: Dynamically adds a child specification [...]. If there already exists a
    child specification with the specified identifier, ChildSpec is discarded, and the function
    returns {error,already_present} or {error,{already_started,Child}}" - an error for the
    caller; the supervisor carries on."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")])
        d = await Supervisor.start_child(sup, w(log, "d"))
        rows = await pids(sup)
        assert list(rows) == ["a", "d"] and rows["d"] == d
        with pytest.raises(UsageError, match="already started"):
            await Supervisor.start_child(sup, w(log, "d"))
        await Supervisor.terminate_child(sup, "d")
        with pytest.raises(UsageError, match="already present"):
            await Supervisor.start_child(sup, w(log, "d"))
        with pytest.raises(UsageError):
            await Supervisor.start_child(sup, "not a spec")
        assert node.process_info(sup) is not None
        assert list(await pids(sup)) == ["a", "d"]


async def test_start_child_that_fails_to_start_is_discarded() -> None:
    """ "If the child process start function returns an error tuple or an erroneous value, or if
    it fails, the child specification is discarded, and the function returns {error,Error}";
    a name already taken is such a failure, and none of them hurts the supervisor."""
    log = Log()
    log.failing["bad"] = 1
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a", name="taken")])
        with pytest.raises(StartError):
            await Supervisor.start_child(sup, w(log, "bad"))
        with pytest.raises(StartError):
            await Supervisor.start_child(sup, w(log, "b", name="taken"))
        assert list(await pids(sup)) == ["a"]


async def test_terminate_child_keeps_the_spec_for_restart_child_and_delete_child() -> None:
    """ "terminate_child: The process, if any, is terminated and, unless it is a temporary child,
    the child specification is kept by the supervisor [...] restarted explicitly by calling
    restart_child/2. Use delete_child/2 to remove the child specification." restart_child and
    delete_child of a running child return {error,running}; unknown ids {error,not_found}."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a"), w(log, "t", restart="temporary")])
        a = (await pids(sup))["a"]
        with pytest.raises(UsageError, match="running"):
            await Supervisor.restart_child(sup, "a")
        with pytest.raises(UsageError, match="running"):
            await Supervisor.delete_child(sup, "a")
        await Supervisor.terminate_child(sup, "a")
        rows = await pids(sup)
        assert rows["a"] is None and rows["t"] is not None
        counts = await Supervisor.count_children(sup)
        assert counts == {"specs": 2, "active": 1, "supervisors": 0, "workers": 2}
        a2 = await Supervisor.restart_child(sup, "a")
        assert a2 != a and (await pids(sup))["a"] == a2
        await Supervisor.terminate_child(sup, "a")
        await Supervisor.delete_child(sup, "a")
        await Supervisor.terminate_child(sup, "t")  # temporary: its spec goes with it
        assert await pids(sup) == {}
        for bad in (
            Supervisor.terminate_child(sup, "nope"),
            Supervisor.restart_child(sup, "nope"),
            Supervisor.delete_child(sup, "nope"),
        ):
            with pytest.raises(UsageError, match="no child"):
                await bad
        assert log.events == [*starts("a", "t"), *stops("a"), *starts("a"), *stops("a", "t")]


# -- exit signals --------------------------------------------------------------------------------


class Linker(ember.Actor):
    """Links itself to ``target``; ``("exit", reason)`` makes it exit."""

    def __init__(self, target: ember.Pid) -> None:
        self.target = target

    async def started(self) -> None:
        ember.link(self.target)

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("exit", reason):
                self.stop(reason)
        return None


class Parent(ember.Actor):
    """Starts a supervisor linked to itself; ``("exit", reason)`` makes it exit."""

    def __init__(self, specs: list[ChildSpec]) -> None:
        self.specs = specs

    async def started(self) -> None:
        self.sup = await ember.spawn_link(Supervisor, self.specs)

    async def receive(self, msg: Any) -> Any:
        match msg:
            case "sup":
                return self.sup
            case ("exit", reason):
                self.stop(reason)
            case ("signal", reason):
                ember.exit(self.sup, reason)
        return None


@pytest.mark.parametrize("how", ["parent exits", "parent sends exit"])
async def test_supervisor_exits_on_its_parents_exit_signal_children_first(how: str) -> None:
    """gen_server(3): a process that traps exits and gets "an 'EXIT' message from its parent"
    terminates with the same reason - after ``terminate`` has stopped the children in reverse
    order."""
    log = Log()
    async with ember.Node("t") as node:
        parent = await node.spawn(Parent, [w(log, "a"), w(log, "b")])
        sup = await node.call(parent, "sup")
        node.send(parent, ("exit" if how == "parent exits" else "signal", "bye"))
        assert await node.wait_exit(sup) == "bye"
        assert log.events == [*starts("a", "b"), *stops("b", "a")]


async def test_exit_of_a_linked_process_that_is_neither_child_nor_parent_is_ignored() -> None:
    """supervisor.erl ``restart_child``: an 'EXIT' from a pid that is not a child is ignored
    ({ok, State}); only the parent's exit signal stops a supervisor."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, [w(log, "a")])
        stranger = await node.spawn(Linker, sup)
        node.send(stranger, ("exit", "boom"))
        assert await node.wait_exit(stranger) == "boom"
        assert list(await pids(sup)) == ["a"]
        assert log.events == starts("a")


class Killer(ember.Actor):
    """While being stopped, kills the process registered as ``victim`` (which has no
    ``terminate`` hook, so it is gone at once)."""

    async def terminate(self, reason: Any) -> None:
        victim = ember.whereis("victim")
        if victim is not None:
            ember.exit(victim, "boom")


async def test_stale_exit_of_a_child_the_supervisor_already_stopped_is_ignored() -> None:
    """supervisor.erl ``shutdown/1`` + ``unlink_flush``: the 'EXIT' of a child that died while
    the supervisor was stopping it is consumed, never handled as a new crash. Here, restarting
    by one_for_all, stopping ``k`` kills ``v`` first, so ``v``'s exit is queued behind."""
    log = Log()
    async with ember.Node("t") as node:
        specs = [child(ember.Actor, id="v", name="victim"), child(Killer, id="k"), w(log, "a")]
        sup = await node.spawn(Supervisor, specs, strategy="one_for_all", intensity=1)
        await crash(node, (await pids(sup))["a"])
        await pids(sup)  # answered after the restart; the stale exit of v is queued behind
        rows = await pids(sup)
        assert list(rows) == ["v", "k", "a"]
        assert all(pid is not None for pid in rows.values())
        assert log.events == [*starts("a"), *stops("a"), *starts("a")]


# -- supervision trees ---------------------------------------------------------------------------


def tree(log: Log, inner_intensity: int = 1) -> list[ChildSpec]:
    """An inner supervisor with worker ``a``, then worker ``b``."""
    inner = child(Supervisor, [w(log, "a")], id="inner", intensity=inner_intensity)
    return [inner, w(log, "b")]


async def test_child_supervisor_giving_up_is_handled_by_its_parents_strategy() -> None:
    """Design Principles, "Supervision Trees": a supervisor that reaches its restart intensity
    terminates with reason ``shutdown``, which its own supervisor sees as the exit of a
    (permanent) child, to which it applies its own strategy - here one_for_all."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, tree(log, inner_intensity=0), strategy="one_for_all")
        inner = (await pids(sup))["inner"]
        assert inner is not None
        a = (await pids(inner))["a"]
        log.take()
        inner_exit = node.wait_exit(inner)
        await crash(node, a)
        assert await inner_exit == SHUTDOWN
        new_inner = (await pids(sup))["inner"]
        assert new_inner not in (None, inner)
        assert log.take() == [*stops("a", "b"), *starts("a", "b")]


async def test_escalation_up_the_tree_when_every_level_gives_up() -> None:
    """Restart intensity exceeded at every level: each supervisor terminates its children and
    itself with ``shutdown``, so the failure climbs to the top of the tree."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, tree(log, inner_intensity=0), intensity=0)
        inner = (await pids(sup))["inner"]
        assert inner is not None
        log.take()
        sup_exit = node.wait_exit(sup)
        await crash(node, (await pids(inner))["a"])
        assert await sup_exit == SHUTDOWN
        assert log.take() == stops("a", "b")


async def test_killed_child_supervisor_takes_its_children_down_and_is_restarted() -> None:
    """A killed supervisor's children get its exit signal through their links (``killed``) and
    die with it; its parent restarts it, and with it a fresh subtree."""
    log = Log()
    async with ember.Node("t") as node:
        sup = await node.spawn(Supervisor, tree(log))
        inner = (await pids(sup))["inner"]
        assert inner is not None
        a = (await pids(inner))["a"]
        assert a is not None
        a_exit = node.wait_exit(a)
        log.take()
        node.exit(inner, KILL)
        assert await a_exit == "killed"
        new_inner = (await pids(sup))["inner"]
        assert new_inner not in (None, inner)
        assert log.take() == starts("a")


async def test_node_shutdown_stops_the_root_tree_in_reverse_order() -> None:
    """The node's root supervisor (``node.start_child``) is the top of the tree: leaving
    ``async with Node`` stops everything "in reversed start order, from right to left"."""
    log = Log()
    async with ember.Node("t") as node:
        for spec in tree(log):
            await node.start_child(spec)
        rows = await pids(node.root)
        assert list(rows) == ["inner", "b"]
    assert log.events == [*starts("a", "b"), *stops("b", "a")]


async def test_node_shutdown_stops_each_spawned_flat_tree_in_reverse_order() -> None:
    """Supervisors started with ``node.spawn`` are stopped by the node one at a time, newest
    first, each stopping its children "in reversed start order"."""
    log = Log()
    async with ember.Node("t") as node:
        await node.spawn(Supervisor, [w(log, "a"), w(log, "b")])
        await node.spawn(Supervisor, [w(log, "c"), w(log, "d")])
    assert log.events == [*starts("a", "b", "c", "d"), *stops("d", "c", "b", "a")]


async def test_node_shutdown_stops_a_spawned_tree_in_reverse_order() -> None:
    """A tree started with ``node.spawn`` outside the root also stops "in reversed start order,
    from right to left", once, without any restart on the way down."""
    log = Log()
    async with ember.Node("t") as node:
        await node.spawn(Supervisor, tree(log))
    assert log.events == [*starts("a", "b"), *stops("b", "a")]


class Blocks(ember.Actor):
    """Never finishes starting; sets ``entered`` once its ``started`` runs."""

    def __init__(self, entered: asyncio.Event) -> None:
        self.entered = entered

    async def started(self) -> None:
        self.entered.set()
        await asyncio.get_running_loop().create_future()


async def test_supervisor_killed_while_starting_takes_its_started_children_along() -> None:
    """Links work both ways: a supervisor that dies - here killed while its second child is
    still starting - sends its exit signal to the children it already started, which die too
    (erlang(3), ``link/1``)."""
    log = Log()
    async with ember.Node("t") as node:
        entered = asyncio.Event()
        specs = [w(log, "a", name="a"), child(Blocks, entered, id="blocks")]
        starting = asyncio.create_task(node.spawn(Supervisor, specs, name="sup"))
        await entered.wait()
        a, sup = node.whereis("a"), node.whereis("sup")
        assert a is not None and sup is not None
        a_exit = node.wait_exit(a)
        node.exit(sup, KILL)
        with pytest.raises(StartError):
            await starting
        async with asyncio.timeout(WAIT):
            assert await a_exit == "killed"
