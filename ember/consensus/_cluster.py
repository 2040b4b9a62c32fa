"""``Cluster``: a handle on one replicated group, to start it, write to it, read from it and
change its membership, from any node of the mesh."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._errors import UsageError
from ..actors._node import current_node
from ..transport._errors import UnsendableError
from ._cluster_config import DEFAULT_RETRY_WINDOW, ClusterConfig
from ._cluster_errors import (
    ClusterError,
    CommandFailed,
    CommandTooLarge,
    NodeUnreachable,
    NoLeader,
    NotLeader,
    OutcomeUnknown,
    ReadTimeout,
    RequestTimeout,
    UnknownGroup,
    WriteTimeout,
)
from ._host import PeerLost, RaftHost, check_group_name, node_of
from ._pack import pack
from ._state_machine import KVStateMachine, StateMachine, state_machine_ref
from ._watch import Deposed, LeaderWatch

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["Cluster"]

Consistency = Literal["linearizable", "lease", "stale"]
_RETRY_PAUSE = 0.05
_MIN_ATTEMPT = 0.01  # seconds: less is not worth a request


_T = TypeVar("_T")


class _Next(Exception):
    """Raised by an attempt of :meth:`Cluster._via_leader`: try the next member; ``error`` is
    the one to report if none answers in time (None: keep the previous one)."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__(error)
        self.error = error


def _unreachable(exc: PeerLost) -> NodeUnreachable:
    detail = "lost before it answered" if exc.sent else "not connected, or no address known"
    return NodeUnreachable(exc.node, detail)


def _host_of(node: ServiceNode | None) -> RaftHost:
    if node is None:
        node = current_node.get(None)  # type: ignore[assignment]
    if node is None or not hasattr(node, "service"):
        raise UsageError("no current node: pass node= or run inside 'async with ember.Node(...)'")
    host: RaftHost | None = node.service("raft")
    if host is None or not host.started:
        raise UsageError(f"node {node.name} runs no Raft host (is it started?)")
    return host


class Cluster:
    """A client handle on the Raft group ``name`` whose members are ``members``; make one with
    :meth:`start` (a new group) or :meth:`connect` (an existing one). Writes go to the member
    believed to lead and follow ``NotLeader`` hints; ``client_id`` names this handle's session
    (give the same one after a restart to retry its writes exactly once). A write whose outcome
    is unknown (:class:`OutcomeUnknown`, :class:`WriteTimeout`, cancelled) applies at most once
    if retried with its ``request_id`` within ``retry_window`` seconds; after that its session
    may be forgotten."""

    def __init__(
        self,
        host: RaftHost,
        name: str,
        members: Sequence[str],
        *,
        client_id: str | None = None,
        max_voters: int = 5,
        retry_window: float = DEFAULT_RETRY_WINDOW,
        max_command_bytes: int | None = None,
    ) -> None:
        if not members:
            raise UsageError("a cluster needs at least one member")
        self.host = host
        self.name = check_group_name(name)
        self.members = list(members)
        self.client_id = client_id or host.unique_id(128)
        self.max_voters = max_voters
        self._voters = self.members[:max_voters]
        self._leader: str | None = None
        self.retry_window = retry_window
        self._stream = host.unique_id(48)
        """This handle's life: its own request ids are ``<stream>-<n>``, unique even when the
        client id is reused after a restart."""
        self._next_seq = 1
        self._open: dict[str, tuple[int, float]] = {}
        """This handle's numbered writes without a known outcome: seq and how long it is held."""
        self._open_seqs: list[tuple[int, str]] = []  # a heap over _open (maybe stale entries)
        self._rr = itertools.count()
        self._max_command = max_command_bytes
        """The group's ``max_command_bytes`` when known (a handle made by ``start``); the
        members check it in any case."""
        self._watch = LeaderWatch(lambda: self.members, self._confirm_leads)
        """Notices that a member a request waits on was deposed (see ``_watch.py``)."""

    async def _confirm_leads(self, member: str, within: float) -> None:
        await self.host.call(node_of(member), "leads", [self.name, member], within)

    def _guarded(self, target: str, request: Awaitable[_T]) -> Awaitable[_T]:
        """``request`` to ``target``, given up once another member confirms it leads (a
        member on this node is never frozen apart from its caller: no watch)."""
        if node_of(target) == self.host.name:
            return request
        return self._watch.guard(target, request)

    def __repr__(self) -> str:
        return (
            f"<Cluster {self.name!r} members={self.members!r} leader={self._leader!r} "
            f"via={self.host.name!r} client_id={self.client_id!r}>"
        )

    # --- making one ---

    @classmethod
    async def start(
        cls,
        nodes: int | Sequence[str],
        state_machine: type[StateMachine] | str = KVStateMachine,
        *,
        name: str = "default",
        config: ClusterConfig | None = None,
        durable: bool | None = None,
        node: ServiceNode | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Cluster:
        """Start a new group. ``nodes=["a", "b", "c"]``: one member on each named node
        (reached through the mesh; ``state_machine`` must be importable there). ``nodes=3``:
        three members on this node (``"<node>#1"``...), handy for demos and tests. The first
        ``config.max_voters`` members vote; the rest are learners. ``durable`` (default: when
        the hosting node has a data_dir) keeps each member's log in ``data_dir/raft/<name>``,
        from which a restarted node resumes it. Returns once every member runs (not once a
        leader is elected: see :meth:`wait_for_leader`). Starting a group that runs already
        with the same state machine and config returns a handle on it; with others,
        :class:`GroupExists`. A node that cannot be reached raises :class:`NodeUnreachable`
        (the members on the other nodes run: start again once it is up), one that does not
        answer within ``timeout`` :class:`RequestTimeout`."""
        host = _host_of(node)
        config = config or ClusterConfig()
        ref = state_machine_ref(state_machine)
        check_group_name(name)
        if isinstance(nodes, int):
            if nodes < 1:
                raise UsageError("nodes must be at least 1")
            members = [f"{host.name}#{k}" for k in range(1, nodes + 1)]
        else:
            members = list(nodes)
            if len(set(members)) != len(members) or any("#" in m for m in members):
                raise UsageError(f"nodes must be distinct node names: {members!r}")
        voters, learners = members[: config.max_voters], members[config.max_voters :]
        metas = [_meta(name, m, ref, config, durable) for m in members]
        await asyncio.gather(
            *(
                _request(host, node_of(m), "create", [meta, voters, learners], timeout)
                for m, meta in zip(members, metas, strict=True)
            )
        )
        return cls(
            host,
            name,
            members,
            max_voters=config.max_voters,
            retry_window=config.retry_window,
            max_command_bytes=config.max_command_bytes,
        )

    @classmethod
    def connect(
        cls,
        name: str,
        nodes: Sequence[str],
        *,
        node: ServiceNode | None = None,
        client_id: str | None = None,
        retry_window: float = DEFAULT_RETRY_WINDOW,
    ) -> Cluster:
        """A handle on the existing group ``name`` with members on ``nodes`` (a client, e.g.
        from a node that runs no member). It does no I/O: the first call on a group that none
        of ``nodes`` holds raises :class:`UnknownGroup` as soon as they have said so."""
        return cls(
            _host_of(node), name, list(nodes), client_id=client_id, retry_window=retry_window
        )

    # --- routing ---

    def _targets(self) -> list[str]:
        """Members to try, the believed leader first."""
        start = next(self._rr) % len(self.members)
        order = self.members[start:] + self.members[:start]
        if self._leader in self.members:
            order.remove(self._leader)
            order.insert(0, self._leader)
        return order

    async def _via_leader(
        self, within: float, attempt: Callable[[str, float], Awaitable[_T]]
    ) -> _T:
        """``await attempt(target, remaining_seconds)`` on the member believed to lead, then on
        the others, following ``NotLeader`` hints, until it returns. ``attempt`` raises
        :class:`_Next` to go on to the next member; anything else it raises ends the loop.
        :class:`UnknownGroup` once a whole round of members said they hold no such group (or
        could not be reached); after ``within`` seconds, ``NotLeader`` if that was the last
        answer, else :class:`NoLeader` saying how long it waited and the last answer."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + within
        last: Exception | None = None
        while True:
            unknown: list[str] = []
            answered = False
            for target in self._targets():
                remaining = deadline - loop.time()
                if remaining <= _MIN_ATTEMPT:
                    if isinstance(last, NotLeader):
                        raise last
                    waited = loop.time() - start
                    why = f": {last}" if last is not None else ""
                    raise NoLeader(
                        f"no leader of {self.name} answered in {waited:.3g} s{why}"
                    ) from last
                try:
                    return await attempt(target, remaining)
                except UnknownGroup:
                    unknown.append(node_of(target))
                    continue
                except NotLeader as exc:
                    answered = True
                    last = exc
                    self._leader = exc.leader_hint
                    if exc.leader_hint is not None:
                        break
                except _Next as nxt:
                    if not isinstance(nxt.error, NodeUnreachable):
                        answered = True
                    last = nxt.error or last
                    if self._leader == target:
                        self._leader = None
            else:
                if unknown and not answered:
                    raise UnknownGroup(self.name, sorted(set(unknown)))
            await asyncio.sleep(min(_RETRY_PAUSE, max(0.0, deadline - loop.time())))

    async def _on_leader(
        self, op: str, args: list[Any], within: float, *, retry: bool = True
    ) -> Any:
        """Run ``op`` on the leader, following hints, for up to ``within`` seconds. A request
        to a member that was deposed meanwhile goes to the new leader if ``retry`` (the
        request is safe to repeat), else fails with :class:`OutcomeUnknown`."""

        async def attempt(target: str, remaining: float) -> Any:
            try:
                return await self._guarded(
                    target,
                    self.host.call(node_of(target), op, [self.name, target, *args], remaining),
                )
            except Deposed as exc:
                if not retry:
                    raise OutcomeUnknown(None, f"{op} sent to {target}, deposed: {exc}") from exc
                raise NotLeader(exc.leader) from exc
            except NoLeader as exc:
                raise _Next(exc) from exc
            except PeerLost as exc:
                raise _Next(_unreachable(exc)) from exc
            except TimeoutError:
                raise _Next(None) from None

        return await self._via_leader(within, attempt)

    async def _request(self, member: str, op: str, timeout: float, *args: Any) -> Any:  # noqa: ASYNC109
        """Run ``op`` on ``member`` itself (see :func:`_request`)."""
        return await _request(self.host, node_of(member), op, [self.name, member, *args], timeout)

    # --- the API ---

    async def wait_for_leader(self, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The leader's member id, once there is one; :class:`NoLeader` after ``timeout``,
        :class:`UnknownGroup` if no member asked holds the group."""

        async def attempt(target: str, remaining: float) -> str:
            within = min(remaining, 1.0)
            try:
                leader: str = await self.host.call(
                    node_of(target), "leader", [self.name, target], within
                )
                # A follower's view may be stale (its leader just died): ask the leader.
                if leader != target and leader != await self.host.call(
                    node_of(leader), "leader", [self.name, leader], within
                ):
                    raise _Next(None)
            except NoLeader as exc:
                raise _Next(exc) from exc
            except PeerLost as exc:
                raise _Next(_unreachable(exc)) from exc
            except TimeoutError:
                raise _Next(None) from None
            return leader

        leader = await self._via_leader(timeout, attempt)
        self._leader = leader
        return leader

    async def write(
        self,
        command: Any,
        *,
        request_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Any:
        """Replicate ``command`` and return the state machine's result once it is committed
        and applied on the leader. Raises :class:`NoLeader` / :class:`NotLeader` (nothing
        written), :class:`OutcomeUnknown` / :class:`WriteTimeout` (maybe written: retry with
        the same ``request_id``, it applies once), :class:`CommandFailed` (the handler
        raised); before sending anything, :class:`~ember.UnsendableError` (not plain msgpack)
        and :class:`CommandTooLarge` (over ``max_command_bytes``); :class:`UnknownGroup`."""
        loop = asyncio.get_running_loop()
        held = None if request_id is None else self._open.get(request_id)
        retry = held is not None  # of one of this handle's numbered writes: it keeps its number
        if request_id is None:
            seq: int | None = self._next_seq
            self._next_seq += 1
            request_id = f"{self._stream}-{seq}"
        else:
            seq = None if held is None else held[0]
        if seq is not None:
            self._hold(request_id, seq, math.inf)  # before the mark: it must not pass this one
        session = [self.client_id, self._stream, request_id, seq, self._mark(loop.time())]
        try:
            self._check_command(session, command)
        except (UnsendableError, CommandTooLarge):
            if not retry:  # nothing was ever sent under this request id
                self._open.pop(request_id, None)
            raise
        abandoned: list[str] = []
        try:
            result = await self._write(command, request_id, session, timeout, abandoned)
        except CommandFailed:
            self._settled(request_id, seq, abandoned)  # applied: the outcome is known
            raise
        except (NoLeader, NotLeader):
            if not retry:  # this attempt wrote nothing, and there was no earlier one
                self._open.pop(request_id, None)
                raise
            assert seq is not None
            self._hold(request_id, seq, loop.time() + self.retry_window)
            raise
        except BaseException:
            if seq is not None:
                self._hold(request_id, seq, loop.time() + self.retry_window)
            raise
        self._settled(request_id, seq, abandoned)
        return result

    def _settled(self, request_id: str, seq: int | None, abandoned: list[str]) -> None:
        """The write's outcome is known. If an attempt was given up on (its member was
        deposed), that attempt may still be proposed later (it may wait on its member for a
        leader): its session is held for ``retry_window`` so such a straggler applies once."""
        if not abandoned or seq is None:
            self._open.pop(request_id, None)
        else:
            self._hold(request_id, seq, asyncio.get_running_loop().time() + self.retry_window)

    def _check_command(self, session: list[Any], command: Any) -> None:
        """Refuse, before sending, a command that cannot be encoded or is over the limit."""
        size = len(pack((session, command)))  # the entry's size (encode_command)
        if self._max_command is not None and size > self._max_command:
            raise CommandTooLarge(size, self._max_command)

    def _hold(self, request_id: str, seq: int, until: float) -> None:
        if request_id not in self._open:
            heapq.heappush(self._open_seqs, (seq, request_id))
        self._open[request_id] = (seq, until)

    def _mark(self, now: float) -> int:
        """The lowest seq of this handle's writes without a known outcome (within the retry
        window): the members may forget the outcomes below it."""
        heap, open_ = self._open_seqs, self._open
        while heap:
            seq, request_id = heap[0]
            held = open_.get(request_id)
            if held is not None and held[0] == seq:
                if held[1] >= now:
                    return seq
                del open_[request_id]  # its retry window is over
            heapq.heappop(heap)
        return self._next_seq

    async def _write(
        self,
        command: Any,
        request_id: str,
        session: list[Any],
        timeout: float,  # noqa: ASYNC109
        abandoned: list[str],
    ) -> Any:
        """Send the write to the leader (see :meth:`write` for what each error means); the
        members whose attempts were given up on go into ``abandoned``."""

        async def attempt(target: str, remaining: float) -> Any:
            try:
                leader, ok, value = await self._guarded(
                    target,
                    self.host.call(
                        node_of(target),
                        "write",
                        [self.name, target, session, command, False, remaining * 0.8],
                        remaining,
                    ),
                )
            except Deposed as exc:  # it may have been proposed: retried with its session
                abandoned.append(target)
                raise NotLeader(exc.leader) from exc
            except NoLeader as exc:
                raise _Next(exc) from exc
            except PeerLost as exc:
                if not exc.sent:
                    raise _Next(_unreachable(exc)) from exc
                if self._leader == target:
                    self._leader = None
                raise OutcomeUnknown(request_id, str(_unreachable(exc))) from exc
            except OutcomeUnknown as exc:
                self._leader = None
                raise OutcomeUnknown(request_id, str(exc)) from exc
            except TimeoutError as exc:
                raise WriteTimeout(request_id, f"no answer within {timeout} s") from exc
            self._leader = leader
            if not ok:
                raise CommandFailed(value[0], value[1])
            return value

        try:
            return await self._via_leader(timeout, attempt)
        except (NoLeader, NotLeader) as exc:
            if abandoned:  # an attempt may have been written: not "nothing written"
                detail = f"sent to {abandoned[0]}, which was deposed; then {exc}"
                raise OutcomeUnknown(request_id, detail) from exc
            raise

    async def read(
        self,
        key: Any,
        *,
        consistency: Consistency = "linearizable",
        timeout: float = 5.0,  # noqa: ASYNC109
        member: str | None = None,
    ) -> Any:
        """The state machine's ``read(key)``. ``"linearizable"``: as of a ReadIndex confirmed
        by the leader (served by whichever member is asked once it has applied that far);
        ``"lease"``: the same on a group configured with ``lease_reads`` (no heartbeat round);
        ``"stale"``: the local state of ``member`` (default: a member on this node, else the
        believed leader), possibly behind. Whatever keeps a read from being served (no leader,
        no quorum, the member asked unreachable) is retried until ``timeout``, then raises
        :class:`ReadTimeout`; :class:`~ember.UnsendableError` for a key that is not plain
        msgpack, :class:`UnknownGroup`, :class:`~ember.UsageError` for a lease read on a
        group without leases."""
        if consistency not in ("linearizable", "lease", "stale"):
            raise UsageError(f"consistency must be linearizable, lease or stale: {consistency!r}")
        pack(key)  # UnsendableError here, not on the wire
        if member is None and consistency == "stale":
            here = [m for m in self.members if node_of(m) == self.host.name]
            member = here[0] if here else None
        try:
            if member is None:
                return await self._on_leader("read", [key, consistency], timeout)
            return await self._read_at(member, key, consistency, timeout)
        except (NoLeader, NotLeader, NodeUnreachable, TimeoutError) as exc:
            raise ReadTimeout(f"read of {key!r} not served within {timeout} s: {exc}") from exc

    async def _read_at(self, member: str, key: Any, consistency: str, timeout: float) -> Any:  # noqa: ASYNC109
        """Read at ``member``, retrying (reads are safe to) until served or out of time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await self._request(member, "read", deadline - loop.time(), key, consistency)
            except (NoLeader, NodeUnreachable):
                if deadline - loop.time() <= _RETRY_PAUSE:
                    raise
            await asyncio.sleep(_RETRY_PAUSE)

    async def status(self, member: str | None = None, *, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """``member``'s status (default: the leader's): role, term, commit and applied index,
        leader, voters and learners, and, on the leader, each peer's progress. Raises
        :class:`NoLeader` (no leader to ask, or ``member`` is stopped),
        :class:`NodeUnreachable`, :class:`RequestTimeout`, :class:`UnknownGroup`."""
        if member is not None:
            return await self._request(member, "status", timeout)  # type: ignore[no-any-return]
        leader = await self.wait_for_leader(timeout)
        st: dict[str, Any] = await self._request(leader, "status", timeout)
        self._voters = st["voters"]
        return st

    async def state_machine_snapshot(
        self,
        member: str | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> bytes:
        """``member``'s state machine as :meth:`StateMachine.snapshot` bytes (default: the
        leader's); the errors of :meth:`status`."""
        member = member or await self.wait_for_leader(timeout)
        return await self._request(member, "snapshot", timeout)  # type: ignore[no-any-return]

    @property
    def quorum_size(self) -> int:
        """Voters needed for a decision (as of the membership this handle last saw)."""
        return len(self._voters) // 2 + 1

    async def has_quorum(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Whether a leader can confirm its leadership with a quorum of voters now (a
        ReadIndex round, or the lease on a ``lease_reads`` group) within ``timeout``."""
        try:
            await self._on_leader("confirm", [], timeout)
        except (ClusterError, TimeoutError):
            return False
        return True

    # --- membership ---

    async def add_member(
        self,
        node: str | None = None,
        *,
        durable: bool | None = None,
        wait_voter: bool = False,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> str:
        """Start a member on ``node`` (default: a new one on this node) and add it as a learner;
        the leader promotes it to voter once caught up, while voters are under the cap or in
        place of a failed voter. Returns its id once it is a member, and a voter if there was
        room (or ``wait_voter``: once it replaced a failed voter). :class:`NoLeader` if no
        leader is known, also when the one asked stepped down meanwhile (nothing was added)."""
        status = await self.status(timeout=timeout)
        if node is None:
            known = {*self.members, *status["voters"], *status["learners"]}
            k = 1 + max(
                (int(m.partition("#")[2]) for m in known if m.partition("#")[2].isdigit()),
                default=0,
            )
            member = f"{self.host.name}#{k}"
        else:
            member = node
        if member in status["voters"] or member in status["learners"]:
            raise UsageError(f"{member} is already a member of {self.name}")
        if status["leader"] is None:  # the leader asked stepped down before it answered
            raise NoLeader(f"{self.name} has no leader to add {member} through")
        meta = await self._meta_like(status["leader"], member, durable)
        async with asyncio.timeout(timeout):
            await _request(self.host, node_of(member), "create", [meta, None, []], timeout)
            await self._on_leader("conf", ["add_learner", member], timeout, retry=False)
            self.members.append(member)
            if wait_voter or len(status["voters"]) < status["max_voters"]:
                # The leader decides when; poll its view (a remote one, no event to wait on).
                while member not in (await self.status(timeout=timeout))["voters"]:  # noqa: ASYNC110
                    await asyncio.sleep(_RETRY_PAUSE * 2)
        return member

    async def _meta_like(self, leader: str, member: str, durable: bool | None) -> dict[str, Any]:
        st = await self._request(leader, "meta", 5.0)
        meta = dict(st)
        meta["member"] = member
        if durable is not None:
            meta["durable"] = durable
        return meta

    async def remove_member(self, member: str, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Remove ``member`` from the group; it stops and deletes its data once it learns.
        A leading member first hands leadership to another voter, so writes do not wait for
        an election."""
        status = await self.status(timeout=timeout)
        others = [v for v in status["voters"] if v != member]
        if status["id"] == member and others:
            caught_up = [v for v in others if status["progress"].get(v, {}).get("lag", 1) == 0]
            await self.transfer_leadership((caught_up or others)[0], timeout=timeout)
        await self._on_leader("conf", ["remove", member], timeout, retry=False)
        if member in self.members:
            self.members.remove(member)
        if self._leader == member:
            self._leader = None

    async def transfer_leadership(self, to: str, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Hand leadership to voter ``to``; returns once it leads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            leader = await self.wait_for_leader(max(0.0, deadline - loop.time()))
            if leader == to:
                return
            if loop.time() >= deadline:
                raise NoLeader(f"leadership did not move to {to} within {timeout} s")
            await self._request(leader, "transfer", timeout, to)
            await asyncio.sleep(_RETRY_PAUSE * 2)
            self._leader = None

    # --- in-process members ---

    async def stop_member(self, member: str) -> None:
        """Stop ``member`` as if its node crashed (its data stays; see :meth:`restart_member`)."""
        await self._request(member, "stop", 10.0)

    async def restart_member(self, member: str) -> None:
        """Restart a stopped member from its durable storage."""
        await self._request(member, "restart", 10.0)

    async def stop(self) -> None:
        """Stop every member of the group (their data stays: restarted nodes resume them).
        Best effort: members on nodes that cannot be reached are left running."""
        await asyncio.gather(
            *(
                _request(self.host, n, "stop", [self.name, None], 10.0)
                for n in sorted({node_of(m) for m in self.members})
            ),
            return_exceptions=True,
        )


async def _request(host: RaftHost, node: str, op: str, args: list[Any], timeout: float) -> Any:  # noqa: ASYNC109
    """Run ``op`` on ``node``'s host: :class:`NodeUnreachable` if it cannot be reached (or its
    connection drops before the answer), :class:`RequestTimeout` after ``timeout``."""
    try:
        return await host.call(node, op, args, timeout)
    except PeerLost as exc:
        raise _unreachable(exc) from exc
    except TimeoutError as exc:
        if isinstance(exc, ClusterError):
            raise
        raise RequestTimeout(f"{op} on {node}: no answer within {timeout} s") from exc


def _meta(
    group: str, member: str, ref: str, config: ClusterConfig, durable: bool | None
) -> dict[str, Any]:
    """What a member keeps beside its data; ``durable`` None becomes ``"auto"``: durable where
    the member's node has a data directory (decided there)."""
    return {
        "group": group,
        "member": member,
        "ref": ref,
        "config": config.as_dict(),
        "durable": "auto" if durable is None else durable,
    }
