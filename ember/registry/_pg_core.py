"""The state of one ``pg`` scope on one node, as OTP's ``pg.erl`` keeps it: a pure state machine.

Each method is one of ``pg.erl``'s handlers (a local join or leave, a remote join, leave,
discover or sync, a local member's exit, a peer scope going down, a node coming up) and
leaves what must happen in :attr:`PgCore.effects`: messages to peer scopes, notifications to
monitoring processes, and local processes to start or stop watching. The shell performs them.
No clock, no I/O, no randomness.

Member lists keep OTP's order: a join puts its pids in front (``Pids ++ All``), a leave removes
the first occurrence of each pid (``All -- Pids``), so ``get_members`` returns what OTP's does.

Peers are ``(node, instance)``: one incarnation of a scope on another node, as OTP's peer is the
remote scope's pid. Messages between scopes are tuples: ``("discover",)``, ``("sync", groups)``
(``groups`` a list of ``(group, pids)``), ``("join", group, pids)``, ``("leave", pids, groups)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..actors import Pid, Ref

__all__ = ["GroupEvent", "Notify", "Peer", "PgCore", "Send", "Unwatch", "Watch"]

Peer = tuple[str, int]
"""A peer scope: its node and the instance number it started with."""


@dataclass(frozen=True, slots=True)
class GroupEvent:
    """What a process that called ``monitor_scope`` or ``monitor(group)`` receives for each
    join or leave: OTP's ``{Ref, join | leave, Group, Pids}``, with the pids of that one
    operation (a pid that joined twice appears twice)."""

    ref: Ref
    action: Literal["join", "leave"]
    group: Any
    pids: tuple[Pid, ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to each of ``peers``."""

    peers: tuple[Peer, ...]
    message: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    """Deliver ``event`` to the local process ``pid``."""

    pid: Pid
    event: GroupEvent


@dataclass(frozen=True, slots=True)
class Watch:
    """Start watching local process ``pid``: report its exit with :meth:`PgCore.local_exit`."""

    pid: Pid


@dataclass(frozen=True, slots=True)
class Unwatch:
    """Stop watching local process ``pid``."""

    pid: Pid


Effect = Send | Notify | Watch | Unwatch


class _Group:
    """One row of OTP's table: every member and the local ones, newest first."""

    __slots__ = ("all", "local")

    def __init__(self, all_: list[Pid], local: list[Pid]) -> None:
        self.all = all_
        self.local = local


def _minus(items: list[Pid], remove: list[Pid] | tuple[Pid, ...]) -> list[Pid]:
    """Erlang's ``A -- B``: ``A`` without the first occurrence of each element of ``B``."""
    out = list(items)
    for pid in remove:
        try:
            out.remove(pid)
        except ValueError:
            pass
    return out


class PgCore:
    """One scope's view on one node (see the module docstring)."""

    def __init__(self) -> None:
        self.groups: dict[Any, _Group] = {}
        """Every known group: OTP's ETS table."""
        self.local: dict[Pid, dict[Any, int]] = {}
        """Local members -> the groups they joined (first joins first) and how many times."""
        self.remote: dict[Peer, dict[Any, list[Pid]]] = {}
        """Known peer scopes -> the groups and pids each reported."""
        self.scope_monitors: dict[Ref, Pid] = {}
        self.group_monitors: dict[Ref, tuple[Pid, Any]] = {}
        self.monitored_groups: dict[Any, list[tuple[Pid, Ref]]] = {}
        self.effects: list[Effect] = []

    # -- reads ------------------------------------------------------------------------------

    def get_members(self, group: Any) -> list[Pid]:
        row = self.groups.get(group)
        return list(row.all) if row is not None else []

    def get_local_members(self, group: Any) -> list[Pid]:
        row = self.groups.get(group)
        return list(row.local) if row is not None else []

    def which_groups(self) -> list[Any]:
        return list(self.groups)

    def which_local_groups(self) -> list[Any]:
        return [g for g, row in self.groups.items() if row.local]

    def take_effects(self) -> list[Effect]:
        out, self.effects = self.effects, []
        return out

    # -- local operations -------------------------------------------------------------------

    def join_local(self, group: Any, pids: list[Pid]) -> None:
        """``pg:join``: every pid (local, possibly repeated) joins ``group`` once more."""
        local = self.local
        for pid in pids:
            groups = local.get(pid)
            if groups is None:
                local[pid] = {group: 1}
                self.effects.append(Watch(pid))
            else:
                groups[group] = groups.get(group, 0) + 1
        row = self.groups.get(group)
        if row is None:
            self.groups[group] = _Group(list(pids), list(pids))
        else:
            row.all = pids + row.all
            row.local = pids + row.local
        self._notify("join", group, pids)
        self._broadcast(("join", group, pids))

    def leave_local(self, group: Any, pids: list[Pid]) -> bool:
        """``pg:leave``: False (OTP's ``not_joined``) if none of ``pids`` was a member, and
        nothing changes; else each pid leaves once and True."""
        changed = False
        local = self.local
        for pid in pids:
            groups = local.get(pid)
            if groups is None:
                continue
            count = groups.get(group)
            if count is None:
                continue
            changed = True
            if count > 1:
                groups[group] = count - 1
            elif len(groups) > 1:
                del groups[group]
            else:
                del local[pid]
                self.effects.append(Unwatch(pid))
        if not changed:
            return False
        self._leave_rows(group, pids, local=True)
        self._broadcast(("leave", pids, [group]))
        return True

    def local_exit(self, pid: Pid) -> None:
        """A watched local member exited: it leaves every group, once per occurrence (the
        groups it joined last first)."""
        joined = self.local.pop(pid, None)
        if joined is None:
            return  # it left meanwhile
        groups = [g for g, n in reversed(joined.items()) for _ in range(n)]
        for group in groups:
            self._leave_rows(group, [pid], local=True)
        self._broadcast(("leave", [pid], groups))

    # -- monitors ---------------------------------------------------------------------------

    def monitor_scope(self, pid: Pid, ref: Ref) -> dict[Any, list[Pid]]:
        """``pg:monitor_scope``: every group with all its members; then events to ``pid``."""
        self.scope_monitors[ref] = pid
        return {g: list(row.all) for g, row in self.groups.items()}

    def monitor_group(self, pid: Pid, ref: Ref, group: Any) -> list[Pid]:
        """``pg:monitor(Group)``: its members; then events about it to ``pid``."""
        self.group_monitors[ref] = (pid, group)
        self.monitored_groups.setdefault(group, []).insert(0, (pid, ref))
        return self.get_members(group)

    def demonitor(self, ref: Ref) -> bool:
        """Remove a scope or group monitor; False if ``ref`` is none of them."""
        if self.scope_monitors.pop(ref, None) is not None:
            return True
        entry = self.group_monitors.pop(ref, None)
        if entry is None:
            return False
        pid, group = entry
        tags = self.monitored_groups[group]
        tags.remove((pid, ref))
        if not tags:
            del self.monitored_groups[group]
        return True

    # -- peers ------------------------------------------------------------------------------

    def discover_all(self, peers: tuple[Peer, ...]) -> None:
        """At start, ask every node's scope to discover us (``peers`` as ``(node, 0)``)."""
        if peers:
            self.effects.append(Send(peers, ("discover",)))

    def node_up(self, node: str) -> None:
        """A node connected: ask its scope, if it runs one, to discover us."""
        self.effects.append(Send(((node, 0),), ("discover",)))

    def handle(self, peer: Peer, message: tuple[Any, ...]) -> None:
        """A message from a peer scope (malformed ones raise ``ValueError``)."""
        kind = message[0]
        if kind == "join":
            _, group, pids = message
            self._remote_join(peer, group, list(pids))
        elif kind == "leave":
            _, pids, groups = message
            self._remote_leave(peer, list(pids), list(groups))
        elif kind == "discover":
            self._discover(peer)
        elif kind == "sync":
            self._sync(peer, [(g, list(p)) for g, p in message[1]])
        else:
            raise ValueError(f"unknown pg message {kind!r}")

    def peer_down(self, peer: Peer) -> None:
        """A peer scope stopped or its node went down: everything it reported leaves."""
        groups = self.remote.pop(peer, None)
        if groups is None:
            return
        for group, pids in groups.items():
            self._leave_rows(group, pids, local=False)

    def _discover(self, peer: Peer) -> None:
        self.effects.append(Send((peer,), ("sync", self.local_groups())))
        if peer not in self.remote:
            self.remote[peer] = {}
            self.effects.append(Send((peer,), ("discover",)))

    def local_groups(self) -> list[tuple[Any, list[Pid]]]:
        """Every group with its local members (OTP's ``all_local_pids``)."""
        out: dict[Any, list[Pid]] = {}
        for pid, groups in self.local.items():
            for group, n in groups.items():
                out.setdefault(group, []).extend([pid] * n)
        return list(out.items())

    def _remote_join(self, peer: Peer, group: Any, pids: list[Pid]) -> None:
        known = self.remote.get(peer)
        if known is None:
            return  # not (or no longer) in the overlay: ignored, as OTP does
        self._join_remote_rows(group, pids)
        known[group] = pids + known.get(group, [])

    def _remote_leave(self, peer: Peer, pids: list[Pid], groups: list[Any]) -> None:
        known = self.remote.get(peer)
        if known is None:
            return
        for group in groups:
            self._leave_rows(group, pids, local=False)
        for group in groups:
            remaining = _minus(known.get(group, []), pids)
            if remaining:
                known[group] = remaining
            else:
                known.pop(group, None)

    def _sync(self, peer: Peer, groups: list[tuple[Any, list[Pid]]]) -> None:
        """Replace what ``peer`` reported with ``groups``: groups it no longer has leave,
        new ones join (both notified); a group whose members changed is rewritten silently,
        as OTP does."""
        old = dict(self.remote.get(peer, {}))
        for group, pids in groups:
            if group not in old:
                self._join_remote_rows(group, pids)
                continue
            old_pids = old.pop(group)
            if old_pids == pids:
                continue
            row = self.groups.get(group)
            if row is not None:
                row.all = pids + _minus(row.all, old_pids)
        for group, pids in old.items():
            self._leave_rows(group, pids, local=False)
        self.remote[peer] = dict(groups)

    # -- the table --------------------------------------------------------------------------

    def _join_remote_rows(self, group: Any, pids: list[Pid]) -> None:
        row = self.groups.get(group)
        if row is None:
            self.groups[group] = _Group(list(pids), [])
        else:
            row.all = pids + row.all
        self._notify("join", group, pids)

    def _leave_rows(self, group: Any, pids: list[Pid], *, local: bool) -> None:
        row = self.groups.get(group)
        if row is None:
            return  # a late exit or leave: nothing to do, as in OTP
        remaining = _minus(row.all, pids)
        if not remaining and not (not local and row.local):
            del self.groups[group]
        else:
            row.all = remaining
            if local:
                row.local = _minus(row.local, pids)
        self._notify("leave", group, pids)

    def _notify(self, action: Literal["join", "leave"], group: Any, pids: list[Pid]) -> None:
        if not self.scope_monitors and group not in self.monitored_groups:
            return
        frozen = tuple(pids)
        effects = self.effects
        for ref, pid in self.scope_monitors.items():
            effects.append(Notify(pid, GroupEvent(ref, action, group, frozen)))
        for pid, ref in self.monitored_groups.get(group, ()):
            effects.append(Notify(pid, GroupEvent(ref, action, group, frozen)))

    def _broadcast(self, message: tuple[Any, ...]) -> None:
        if self.remote:
            self.effects.append(Send(tuple(self.remote), message))
