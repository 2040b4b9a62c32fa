"""A random registry workload for the simulated world, the history it records, and its checks.

Each client is a process on some node that registers itself under random names of a small set,
unregisters them and looks them up (linearizably for the consistent tier), and sometimes exits.
Every consistent operation is recorded as an :class:`ember.testing.Operation` with the loop's
clock; ``fail`` outcomes (nothing happened: no leader, the tier unavailable) are left out,
unknown ones (``OutcomeUnknown``, a timeout) end at None. A process exit, or its node's kill,
becomes one ``release`` per name, of unknown outcome: the release happens at some point after,
through Raft, or (if the process held none) changes nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ember
from ember.consensus import OutcomeUnknown
from ember.registry import TierUnavailable
from ember.testing import UNKNOWN, Model, Operation


class NamesModel(Model[Any]):
    """Registered names, one partition per name: the state is the holder's pid or None.

    Inputs: ``("register", name, pid)`` -> ``"ok"`` or ``("taken", holder)``;
    ``("unregister", name)`` -> whether it was registered; ``("lookup", name)`` -> the holder
    or None; ``("release", name, pid)`` (its exit) -> ignored.
    """

    def init(self) -> Any:
        return None

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in ops:
            parts.setdefault(op.input[1], []).append(op)
        return parts

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        kind = input[0]
        if kind == "register":
            pid = input[2]
            if state is None or state == pid:
                return (output is UNKNOWN or output == "ok"), pid
            return (output is UNKNOWN or output == ("taken", state)), state
        if kind == "unregister":
            if output is not UNKNOWN and output != (state is not None):
                return False, state
            return True, None
        if kind == "lookup":
            return (output is UNKNOWN or output == state), state
        if kind == "release":
            return True, (None if state == input[2] else state)
        raise ValueError(f"unknown operation {input!r}")

    def readonly(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "lookup")


@dataclass
class Recorder:
    """The consistent history, plus what every client saw of the eventual tier."""

    ops: list[Operation] = field(default_factory=list)
    tokens: list[tuple[Any, ember.Pid, int, float, float]] = field(default_factory=list)
    """(name, pid, token, start, end) of every successful consistent registration."""
    failed: int = 0
    unknown: int = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def done(self, input: Any, output: Any, start: float, end: float | None) -> None:
        self.ops.append(Operation(input[2] if len(input) > 2 else None, input, output, start, end))

    def may_release(self, pid: ember.Pid, names: Sequence[Any]) -> None:
        """From now on, ``pid``'s names may be released (it exits, its node is killed or may
        be declared failed)."""
        at = self.now()
        for name in names:
            self.ops.append(Operation(pid, ("release", name, pid), None, at, None))


async def consistent_op(
    rec: Recorder, node: ember.Node, pid: ember.Pid, name: Any, rng: random.Random
) -> None:
    """One random consistent operation by ``pid`` on ``name``, recorded."""
    kind = rng.choice(["register", "register", "unregister", "lookup"])
    start = rec.now()
    try:
        if kind == "register":
            token = await node.names.register(name, pid, tier="consistent", timeout=3.0)
            assert isinstance(token, int)
            rec.tokens.append((name, pid, token, start, rec.now()))
            rec.done(("register", name, pid), "ok", start, rec.now())
        elif kind == "unregister":
            try:
                await node.names.unregister(name, tier="consistent", timeout=3.0)
                rec.done(("unregister", name), True, start, rec.now())
            except ember.UnknownName:
                rec.done(("unregister", name), False, start, rec.now())
        else:
            holder = await node.names.whereis(name, consistency="linearizable")
            rec.done(("lookup", name), holder, start, rec.now())
    except ember.NameTaken as taken:
        rec.done(("register", name, pid), ("taken", taken.owner), start, rec.now())
    except TierUnavailable:
        rec.failed += 1  # nothing was done
    except (OutcomeUnknown, TimeoutError):
        rec.unknown += 1
        if kind == "lookup":
            return  # a read with no answer changed nothing
        args = ("register", name, pid) if kind == "register" else ("unregister", name)
        rec.done(args, None, start, None)


def check_tokens(rec: Recorder) -> None:
    """Fencing tokens grow: a registration of another pid that began after one ended has a
    larger token."""
    by_name: dict[Any, list[tuple[ember.Pid, int, float, float]]] = {}
    for name, pid, token, start, end in rec.tokens:
        by_name.setdefault(name, []).append((pid, token, start, end))
    for name, regs in by_name.items():
        for pa, ta, _, ea in regs:
            for pb, tb, sb, _ in regs:
                if pa != pb and ea < sb:
                    assert ta < tb, f"{name!r}: token {tb} of {pb} after {ta} of {pa}"
