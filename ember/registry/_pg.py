"""``node.pg``: OTP's ``pg`` process groups across the mesh, plus ``broadcast``.

Each scope is a :class:`~ember.registry._pg_core.PgCore` (the pure state) driven here: frames
on the PG channel carry its messages between nodes, the kernel's ``watch`` reports local
members' exits, the transport's node events and the mesh's member events say when a peer
comes or goes. Operations are synchronous (the service lives on the node's loop, so each one is
serialised as OTP's scope process serialises them) and never wait on the network.

A PG frame is the msgpack array ``[scope, from instance, to instance, message]``; instance 0
addresses whatever instance of the scope runs on the receiving node (``discover``). Besides the
core's messages, ``("down",)`` says a scope stopped (OTP's DOWN of the scope process) and
``("bcast", group, message)`` asks the receiving node to deliver to its members of ``group``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, UsageError
from .._services import send_to_node
from ..actors import Pid, Ref
from ..actors._node import current_process
from ..transport._codec import Codec
from ..transport._frame import Channel
from ..transport._queue import NoRoute, QueueFull
from ._config import PgConfig, check_scope
from ._errors import NotLocal, UnknownScope
from ._name import check_global_name
from ._pg_core import GroupEvent, Notify, Peer, PgCore, Send, Unwatch, Watch

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["PgStatistics", "ProcessGroups"]

log = logging.getLogger("ember.registry.pg")

_FAILED = frozenset(("failed", "left", "reaped"))
_BACK = frozenset(("joined", "alive"))


@dataclass(slots=True)
class PgStatistics:
    """Counters of ``node.pg`` (all scopes)."""

    frames_sent: int = 0
    frames_received: int = 0
    malformed: int = 0
    """Frames that were not valid PG messages (logged and dropped)."""
    stale: int = 0
    """Frames for a scope instance that no longer runs, or a scope this node does not run."""
    unreachable: int = 0
    """Messages to a peer the transport had no route to (its view catches up on reconnect)."""
    overflows: int = 0
    """Messages a full PG queue refused; the peer then gets a full sync instead."""
    resyncs: int = 0
    """Full syncs sent after an overflow."""
    notifications: int = 0
    broadcasts: int = 0
    broadcast_deliveries: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Scope:
    __slots__ = ("core", "instance", "name", "subscribers", "watches")

    def __init__(self, name: str, instance: int) -> None:
        self.name = name
        self.instance = instance
        self.core = PgCore()
        self.watches: dict[Pid, Any] = {}
        self.subscribers: dict[Pid, tuple[Any, set[Ref]]] = {}


class ProcessGroups:
    """The node's process groups (``node.pg``), scope by scope; see ``docs/pg.md``.

    Group names are str, bytes, int or tuples of them (they travel between nodes). Pids given
    to ``join`` / ``leave`` must be processes of this node (:class:`NotLocal` otherwise).
    ``scope=None`` is the default scope (:attr:`PgConfig.default_scope`).
    """

    def __init__(self, node: ServiceNode, config: PgConfig | None = None) -> None:
        self.node = node
        self.config = config or PgConfig()
        self.stats = PgStatistics()
        self._scopes: dict[str, _Scope] = {}
        self._instances = itertools.count(1)
        self._codec = Codec()
        self._dirty: set[tuple[str, str]] = set()
        """(scope, node) whose queue overflowed: incremental messages wait for a full sync."""
        self._resync: asyncio.TimerHandle | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._started = False

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the PG channel, follow node and member events, start the scopes."""
        node = self.node
        if node.dist is not None:
            self._codec = node.dist.codec
            node.dist.add_channel_handler(Channel.PG, self._on_frame)
            self._unsubscribe.append(node.dist.add_node_listener(self._on_node))
        if node.mesh is not None:
            self._unsubscribe.append(node.on_member_event(self._on_member))
        self._started = True
        for scope in (self.config.default_scope, *self.config.scopes):
            if scope not in self._scopes:
                self.start_scope(scope)

    async def stop(self) -> None:
        """Stop every scope (peers hear that it went down)."""
        for name in list(self._scopes):
            self.stop_scope(name)
        self._started = False
        for remove in self._unsubscribe:
            remove()
        self._unsubscribe.clear()
        if self.node.dist is not None:
            self.node.dist.remove_channel_handler(Channel.PG)
        if self._resync is not None:
            self._resync.cancel()

    def start_scope(self, name: str) -> None:
        """Start scope ``name`` here (a no-op if it runs): it discovers the scopes of that name
        on the other nodes and syncs with them. Local membership does not survive a restart
        of a scope, as in OTP."""
        check_scope(name)
        if not self._started:
            raise UsageError("node.pg is not started")
        if name in self._scopes:
            return
        scope = self._scopes[name] = _Scope(name, next(self._instances))
        scope.core.discover_all(tuple((n, 0) for n in self._peers()))
        self._run(scope)

    def stop_scope(self, name: str) -> None:
        """Stop scope ``name``: its local members leave it everywhere, its peers drop it."""
        scope = self._scopes.pop(check_scope(name), None)
        if scope is None:
            raise UnknownScope(name)
        nodes = {p[0] for p in scope.core.remote} | set(self._peers())
        self._send(scope, tuple((n, 0) for n in sorted(nodes)), ("down",))
        kernel = self.node.kernel
        for handle in scope.watches.values():
            kernel.unwatch(handle)
        for handle, _refs in scope.subscribers.values():
            kernel.unwatch(handle)
        self._dirty = {d for d in self._dirty if d[0] != name}

    def scopes(self) -> list[str]:
        """The scopes running here."""
        return list(self._scopes)

    # -- the API ----------------------------------------------------------------------------

    def join(self, group: Any, pids: Pid | Iterable[Pid], scope: str | None = None) -> None:
        """Each pid (repeats allowed) joins ``group`` once more; it must leave as many times.
        Members are removed when they exit."""
        s = self._scope(scope)
        members = self._local_pids(pids)
        s.core.join_local(check_global_name(group), members)
        self._run(s)

    def leave(
        self, group: Any, pids: Pid | Iterable[Pid], scope: str | None = None
    ) -> Literal["ok", "not_joined"]:
        """Each pid leaves ``group`` once; ``"not_joined"`` (and no change) if none of them
        was a member, else ``"ok"``."""
        s = self._scope(scope)
        members = self._local_pids(pids)
        joined = s.core.leave_local(check_global_name(group), members)
        self._run(s)
        return "ok" if joined else "not_joined"

    def get_members(self, group: Any, scope: str | None = None) -> list[Pid]:
        """Every member of ``group`` known here (newest first; a pid once per join)."""
        return self._scope(scope).core.get_members(group)

    def get_local_members(self, group: Any, scope: str | None = None) -> list[Pid]:
        """The members of ``group`` that run on this node."""
        return self._scope(scope).core.get_local_members(group)

    def which_groups(self, scope: str | None = None) -> list[Any]:
        """Every group with a member known here."""
        return self._scope(scope).core.which_groups()

    def which_local_groups(self, scope: str | None = None) -> list[Any]:
        """The groups with a member on this node."""
        return self._scope(scope).core.which_local_groups()

    def monitor_scope(self, scope: str | None = None) -> tuple[Ref, dict[Any, list[Pid]]]:
        """Called from a process: every group and its members now; from then on, a
        :class:`GroupEvent` message to the caller for each join or leave in the scope."""
        s = self._scope(scope)
        me, ref = self._subscribe(s)
        return ref, s.core.monitor_scope(me, ref)

    def monitor(self, group: Any, scope: str | None = None) -> tuple[Ref, list[Pid]]:
        """Called from a process: the members of ``group`` now; from then on, a
        :class:`GroupEvent` message to the caller for each join or leave of that group."""
        s = self._scope(scope)
        group = check_global_name(group)
        me, ref = self._subscribe(s)
        return ref, s.core.monitor_group(me, ref, group)

    def demonitor(self, ref: Ref, scope: str | None = None) -> bool:
        """End a ``monitor_scope`` / ``monitor``; False if ``ref`` is not one. Called from the
        subscriber, it also drops the events of ``ref`` still in its mailbox."""
        s = self._scope(scope)
        if not s.core.demonitor(ref):
            return False
        for pid, (handle, refs) in list(s.subscribers.items()):
            if ref in refs:
                refs.discard(ref)
                if not refs:
                    del s.subscribers[pid]
                    self.node.kernel.unwatch(handle)
                break
        me = current_process.get()
        if me is not None and me._node is self.node.kernel:
            self.node.kernel.flush_messages(lambda m: m.__class__ is GroupEvent and m.ref == ref)
        return True

    def broadcast(
        self, group: Any, message: Any, scope: str | None = None, *, local_only: bool = False
    ) -> int:
        """Send ``message`` once to every member of ``group`` (each node delivers to its own
        members as it sees them when the message arrives: one frame per node, not per
        member). ``local_only``: this node's members only. Returns how many distinct members
        this node knew of. Broadcasts from one sender arrive in order; they are not ordered
        with respect to plain sends."""
        name = self.config.default_scope if scope is None else scope
        with self.node.tracing.span("pg.broadcast", {"ember.pg.scope": str(name)}):
            return self._broadcast(group, message, scope, local_only)

    def _broadcast(self, group: Any, message: Any, scope: str | None, local_only: bool) -> int:
        s = self._scope(scope)
        group = check_global_name(group)
        kernel = self.node.kernel
        here = dict.fromkeys(s.core.get_local_members(group))
        for pid in here:
            kernel.cast(pid, message)
        self.stats.broadcasts += 1
        self.stats.broadcast_deliveries += len(here)
        if local_only:
            return len(here)
        members = dict.fromkeys(s.core.get_members(group))
        nodes = {p.node for p in members if p.node != kernel.name}
        peers = tuple(p for p in s.core.remote if p[0] in nodes)
        if peers:
            self._send(s, peers, ("bcast", group, message), incremental=False)
        return len(members)

    def statistics(self) -> dict[str, Any]:
        """Counters, and per scope the groups, local members, peers and monitors."""
        out: dict[str, Any] = self.stats.as_dict()
        out["scopes"] = {
            name: {
                "groups": len(s.core.groups),
                "local_members": len(s.core.local),
                "peers": sorted(f"{n}/{i}" for n, i in s.core.remote),
                "monitors": len(s.core.scope_monitors) + len(s.core.group_monitors),
            }
            for name, s in self._scopes.items()
        }
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _scope(self, scope: str | None) -> _Scope:
        name = self.config.default_scope if scope is None else scope
        s = self._scopes.get(name)
        if s is None:
            raise UnknownScope(name)
        return s

    def _local_pids(self, pids: Pid | Iterable[Pid]) -> list[Pid]:
        kernel = self.node.kernel
        if pids.__class__ is Pid:
            items: list[Any] = [pids]
        elif isinstance(pids, list | tuple):
            items = list(pids)
        else:
            raise UsageError(f"join and leave take a pid or a list of pids, not {pids!r}")
        for pid in items:
            if (
                pid.__class__ is not Pid
                or pid.node != kernel.name
                or (pid.creation != kernel.creation)
            ):
                raise NotLocal(pid)
        return items

    def _subscribe(self, s: _Scope) -> tuple[Pid, Ref]:
        me = current_process.get()
        kernel = self.node.kernel
        if me is None or me._node is not kernel:
            raise UsageError("pg monitors must be set up from a process of this node")
        pid = me._pid
        ref = kernel.make_ref()
        entry = s.subscribers.get(pid)
        if entry is None:
            handle = kernel.watch(pid, lambda _p, _r: self._subscriber_exit(s, pid))
            entry = s.subscribers[pid] = (handle, set())
        entry[1].add(ref)
        return pid, ref

    def _subscriber_exit(self, s: _Scope, pid: Pid) -> None:
        entry = s.subscribers.pop(pid, None)
        if entry is not None:
            for ref in entry[1]:
                s.core.demonitor(ref)

    def _peers(self) -> list[str]:
        """Other nodes this node is connected to or sees alive in the mesh."""
        node = self.node
        names = set(node.transport.connected_nodes()) if node.transport is not None else set()
        names.update(m.name for m in node.members() if m.status in ("alive", "suspect"))
        names.discard(node.name)
        return sorted(names)

    def _run(self, s: _Scope) -> None:
        """Perform what the scope's core asked for."""
        kernel = self.node.kernel
        for effect in s.core.take_effects():
            cls = effect.__class__
            if cls is Notify:
                assert isinstance(effect, Notify)
                self.stats.notifications += 1
                kernel.cast(effect.pid, effect.event)
            elif cls is Send:
                assert isinstance(effect, Send)
                self._send(s, effect.peers, effect.message)
            elif cls is Watch:
                assert isinstance(effect, Watch)
                self._watch(s, effect.pid)
            elif cls is Unwatch:
                assert isinstance(effect, Unwatch)
                handle = s.watches.pop(effect.pid, None)
                if handle is not None:
                    kernel.unwatch(handle)

    def _watch(self, s: _Scope, pid: Pid) -> None:
        handle = self.node.kernel.watch(pid, lambda p, _reason: self._member_exit(s, p))
        if handle is not None:
            s.watches[pid] = handle
        else:  # it is gone already: it leaves once this join has returned, as in OTP
            asyncio.get_running_loop().call_soon(self._member_exit, s, pid)

    def _member_exit(self, s: _Scope, pid: Pid) -> None:
        s.watches.pop(pid, None)
        if self._scopes.get(s.name) is s:
            s.core.local_exit(pid)
            self._run(s)

    # -- the wire ---------------------------------------------------------------------------

    def _send(
        self,
        s: _Scope,
        peers: tuple[Peer, ...],
        message: tuple[Any, ...],
        *,
        incremental: bool = True,
    ) -> None:
        if self.node.transport is None or not peers:
            return
        body = self._codec.encode(message)
        head = b"\x94" + msgpack.packb(s.name) + msgpack.packb(s.instance)
        for node, instance in peers:
            if incremental and (s.name, node) in self._dirty:
                continue  # the full sync that is due covers it
            try:
                send_to_node(self.node, node, Channel.PG, head + msgpack.packb(instance) + body)
                self.stats.frames_sent += 1
            except QueueFull:
                self.stats.overflows += 1
                if incremental:
                    self._mark_dirty(s.name, node)
            except (NoRoute, UsageError):  # no address, or this node's transport is closing
                self.stats.unreachable += 1

    def _mark_dirty(self, scope: str, node: str) -> None:
        self._dirty.add((scope, node))
        if self._resync is None:
            loop = asyncio.get_running_loop()
            self._resync = loop.call_later(self.config.resync_interval, self._resync_dirty)

    def _resync_dirty(self) -> None:
        """Send a full sync to each peer whose queue overflowed; retry those still full."""
        self._resync = None
        for scope_name, node in sorted(self._dirty):
            self._dirty.discard((scope_name, node))
            s = self._scopes.get(scope_name)
            if s is None:
                continue
            peers = tuple(p for p in s.core.remote if p[0] == node) or ((node, 0),)
            before = self.stats.overflows
            self._send(s, peers, ("sync", s.core.local_groups()), incremental=False)
            if self.stats.overflows != before:
                self._mark_dirty(scope_name, node)
            else:
                self.stats.resyncs += 1

    def _on_frame(self, peer: str, payload: bytes) -> None:
        self.stats.frames_received += 1
        try:
            scope_name, source, target, message = self._codec.decode(payload)
            kind = message[0]
        except (EmberError, ValueError, TypeError, IndexError):
            self.stats.malformed += 1
            log.warning("pg: malformed frame from %s", peer)
            return
        s = self._scopes.get(scope_name)
        if s is None or target not in (0, s.instance):
            self.stats.stale += 1
            return
        source_peer = (peer, source)
        try:
            if kind == "down":
                s.core.peer_down(source_peer)
            elif kind == "bcast":
                _, group, msg = message
                here = dict.fromkeys(s.core.get_local_members(group))
                for pid in here:
                    self.node.kernel.cast(pid, msg)
                self.stats.broadcast_deliveries += len(here)
            else:
                s.core.handle(source_peer, tuple(message))
        except (ValueError, TypeError, KeyError):
            self.stats.malformed += 1
            log.warning("pg: bad %r message from %s", kind, peer, exc_info=True)
        self._run(s)

    def _on_node(self, peer: str, up: bool) -> None:
        if up:
            self._node_up(peer)
        else:
            self._node_down(peer)

    def _on_member(self, event: Any) -> None:
        name = event.member.name
        if name == self.node.name:
            return
        if event.kind in _FAILED:
            self._node_down(name)
        elif event.kind in _BACK:
            self._node_up(name)

    def _node_up(self, peer: str) -> None:
        for s in list(self._scopes.values()):
            s.core.node_up(peer)
            self._run(s)

    def _node_down(self, peer: str) -> None:
        self._dirty = {d for d in self._dirty if d[1] != peer}
        for s in list(self._scopes.values()):
            for p in [p for p in s.core.remote if p[0] == peer]:
                s.core.peer_down(p)
            self._run(s)
