"""One :class:`RaftHost` per node: it owns the node's Raft members (of any number of groups),
routes their messages (between members of this node directly, to other nodes on the transport's
RAFT channel with the group in the payload), serves the requests of ``Cluster`` handles, and
restarts at node start the members it finds under ``data_dir/raft``.

Member ids are node names (one member of a group per node), or ``node#k`` for several members of
one group on one node (``Cluster.start(nodes=3)``); the part before ``#`` says where it runs.

The RAFT channel payload is a msgpack array: ``[0, group, message]`` (a Raft message in its wire
form), ``[1, call id, op, args]`` (a request) or ``[2, call id, failed, value]`` (its reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, UsageError
from .._services import send_to_node
from .._tasks import OwnedTasks
from ..transport._errors import UnsendableError
from ..transport._frame import Channel
from ..transport._queue import FrameTooLarge
from ._cluster_config import ClusterConfig
from ._cluster_errors import (
    ChangePending,
    ClusterError,
    CommandFailed,
    CommandTooLarge,
    GroupExists,
    NodeUnreachable,
    NoLeader,
    NotLeader,
    OutcomeUnknown,
    ReadTimeout,
    RequestTimeout,
    UnknownGroup,
    WriteTimeout,
)
from ._errors import RaftUsageError
from ._faultydisk import faulty_disk
from ._memory import MemoryStorage
from ._messages import ConfChange, Message, Role, decode_message, encode_message
from ._pack import pack
from ._rawnode import RawNode
from ._replica import Replica, Session, encode_command
from ._shell import RaftMember
from ._state_machine import resolve_state_machine
from ._store import DurableStorage
from ._types import ConfState, LogStorage

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["PeerLost", "RaftHost", "node_of"]

log = logging.getLogger("ember.consensus")

_MSG, _REQ, _REP = 0, 1, 2
_META = "member.json"
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_FAILED_KINDS = frozenset(("failed", "left", "reaped"))
_ERRORS: dict[str, type[EmberError]] = {
    c.__name__: c
    for c in (
        ChangePending,
        ClusterError,
        CommandFailed,
        CommandTooLarge,
        GroupExists,
        NoLeader,
        NodeUnreachable,
        NotLeader,
        OutcomeUnknown,
        ReadTimeout,
        RequestTimeout,
        UnknownGroup,
        UsageError,
        WriteTimeout,
    )
}
"""The errors that travel between hosts with their type and fields (``__reduce__``)."""
_FRAME_MARGIN = 1 << 20
"""Room in a frame beyond an append's entry data: per-entry fields (a batch of small entries
adds about 20 bytes each) and the message's own."""
_TIMEOUT = "Timeout"  # the serving side ran out of the caller's time: the caller says what


class PeerLost(ClusterError):
    """A request could not be sent to a node, or its connection was lost before the reply."""

    def __init__(self, node: str, sent: bool) -> None:
        super().__init__(f"node {node} {'lost before replying' if sent else 'unreachable'}")
        self.node = node
        self.sent = sent


def node_of(member: str) -> str:
    """The node a member runs on."""
    return member.partition("#")[0]


def _session(value: list[Any]) -> Session:
    """A write's session off the wire, checked: it lands in every member's replicated state."""
    match value:
        case [str(client), str(stream), str(request), None | int() as seq, int(mark)] if (
            not isinstance(seq, bool) and not isinstance(mark, bool)
        ):
            return (client, stream, request, seq, mark)
    raise UsageError(f"malformed write session {value!r}")


def check_group_name(name: str) -> str:
    if not isinstance(name, str) or not _GROUP_NAME.match(name):
        raise UsageError(f"a group name is 1-100 of [A-Za-z0-9_.-], not {name!r}")
    return name


def _encode_error(exc: BaseException) -> list[Any]:
    """``[type name, *constructor arguments]``: what :func:`_decode_error` rebuilds."""
    if isinstance(exc, RaftUsageError):
        return ["UsageError", str(exc)]
    if type(exc).__name__ in _ERRORS:
        return [type(exc).__name__, *exc.__reduce__()[1]]
    if isinstance(exc, TimeoutError):
        return [_TIMEOUT, str(exc)]
    log.error("raft: a request failed unexpectedly", exc_info=exc)
    return ["ClusterError", f"{type(exc).__name__} on the serving node: {exc}"]


def _decode_error(value: list[Any]) -> BaseException:
    kind, *args = value
    if kind == _TIMEOUT:
        return TimeoutError(*args)
    cls = _ERRORS.get(kind)
    if cls is None:
        return ClusterError(f"{kind}: {args}")
    try:
        return cls(*args)
    except TypeError:  # a peer of another version, or a broken one
        return ClusterError(f"{kind}: {args}")


class _Call:
    __slots__ = ("fut", "grace", "node", "was_connected")

    def __init__(self, fut: asyncio.Future[Any], node: str, connected: bool):
        self.fut = fut
        self.node = node
        self.was_connected = connected
        self.grace: asyncio.TimerHandle | None = None


class RaftHost:
    """The Raft members of ``node`` and their traffic. Created by the node; ``start`` after the
    transport, ``stop`` before the kernel."""

    CONNECT_GRACE = 2.0
    """A request to a node never connected since it was sent fails (``PeerLost``) after this."""

    def __init__(self, node: ServiceNode) -> None:
        self.node = node
        self.name = node.name
        self.members: dict[tuple[str, str], RaftMember] = {}
        self.failed_nodes: set[str] = set()
        self.stopped_members: set[str] = set()
        self._stopped: set[tuple[str, str]] = set()  # (group, member) stopped here, data kept
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._tasks = OwnedTasks(log, "raft host task")
        self._unlisten: Callable[[], None] | None = None
        self._lost: set[str] = set()
        """Nodes whose connection dropped and is not back: requests to them fail at once
        (``PeerLost``, not sent) while a background dial tries to reach them again."""
        self._redials: dict[str, asyncio.Task[Any]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._rng = random.Random(node.rng.getrandbits(64))
        self.started = False

    def unique_id(self, bits: int) -> str:
        """A random hex id of ``bits`` bits from the node's seeded randomness (so a simulated
        run replays; from the OS otherwise)."""
        return f"{self._rng.getrandbits(bits):0{(bits + 3) // 4}x}"

    @property
    def root(self) -> Path | None:
        """Where members keep their data: ``data_dir/raft`` (None: in memory only)."""
        return self.node.data_dir / "raft" if self.node.data_dir is not None else None

    # --- life cycle ---

    async def start(self) -> None:
        """Listen on the RAFT channel and restart the members found on disk."""
        self.started = True
        if self.node.dist is not None:
            self.node.dist.add_channel_handler(Channel.RAFT, self._on_frame)
            self._unlisten = self.node.dist.add_node_listener(self._on_node)
        if self.node.mesh is not None:
            self._unsubscribe = self.node.on_member_event(self._on_member_event)
        root = self.root
        if root is not None and root.is_dir():
            for meta_file in sorted(root.glob(f"*/{_META}")):
                try:
                    meta = json.loads(meta_file.read_text())
                    self._open_member(meta, meta_file.parent, bootstrap=None)
                except Exception:
                    log.exception("cannot restart the raft member in %s", meta_file.parent)

    async def stop(self) -> None:
        """Stop every member (their state stays on disk) and fail the requests in flight."""
        self.started = False
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._unlisten is not None:
            self._unlisten()
        if self.node.dist is not None:
            self.node.dist.remove_channel_handler(Channel.RAFT)
        await self._tasks.cancel_all()
        for call in self._calls.values():
            if not call.fut.done():
                call.fut.set_exception(PeerLost(call.node, True))
        self._calls.clear()
        members = list(self.members.values())
        self.members.clear()
        await asyncio.gather(*(m.stop() for m in members), return_exceptions=True)

    # --- members ---

    def _is_failed(self, member: str) -> bool:
        return node_of(member) in self.failed_nodes or member in self.stopped_members

    def _on_member_event(self, event: Any) -> None:
        name = event.member.name
        if event.kind in _FAILED_KINDS:
            self.failed_nodes.add(name)
        elif event.kind in ("joined", "alive"):
            self.failed_nodes.discard(name)

    def create_member(self, meta: dict[str, Any], bootstrap: ConfState | None) -> RaftMember:
        """Start member ``meta["member"]`` of group ``meta["group"]`` on this node (a no-op if
        it runs already). ``meta`` also holds the state machine reference ``"ref"``, the
        ``"config"`` and ``"durable"``; it is kept with the member's data so a restarted node
        resumes it. ``bootstrap``: the founding membership of a new group (None: join empty,
        the leader sends the log)."""
        group = check_group_name(meta["group"])
        member = meta["member"]
        if node_of(member) != self.name:
            raise UsageError(f"member {member!r} does not belong on node {self.name}")
        existing = self.members.get((group, member))
        if existing is not None and existing.running:
            self._check_same(existing.meta, meta)  # type: ignore[attr-defined]
            return existing
        self._check_fits(group, ClusterConfig.from_dict(meta.get("config", {})))
        path: Path | None = None
        meta = dict(meta)
        if meta.get("durable") == "auto":
            meta["durable"] = self.root is not None
        if meta.get("durable"):
            root = self.root
            if root is None:
                raise UsageError(f"node {self.name} has no data_dir for a durable group")
            suffix = member.partition("#")[2]
            path = root / (f"{group}#{suffix}" if suffix else group)
            if (path / _META).exists():  # a stopped member: it resumes as it was made
                self._check_same(json.loads((path / _META).read_text()), meta)
        return self._open_member(meta, path, bootstrap)

    def _check_same(self, held: dict[str, Any], asked: dict[str, Any]) -> None:
        """A second ``create`` of a member must ask for what it holds (:class:`GroupExists`)."""
        group = held["group"]
        if held["ref"] != asked["ref"]:
            detail = f"state machine {held['ref']} (asked for {asked['ref']})"
            raise GroupExists(group, self.name, detail)
        have = ClusterConfig.from_dict(held.get("config", {}))
        want = ClusterConfig.from_dict(asked.get("config", {}))
        if have != want:
            diff = ", ".join(
                f"{k}={v!r} (asked for {want.as_dict()[k]!r})"
                for k, v in have.as_dict().items()
                if want.as_dict()[k] != v
            )
            raise GroupExists(group, self.name, f"another configuration: {diff}")

    def _disk_gate(self) -> Callable[[], Awaitable[None]] | None:
        """On a node started for chaos, every save asks its fault hook for a slow or failing
        disk first; elsewhere nothing does."""
        faults = getattr(self.node.transport, "faults", None)
        if faults is None or not faults.enabled:
            return None
        return faulty_disk(faults.disk)

    def _check_fits(self, group: str, config: ClusterConfig) -> None:
        """The largest append (a full message plus one command) must fit in a frame here."""
        limit = getattr(getattr(self.node.transport, "config", None), "max_frame_size", None)
        batch = config.raft_config(group).max_size_per_msg
        need = max(config.max_command_bytes, batch) + _FRAME_MARGIN
        if limit is not None and need > limit:
            raise UsageError(
                f"group {group}: an append of up to {max(config.max_command_bytes, batch):,} "
                f"bytes (max_command_bytes, or a batch) and its framing do not fit node "
                f"{self.name}'s max_frame_size ({limit:,} bytes)"
            )

    def _open_member(
        self, meta: dict[str, Any], path: Path | None, bootstrap: ConfState | None
    ) -> RaftMember:
        group, member_id = meta["group"], meta["member"]
        sm_class = resolve_state_machine(
            meta["ref"], self.node.dist.spawn_allow if self.node.dist else None
        )
        config = ClusterConfig.from_dict(meta.get("config", {}))
        storage: LogStorage
        if path is None:
            storage = MemoryStorage()
        else:
            fresh = not (path / _META).exists()
            storage = DurableStorage(path)
            if fresh:
                tmp = path / (_META + ".tmp")
                tmp.write_text(json.dumps(meta))
                os.replace(tmp, path / _META)
        if bootstrap is not None and storage.last_index() == 0:
            RawNode.bootstrap(storage, bootstrap)
        replica = Replica(sm_class(), config.session_limit)
        member = RaftMember(
            group,
            member_id,
            storage,
            replica,
            config=config,
            send=self._sender(group),
            save_in_thread=path is not None,
            crowded=functools.partial(self._crowded, group),
            rng=random.Random(self._rng.getrandbits(64)),
            on_conf=self._on_conf,
            is_failed=self._is_failed,
        )
        member.save_gate = self._disk_gate()
        member.path = path  # type: ignore[attr-defined]
        member.meta = meta  # type: ignore[attr-defined]
        self.members[(group, member_id)] = member
        self.stopped_members.discard(member_id)
        self._stopped.discard((group, member_id))
        self.node.kernel.in_context(member.start)
        return member

    def _crowded(self, group: str) -> bool:
        """Whether this node runs more than one member of ``group``."""
        return sum(g == group for g, _ in self.members) > 1

    def _on_conf(self, member: RaftMember, change: ConfChange) -> None:
        if change.op == "remove" and change.node == member.id:
            self._tasks.spawn(self.destroy_member(member.group, member.id))

    async def stop_member(self, group: str, member_id: str) -> None:
        """Stop a member (as if its node crashed cleanly); its data stays."""
        member = self.members.pop((group, member_id), None)
        if member is not None:
            self.stopped_members.add(member_id)
            self._stopped.add((group, member_id))
            await member.stop()

    async def restart_member(self, group: str, member_id: str) -> RaftMember:
        """Restart a stopped member from its storage (durable groups only)."""
        for (g, m), member in self.members.items():
            if (g, m) == (group, member_id):
                return member
        root = self.root
        if root is None:
            raise UsageError("restarting a member needs durable storage (a data_dir)")
        suffix = member_id.partition("#")[2]
        path = root / (f"{group}#{suffix}" if suffix else group)
        if not (path / _META).is_file():
            raise UnknownGroup(group, [self.name])
        meta = json.loads((path / _META).read_text())
        return self._open_member(meta, path, None)

    async def destroy_member(self, group: str, member_id: str) -> None:
        """Stop a member and delete its data (it was removed from its group)."""
        member = self.members.pop((group, member_id), None)
        if member is None:
            return
        await member.stop()
        path: Path | None = getattr(member, "path", None)
        if path is not None:
            await asyncio.to_thread(shutil.rmtree, path, True)

    def local_member(self, group: str, member_id: str | None = None) -> RaftMember:
        """The running member ``member_id`` of ``group`` here (any, leader first, if None).
        :class:`UnknownGroup` if this node holds no such member, :class:`NoLeader` if it is
        stopped."""
        if member_id is not None:
            m = self.members.get((group, member_id))
            if m is not None and m.running:
                return m
            if m is not None or (group, member_id) in self._stopped:
                raise NoLeader(f"member {member_id} of {group} on {self.name} is not running")
            raise UnknownGroup(group, [self.name])
        here = [m for (g, _), m in self.members.items() if g == group]
        running = [m for m in here if m.running]
        if not running:
            if here or any(g == group for g, _ in self._stopped):
                raise NoLeader(f"no running member of {group} on {self.name}")
            raise UnknownGroup(group, [self.name])
        return next((m for m in running if m.role == Role.LEADER), running[0])

    # --- routing ---

    def _sender(self, group: str) -> Callable[[Message], None]:
        loop = asyncio.get_running_loop()

        def send(msg: Message) -> None:
            dest = node_of(msg.to)
            if dest == self.name:
                member = self.members.get((group, msg.to))
                if member is None:
                    raise NoLeader(f"no member {msg.to}")
                loop.call_soon(member.step, msg)
                return
            self._send_frame(dest, msgpack.packb((_MSG, group, encode_message(msg))))

        return send

    def _send_frame(self, peer: str, payload: bytes) -> None:
        """Queue ``payload`` for ``peer`` on the RAFT channel."""
        send_to_node(self.node, peer, Channel.RAFT, payload)

    def _on_frame(self, peer: str, payload: bytes) -> None:
        frame = msgpack.unpackb(payload, strict_map_key=False)
        kind = frame[0]
        if kind == _MSG:
            msg = decode_message(frame[2])
            member = self.members.get((frame[1], msg.to))
            if member is not None:
                member.step(msg)
        elif kind == _REQ:
            _, call_id, op, args, timeout = frame
            self._tasks.spawn(self._serve(peer, call_id, op, args, timeout))
        elif kind == _REP:
            _, call_id, failed, value = frame
            call = self._calls.pop(call_id, None)
            if call is not None and not call.fut.done():
                if failed:
                    call.fut.set_exception(_decode_error(value))
                else:
                    call.fut.set_result(value)

    async def _serve(
        self, peer: str, call_id: int, op: str, args: list[Any], within: float
    ) -> None:
        try:
            async with asyncio.timeout(within):
                value, failed = await self.handle(op, args), False
        except Exception as exc:  # every failure travels back to the caller
            value, failed = _encode_error(exc), True
        try:
            payload = pack((_REP, call_id, failed, value))
        except UnsendableError as exc:  # a state machine's read returned something odd
            payload = pack((_REP, call_id, True, ["UsageError", f"{op}: the result: {exc}"]))
        try:
            try:
                self._send_frame(peer, payload)
            except FrameTooLarge as exc:
                error = ["UsageError", f"{op}: the result of {len(payload):,} bytes: {exc}"]
                self._send_frame(peer, pack((_REP, call_id, True, error)))
        except EmberError as exc:
            log.warning("raft: cannot reply to %s: %r", peer, exc)

    async def call(self, node: str, op: str, args: list[Any], within: float) -> Any:
        """Run request ``op`` on ``node``'s host (this one directly) within ``within``
        seconds (``TimeoutError`` after). Raises ``PeerLost`` when it could not be sent or the
        connection went down before the reply."""
        async with asyncio.timeout(within):
            return await self._call(node, op, args, within)

    async def _call(self, node: str, op: str, args: list[Any], within: float) -> Any:
        if node == self.name:
            return await self.handle(op, args)
        transport = self.node.transport
        if transport is None:
            raise UsageError(f"node {self.name} is not networked: cannot reach {node}")
        loop = asyncio.get_running_loop()
        if not self.is_reachable(node):
            self._redial(node)
            raise PeerLost(node, False)
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = loop.create_future()
        payload = pack((_REQ, call_id, op, args, within))
        try:
            self._send_frame(node, payload)
        except FrameTooLarge as exc:
            raise CommandTooLarge(
                len(payload), exc.limit, "the transport's max_frame_size"
            ) from exc
        except EmberError as exc:
            raise PeerLost(node, False) from exc
        call = self._calls[call_id] = _Call(fut, node, transport.is_connected(node))
        if not call.was_connected:
            call.grace = loop.call_later(self.CONNECT_GRACE, self._grace_over, call_id)
        try:
            return await fut
        finally:
            self._calls.pop(call_id, None)
            if call.grace is not None:
                call.grace.cancel()

    def is_reachable(self, node: str) -> bool:
        """False for a node whose connection dropped and is not back yet (a node never
        connected counts as reachable: the transport dials it on demand)."""
        transport = self.node.transport
        if node == self.name or transport is None or transport.is_connected(node):
            return True
        return node not in self._lost

    def _redial(self, node: str) -> None:
        transport = self.node.transport
        if transport is None or node in self._redials:
            return

        async def dial() -> None:
            with contextlib.suppress(EmberError, OSError, TimeoutError):
                async with asyncio.timeout(self.CONNECT_GRACE):
                    await transport.connect(node)

        task = self._tasks.spawn(dial())
        self._redials[node] = task
        task.add_done_callback(lambda _t: self._redials.pop(node, None))

    def _on_node(self, node: str, up: bool) -> None:
        """A connection opened or ended: requests waiting on a lost node fail at once."""
        if up:
            self._lost.discard(node)
            for call in self._calls.values():
                if call.node == node:
                    call.was_connected = True
            return
        self._lost.add(node)
        for call_id, call in list(self._calls.items()):
            if call.node == node:
                self._fail(call_id, call)

    def _grace_over(self, call_id: int) -> None:
        """A request to a node that never connected since it was sent fails now."""
        call = self._calls.get(call_id)
        if call is not None and not call.was_connected:
            self._fail(call_id, call)

    def _fail(self, call_id: int, call: _Call) -> None:
        del self._calls[call_id]
        if not call.fut.done():
            call.fut.set_exception(PeerLost(call.node, True))

    # --- requests (served here for local and remote callers) ---

    async def handle(self, op: str, args: list[Any]) -> Any:
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise UsageError(f"unknown raft request {op!r}")
        return await handler(*args)

    async def _op_create(
        self, meta: dict[str, Any], voters: list[str] | None, learners: list[str]
    ) -> None:
        conf = ConfState(tuple(voters), tuple(learners)) if voters is not None else None
        self.create_member(meta, conf)

    async def _op_write(  # noqa: PLR0917 - positional: the arguments come off the wire
        self,
        group: str,
        target: str | None,
        session: list[Any] | None,
        command: Any,
        forwarded: bool,
        leader_wait: float,
    ) -> list[Any]:
        """Propose on the leader; a follower forwards once. Returns ``[leader, ok, value]``.
        Waits up to ``leader_wait`` seconds for a leader (then :class:`NoLeader`). ``session``
        is a :data:`Session` as a list (or None)."""
        member = self.local_member(group, target)
        if member.role != Role.LEADER:
            leader = member.leader
            if leader is None:
                try:
                    async with asyncio.timeout(leader_wait):
                        leader = await member.wait_for_leader()
                except TimeoutError:
                    raise NoLeader(
                        f"{member.id} knew no leader of {group} (waited {leader_wait:.3g} s)"
                    ) from None
            if leader != member.id:
                if node_of(leader) == self.name:
                    member = self.local_member(group, leader)
                elif forwarded:
                    raise NotLeader(leader)
                elif not self.is_reachable(node_of(leader)):
                    raise NoLeader(f"leader {leader} of {group} is unreachable")
                else:
                    try:
                        reply: list[Any] = await self._call(
                            node_of(leader),
                            "write",
                            [group, leader, session, command, True, 0.0],
                            60.0,
                        )
                    except PeerLost as exc:
                        if exc.sent:
                            request = None if session is None else session[2]
                            raise OutcomeUnknown(request, str(exc)) from exc
                        raise NoLeader(str(exc)) from exc
                    return reply
        entry = encode_command(None if session is None else _session(session), command)
        limit = member.config.max_command_bytes
        if len(entry) > limit:
            raise CommandTooLarge(len(entry), limit)
        attrs = {"ember.raft.group": group, "ember.raft.member": member.id}
        with self.node.tracing.span("raft.propose", attrs):  # propose to apply
            ok, value = await member.propose(entry)
        return [member.id, ok, value]

    async def _op_read(self, group: str, target: str | None, key: Any, consistency: str) -> Any:
        member = self.local_member(group, target)
        if consistency == "lease" and not member.config.lease_reads:
            raise UsageError(f"group {group} is not configured for lease reads (lease_reads)")
        if consistency != "stale":
            await member.read_index()
        return member.replica.state_machine.read(key)

    async def _op_confirm(self, group: str, target: str | None) -> None:
        await self.local_member(group, target).read_index()

    async def _op_leads(self, group: str, target: str) -> int:
        """Confirm, with a quorum, that ``target`` leads (``NotLeader`` if not); its term."""
        member = self.local_member(group, target)
        if member.role != Role.LEADER:
            raise NotLeader(member.leader)
        await member.read_index()
        if member.role != Role.LEADER:  # it lost the lead while confirming
            raise NotLeader(member.leader)
        return member.node.term

    async def _op_status(self, group: str, target: str | None) -> dict[str, Any]:
        member = self.local_member(group, target)
        return {**member.status(), "max_voters": member.config.max_voters}

    async def _op_snapshot(self, group: str, target: str | None) -> bytes:
        return self.local_member(group, target).replica.state_machine.snapshot()

    async def _op_leader(self, group: str, target: str | None) -> str:
        return await self.local_member(group, target).wait_for_leader()

    async def _op_conf(self, group: str, target: str | None, op: str, member: str) -> None:
        await self.local_member(group, target).propose_conf_change(ConfChange(op, member))  # type: ignore[arg-type]

    async def _op_transfer(self, group: str, target: str | None, to: str) -> None:
        self.local_member(group, target).transfer_leadership(to)

    async def _op_meta(self, group: str, target: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = self.local_member(group, target).meta  # type: ignore[attr-defined]
        return meta

    async def _op_restart(self, group: str, target: str) -> None:
        await self.restart_member(group, target)

    async def _op_stop(self, group: str, target: str | None) -> None:
        for g, m in list(self.members):
            if g == group and (target is None or m == target):
                await self.stop_member(g, m)
