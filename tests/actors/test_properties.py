"""Property test: random interleavings of spawn, link, unlink, monitor, demonitor, exit, trap,
stop and crash among a few processes, checked against a small model of OTP's rules.

After every step the live processes are exactly those the model predicts. At the end:
every exit reason is the predicted one; no survivor has a dead pid among its links, its
monitors or its watchers; every monitor delivered exactly one Down if its target died (none
otherwise); and each survivor received exactly the Exit and Down messages the model predicts.

Hypothesis prints the failing example and a ``@reproduce_failure`` blob to replay it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from actorkit import Boom, Do, Inbox, Puppet, inside, puppet, raising
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ember
from ember import Down, Exit, NoProc
from ember.testing._vtime import run as run_virtual

MAX_PROCS = 8
REASONS = ["normal", "shutdown", "custom", "kill"]

# An operation is a tuple; process indices are taken modulo the number spawned so far.
ops = st.one_of(
    st.tuples(st.just("spawn"), st.booleans()),
    st.tuples(st.just("spawn_link"), st.integers(0, 99), st.booleans()),
    st.tuples(st.just("spawn_monitor"), st.integers(0, 99), st.booleans()),
    st.tuples(st.just("link"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("unlink"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("monitor"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("demonitor"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("exit"), st.integers(0, 99), st.sampled_from(REASONS)),
    st.tuples(
        st.just("exit_from"), st.integers(0, 99), st.integers(0, 99), st.sampled_from(REASONS)
    ),
    st.tuples(st.just("trap"), st.integers(0, 99), st.booleans()),
    st.tuples(st.just("stop"), st.integers(0, 99), st.sampled_from(REASONS)),
    st.tuples(st.just("crash"), st.integers(0, 99)),
)


@dataclass
class Model:
    """What OTP's rules say the processes' state should be."""

    pids: list[ember.Pid] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    trap: list[bool] = field(default_factory=list)
    links: list[set[int]] = field(default_factory=list)
    watching: list[dict[ember.Ref, int]] = field(default_factory=list)  # ref -> target
    watched_by: list[dict[ember.Ref, int]] = field(default_factory=list)  # ref -> watcher
    messages: list[list[Any]] = field(default_factory=list)
    reasons: dict[int, Any] = field(default_factory=dict)
    fired: Counter[ember.Ref] = field(default_factory=Counter)
    monitors: list[tuple[ember.Ref, int, int]] = field(default_factory=list)

    def add(self, pid: ember.Pid, trap: bool) -> int:
        self.pids.append(pid)
        self.alive.append(True)
        self.trap.append(trap)
        self.links.append(set())
        self.watching.append({})
        self.watched_by.append({})
        self.messages.append([])
        return len(self.pids) - 1

    def link(self, a: int, b: int) -> None:
        if a != b:
            self.links[a].add(b)
            self.links[b].add(a)

    def monitor(self, ref: ember.Ref, watcher: int, target: int) -> None:
        self.monitors.append((ref, watcher, target))
        if self.alive[target]:
            self.watching[watcher][ref] = target
            self.watched_by[target][ref] = watcher
        else:
            self.messages[watcher].append(Down(ref, self.pids[target], "noproc"))
            self.fired[ref] += 1

    def signal(self, target: int, sender: int | None, reason: Any, link: bool) -> None:
        queue = deque([(target, sender, reason, link)])
        while queue:
            t, s, r, via_link = queue.popleft()
            if not self.alive[t]:
                continue
            if via_link:
                assert s is not None
                if s not in self.links[t]:
                    continue
                self.links[t].discard(s)
            if r == "kill" and not via_link:
                self.die(t, "killed", queue)
            elif self.trap[t]:
                self.messages[t].append(Exit(None if s is None else self.pids[s], r))
            elif r == "normal" and s != t:
                continue
            else:
                self.die(t, r, queue)

    def die(self, p: int, reason: Any, queue: deque[Any] | None = None) -> None:
        own = queue is None
        queue = deque() if queue is None else queue
        self.alive[p] = False
        self.reasons[p] = reason
        for ref, target in self.watching[p].items():
            del self.watched_by[target][ref]
        self.watching[p] = {}
        for ref, watcher in self.watched_by[p].items():
            del self.watching[watcher][ref]
            if self.alive[watcher]:
                self.messages[watcher].append(Down(ref, self.pids[p], reason))
            self.fired[ref] += 1
        self.watched_by[p] = {}
        for other in sorted(self.links[p]):
            queue.append((other, p, reason, True))
        self.links[p] = set()
        if own:
            while queue:
                t, s, r, link = queue.popleft()
                self.signal(t, s, r, link)


def _exit_self(me: Puppet, reason: Any) -> None:
    ember.exit(me.pid, reason)


def _try_link(pid: ember.Pid) -> Any:
    try:
        ember.link(pid)
    except NoProc:
        return "noproc"
    return None


async def run_ops(operations: list[tuple[Any, ...]], initial_traps: list[bool]) -> None:
    async with ember.Node("p") as node:
        model = Model()
        inboxes: list[Inbox] = []
        exits: list[Any] = []

        def track(pid: ember.Pid, inbox: Inbox, trap: bool) -> int:
            inboxes.append(inbox)
            exits.append(node.wait_exit(pid))
            return model.add(pid, trap)

        async def spawn(trap: bool) -> int:
            pid, inbox = await puppet(node, trap=trap)
            return track(pid, inbox, trap)

        for trap in initial_traps:
            await spawn(trap)

        def pick(i: int) -> int:
            return i % len(model.pids)

        async def act(actor: ember.Pid, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
            """Run ``fn(*args, **kw)`` inside ``actor``."""
            return await inside(node, actor, lambda _: fn(*args, **kw))

        for op in operations:
            kind = op[0]
            if kind == "spawn":
                if len(model.pids) < MAX_PROCS:
                    await spawn(op[1])
                continue
            i = pick(op[1])
            actor = model.pids[i]
            if not model.alive[i]:
                continue  # only live processes act, or are stopped and crashed
            if kind in ("spawn_link", "spawn_monitor"):
                if len(model.pids) >= MAX_PROCS:
                    continue
                inbox = Inbox()
                trap = op[2]
                if kind == "spawn_link":
                    pid = await act(actor, ember.spawn_link, Puppet, inbox, trap=trap)
                    model.link(i, track(pid, inbox, trap))
                else:
                    pid, ref = await act(actor, ember.spawn_monitor, Puppet, inbox, trap=trap)
                    model.monitor(ref, i, track(pid, inbox, trap))
            elif kind == "link":
                j = pick(op[2])
                await act(actor, _try_link, model.pids[j])
                if model.alive[j]:
                    model.link(i, j)
                elif model.trap[i]:
                    model.messages[i].append(Exit(model.pids[j], "noproc"))
            elif kind == "unlink":
                j = pick(op[2])
                await act(actor, ember.unlink, model.pids[j])
                model.links[i].discard(j)
                model.links[j].discard(i)
            elif kind == "monitor":
                j = pick(op[2])
                ref = await act(actor, ember.monitor, model.pids[j])
                model.monitor(ref, i, j)
            elif kind == "demonitor":
                refs = list(model.watching[i])
                if not refs:
                    continue
                ref = refs[op[2] % len(refs)]
                assert await act(actor, ember.demonitor, ref) is True
                j = model.watching[i].pop(ref)
                del model.watched_by[j][ref]
            elif kind == "exit":
                node.exit(actor, op[2])
                model.signal(i, None, op[2], False)
            elif kind == "exit_from":
                j = pick(op[2])
                reason = op[3]
                model.signal(j, i, reason, False)
                if i == j and not model.alive[i]:
                    node.send(actor, Do(partial(_exit_self, reason=reason)))  # it cannot answer
                    await exits[i]
                else:
                    await act(actor, ember.exit, model.pids[j], reason)
            elif kind == "trap":
                await act(actor, ember.trap_exits, op[2])
                model.trap[i] = op[2]
            elif kind == "stop":
                await inside(node, actor, partial(Puppet.stop, reason=op[2]))
                model.die(i, op[2])
            elif kind == "crash":
                boom = Boom(f"crash {i}")
                node.send(actor, raising(boom))
                await exits[i]
                model.die(i, boom)
            live = [node.process_info(pid) is not None for pid in model.pids]
            assert live == model.alive, f"after {op}"

        survivors = [i for i, a in enumerate(model.alive) if a]
        event(f"{len(model.pids) - len(survivors)} of {len(model.pids)} processes died")
        event(f"{len(model.monitors)} monitors")
        for i in survivors:  # every message delivered so far is handled
            await inside(node, model.pids[i], lambda _: None)

        for i, pid in enumerate(model.pids):
            if not model.alive[i]:
                reason = await exits[i]
                assert reason == model.reasons[i], f"exit reason of {pid}"
        for i in survivors:
            info = node.process_info(model.pids[i])
            assert info is not None
            assert set(info.links) == {model.pids[j] for j in model.links[i]}
            assert all(node.process_info(p) is not None for p in info.links)
            assert sorted(info.monitoring) == sorted(
                model.pids[t] for t in model.watching[i].values()
            )
            assert all(node.process_info(p) is not None for p in info.monitoring)
            assert info.monitored_by == len(model.watched_by[i])
            assert info.trap_exits == model.trap[i]
            got = Counter(m for m in inboxes[i].received if isinstance(m, Exit | Down))
            assert got == Counter(model.messages[i]), f"messages of {model.pids[i]}"
        for i, _pid in enumerate(model.pids):
            if not model.alive[i]:  # it may have died with some of them still queued
                got = Counter(m for m in inboxes[i].received if isinstance(m, Exit | Down))
                assert not got - Counter(model.messages[i])
        # Exactly one Down per monitor whose target died, none for the others.
        downs = Counter(m.ref for inbox in inboxes for m in inbox.received if isinstance(m, Down))
        for ref, watcher, target in model.monitors:
            assert downs[ref] <= 1
            assert model.fired[ref] <= 1
            if model.alive[watcher]:
                assert downs[ref] == model.fired[ref], f"monitor {ref} of {model.pids[target]}"


@settings(
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    initial_traps=st.lists(st.booleans(), min_size=2, max_size=5),
    operations=st.lists(ops, min_size=5, max_size=40),
)
def test_random_interleavings_match_the_model(
    initial_traps: list[bool], operations: list[tuple[Any, ...]]
) -> None:
    run_virtual(run_ops(operations, initial_traps))
