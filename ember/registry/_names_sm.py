"""The replicated state of the consistent tier: the state machine of the ``ember.names`` Raft
group. Every member applies the same commands in the same order, so every member holds the same
map, and that map is the node's cache of consistent names.

Commands (dicts, as :class:`~ember.consensus.StateMachine` takes them); a pid travels as
``[node, serial, creation]`` and a name as msgpack (tuples arrive as lists and are turned back):

- ``batch(items)``: the registrations and unregistrations a node queued while its previous
  write was in flight (group commit), decided one by one in order. An item is
  ``[REGISTER, name, pid, meta]`` or ``[UNREGISTER, name]``; the result is one value per item:
  a registration's fencing token (an int; the same pid registered again keeps its first
  token) or the holder's pid (a list: the name is taken); an unregistration's whether it was
  registered (a bool); a refused item's reason (a str). The token of the item at
  ``position`` of the entry at Raft ``index`` is ``index * 2**16 + position``
  (:func:`token_at`): unique in the group's history, larger for every later registration of
  any name, and the same on every member;
- ``release(pids)``: drop every name of these pids (processes that exited): how many;
- ``release_node(node, upto)``: drop every name of ``node``'s processes whose token is at most
  ``upto`` (:func:`last_token` of the index the leader had applied when it saw the node go):
  one entry for a failed node however many names it had;
- ``release_stale(node, creation)``: drop ``node``'s names of other incarnations than
  ``creation`` (a node restarted faster than its failure was noticed);
- ``register(name, pid, meta)`` / ``unregister(name)``: the single commands of logs written
  before batches (their token is the bare Raft index, smaller than any batch token after it).

``listener(changes)`` is told after each command of the names whose holder changed, in log
order, as ``(name, old, new)`` with ``(pid, meta, token)`` or None; ``listener(None)`` after a
restore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]

from .._errors import UsageError
from ..actors import Pid
from ..consensus._state_machine import StateMachine, apply

__all__ = [
    "REGISTER",
    "TOKEN_SHIFT",
    "UNREGISTER",
    "Entry",
    "NamesStateMachine",
    "index_of",
    "last_token",
    "name_from_wire",
    "pid_from_wire",
    "pid_to_wire",
    "token_at",
]

REGISTER = 0
"""A batch item ``[REGISTER, name, pid, meta]``."""
UNREGISTER = 1
"""A batch item ``[UNREGISTER, name]``."""
TOKEN_SHIFT = 16
"""A token is ``index << TOKEN_SHIFT | position``: at most ``2**16`` items per entry."""

Entry = tuple[Pid, Any, int]
"""A registration: ``(pid, meta, token)``."""
Changes = list[tuple[Any, Entry | None, Entry | None]]


def name_from_wire(name: Any) -> Any:
    """A name as it was registered: msgpack arrays back to tuples."""
    cls = name.__class__
    if cls is list or cls is tuple:
        # On every member's apply path: a flat tuple of scalars (the common shape) is made
        # without recursing into each part.
        return tuple(
            [
                p if p.__class__ is not list and p.__class__ is not tuple else name_from_wire(p)
                for p in name
            ]
        )
    return name


def pid_from_wire(value: Any) -> Pid:
    node, serial, creation = value
    if node.__class__ is not str or serial.__class__ is not int or creation.__class__ is not int:
        raise ValueError(f"not a pid: {value!r}")
    return Pid(node, serial, creation)


def pid_to_wire(pid: Pid) -> list[Any]:
    return [pid.node, pid.serial, pid.creation]


def token_at(index: int, position: int) -> int:
    """The fencing token of the item at ``position`` of the entry at Raft ``index``."""
    return (index << TOKEN_SHIFT) | position


def index_of(token: int) -> int:
    """The Raft index of the entry that made ``token``."""
    return token >> TOKEN_SHIFT


def last_token(index: int) -> int:
    """The largest token an entry at ``index`` or before can have made."""
    return ((index + 1) << TOKEN_SHIFT) - 1


PidKey = tuple[str, int, int]


def _key(pid: Pid) -> PidKey:
    return (pid.node, pid.serial, pid.creation)


class NamesStateMachine(StateMachine):
    """See the module docstring.

    Every member applies every registration, so the apply path is kept lean: the holders
    are keyed by the pid's wire form (hashed in C) and hold one :class:`Pid` per process
    (not one per registration), and results are tuples of scalars (the replica keeps them
    for deduplication; they are no work for the garbage collector)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[Any, Entry] = {}
        self.holders: dict[PidKey, tuple[Pid, set[Any]]] = {}
        """A process (as ``(node, serial, creation)``) -> its pid and the names it holds."""
        self.listener: Callable[[Changes | None], None] | None = None
        self.applied_index = 0

    # -- commands ---------------------------------------------------------------------------

    @apply("batch")
    def batch(self, cmd: dict[str, Any]) -> list[Any]:
        items = cmd["items"]
        if len(items) > 1 << TOKEN_SHIFT:
            raise UsageError(f"a batch holds at most {1 << TOKEN_SHIFT} items, not {len(items)}")
        index = self._entry_index()
        base = index << TOKEN_SHIFT
        changes: Changes = []
        results: list[Any] = []
        append = results.append
        for position, item in enumerate(items):
            try:
                kind = item[0]
                if kind == REGISTER:
                    _, name, wire, meta = item
                    append(self._register(name, wire, meta, base | position, changes))
                elif kind == UNREGISTER:
                    append(self._drop_into([name_from_wire(item[1])], changes) == 1)
                else:
                    append(f"unknown item kind {kind!r}")
            except (ValueError, TypeError, IndexError) as exc:  # before any change it makes
                append(f"{type(exc).__name__}: {exc}")
        if changes and self.listener is not None:
            self.listener(changes)
        return results

    @apply("register")
    def register(self, cmd: dict[str, Any]) -> tuple[Any, ...]:
        changes: Changes = []
        result = self._register(
            cmd["name"], cmd["pid"], cmd.get("meta"), self._entry_index(), changes
        )
        if changes and self.listener is not None:
            self.listener(changes)
        return ("ok", result) if result.__class__ is int else ("taken", result)

    @apply("unregister")
    def unregister(self, cmd: dict[str, Any]) -> bool:
        return self._drop([name_from_wire(cmd["name"])]) == 1

    @apply("release")
    def release(self, cmd: dict[str, Any]) -> int:
        doomed: list[Any] = []
        for value in cmd["pids"]:
            holder = self.holders.get(_key(pid_from_wire(value)))
            if holder is not None:
                doomed.extend(holder[1])
        return self._drop(doomed)

    @apply("release_node")
    def release_node(self, cmd: dict[str, Any]) -> int:
        node, upto = cmd["node"], cmd["upto"]
        doomed = [
            name
            for (n, _, _), (_, names) in self.holders.items()
            if n == node
            for name in names
            if self.names[name][2] <= upto
        ]
        return self._drop(doomed)

    @apply("release_stale")
    def release_stale(self, cmd: dict[str, Any]) -> int:
        node, creation = cmd["node"], cmd["creation"]
        doomed = [
            name
            for (n, _, c), (_, names) in self.holders.items()
            if n == node and c != creation
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
        self.holders = {}
        for wire_name, wire_pid, meta, token in msgpack.unpackb(data, strict_map_key=False):
            pid = pid_from_wire(wire_pid)
            holder = self.holders.get(_key(pid))
            if holder is None:
                holder = self.holders[_key(pid)] = (pid, set())
            name = name_from_wire(wire_name)
            self.names[name] = (holder[0], meta, token)
            holder[1].add(name)
        if self.listener is not None:
            self.listener(None)

    def nodes(self) -> set[str]:
        """The nodes whose processes hold names."""
        return {node for node, _, _ in self.holders}

    # -- helpers ----------------------------------------------------------------------------

    def _entry_index(self) -> int:
        index = self.index or self.applied_index + 1
        self.applied_index = max(self.applied_index, index)
        return index

    def _register(self, wire_name: Any, wire: Any, meta: Any, token: int, changes: Changes) -> Any:
        """Register ``wire`` (a pid) under ``wire_name`` with ``token``: the token (or the
        first one, for the same pid again), or the holder's pid on the wire (taken). Raises
        before changing anything if the name or the pid is malformed."""
        name = name_from_wire(wire_name)
        key = (wire[0], wire[1], wire[2]) if len(wire) == 3 else None
        holder = self.holders.get(key) if key is not None else None
        pid = holder[0] if holder is not None else pid_from_wire(wire)
        held = self.names.get(name)
        if held is not None:
            if held[0] == pid:
                return held[2]
            return pid_to_wire(held[0])
        entry = (pid, meta, token)
        self.names[name] = entry
        if holder is None:
            self.holders[_key(pid)] = (pid, {name})
        else:
            holder[1].add(name)
        changes.append((name, None, entry))
        return token

    def _drop(self, names: list[Any]) -> int:
        changes: Changes = []
        dropped = self._drop_into(names, changes)
        if changes and self.listener is not None:
            self.listener(changes)
        return dropped

    def _drop_into(self, names: list[Any], changes: Changes) -> int:
        """Drop ``names`` (those registered), adding their changes to ``changes``: how many."""
        dropped = 0
        for name in dict.fromkeys(names):
            old = self.names.pop(name, None)
            if old is None:
                continue
            key = _key(old[0])
            holder = self.holders.get(key)
            if holder is not None:
                holder[1].discard(name)
                if not holder[1]:
                    del self.holders[key]
            changes.append((name, old, None))
            dropped += 1
        return dropped
