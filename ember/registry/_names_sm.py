"""The replicated state of the consistent tier: the state machine of the ``ember.names`` Raft
group. Every member applies the same commands in the same order, so every member holds the same
map, and that map is the node's cache of consistent names.

Commands (dicts, as :class:`~ember.consensus.StateMachine` takes them); a pid travels as
``[node, serial, creation]`` and a name as msgpack (tuples arrive as lists and are turned back):

- ``register(name, pid, meta)``: ``["ok", token]`` (the token is this entry's Raft index; the
  same pid registered again keeps its first token) or ``["taken", pid]``;
- ``unregister(name)``: whether it was registered;
- ``release(pids)``: drop every name of these pids (processes that exited): how many;
- ``release_node(node, upto)``: drop every name registered by then (token ``<= upto``) of
  ``node``'s processes: one entry for a failed node however many names it had;
- ``release_stale(node, creation)``: drop ``node``'s names of other incarnations than
  ``creation`` (a node restarted faster than its failure was noticed).

``listener(changes)`` is told after each command of the names whose holder changed, as
``(name, old, new)`` with ``(pid, meta, token)`` or None; ``listener(None)`` after a restore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ..actors import Pid
from ..consensus._state_machine import StateMachine, apply

__all__ = ["Entry", "NamesStateMachine", "name_from_wire", "pid_from_wire", "pid_to_wire"]

Entry = tuple[Pid, Any, int]
"""A registration: ``(pid, meta, token)``."""
Changes = list[tuple[Any, Entry | None, Entry | None]]


def name_from_wire(name: Any) -> Any:
    """A name as it was registered: msgpack arrays back to tuples."""
    if isinstance(name, list | tuple):
        return tuple(name_from_wire(part) for part in name)
    return name


def pid_from_wire(value: Any) -> Pid:
    node, serial, creation = value
    if not (isinstance(node, str) and isinstance(serial, int) and isinstance(creation, int)):
        raise ValueError(f"not a pid: {value!r}")
    return Pid(node, serial, creation)


def pid_to_wire(pid: Pid) -> list[Any]:
    return [pid.node, pid.serial, pid.creation]


class NamesStateMachine(StateMachine):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[Any, Entry] = {}
        self.by_pid: dict[Pid, set[Any]] = {}
        self.listener: Callable[[Changes | None], None] | None = None
        self.applied_index = 0

    # -- commands ---------------------------------------------------------------------------

    @apply("register")
    def register(self, cmd: dict[str, Any]) -> list[Any]:
        name = name_from_wire(cmd["name"])
        pid = pid_from_wire(cmd["pid"])
        held = self.names.get(name)
        if held is not None:
            if held[0] == pid:
                return ["ok", held[2]]
            return ["taken", pid_to_wire(held[0])]
        token = self._index()
        self._set(name, (pid, cmd.get("meta"), token), held)
        return ["ok", token]

    @apply("unregister")
    def unregister(self, cmd: dict[str, Any]) -> bool:
        name = name_from_wire(cmd["name"])
        held = self.names.get(name)
        if held is None:
            return False
        self._drop([name])
        return True

    @apply("release")
    def release(self, cmd: dict[str, Any]) -> int:
        doomed: list[Any] = []
        for value in cmd["pids"]:
            doomed.extend(self.by_pid.get(pid_from_wire(value), ()))
        return self._drop(doomed)

    @apply("release_node")
    def release_node(self, cmd: dict[str, Any]) -> int:
        node, upto = cmd["node"], cmd["upto"]
        doomed = [
            name
            for pid, names in self.by_pid.items()
            if pid.node == node
            for name in names
            if self.names[name][2] <= upto
        ]
        return self._drop(doomed)

    @apply("release_stale")
    def release_stale(self, cmd: dict[str, Any]) -> int:
        node, creation = cmd["node"], cmd["creation"]
        doomed = [
            name
            for pid, names in self.by_pid.items()
            if pid.node == node and pid.creation != creation
            for name in names
        ]
        return self._drop(doomed)

    # -- reads and snapshots ----------------------------------------------------------------

    def read(self, key: Any) -> Any:
        held = self.names.get(name_from_wire(key))
        if held is None:
            return None
        return [pid_to_wire(held[0]), held[1], held[2]]

    def snapshot(self) -> bytes:
        rows = [[n, pid_to_wire(p), m, t] for n, (p, m, t) in self.names.items()]
        return msgpack.packb(rows)  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        self.names = {}
        self.by_pid = {}
        for wire_name, pid, meta, token in msgpack.unpackb(data, strict_map_key=False):
            entry = (pid_from_wire(pid), meta, token)
            name = name_from_wire(wire_name)
            self.names[name] = entry
            self.by_pid.setdefault(entry[0], set()).add(name)
        if self.listener is not None:
            self.listener(None)

    def nodes(self) -> set[str]:
        """The nodes whose processes hold names."""
        return {pid.node for pid in self.by_pid}

    # -- helpers ----------------------------------------------------------------------------

    def _index(self) -> int:
        return getattr(self, "index", 0) or self.applied_index + 1

    def _set(self, name: Any, entry: Entry, old: Entry | None) -> None:
        self.names[name] = entry
        self.by_pid.setdefault(entry[0], set()).add(name)
        self.applied_index = max(self.applied_index, entry[2])
        if self.listener is not None:
            self.listener([(name, old, entry)])

    def _drop(self, names: list[Any]) -> int:
        changes: Changes = []
        for name in dict.fromkeys(names):
            old = self.names.pop(name, None)
            if old is None:
                continue
            held = self.by_pid.get(old[0])
            if held is not None:
                held.discard(name)
                if not held:
                    del self.by_pid[old[0]]
            changes.append((name, old, None))
        if changes and self.listener is not None:
            self.listener(changes)
        return len(changes)
