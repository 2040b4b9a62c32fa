"""``node.names``: one naming protocol over three tiers, and the kernel's resolver for
:class:`~ember.registry.Name` destinations.

The local tier is the kernel's own table of names (for this node's processes) plus, for pids of
other nodes, a table here whose entries follow the process through a monitor. The global tiers
(:mod:`._eventual`, :mod:`._consistent`) plug in behind :class:`GlobalTier`. A global
registration is performed by the registry service of the pid's node, which watches its own
processes and releases their names when they exit; the caller's node forwards it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from .._errors import EmberError, NameTaken, UsageError
from ..actors import Actor, Down, Pid, Ref
from ..actors._node import current_process
from ..transport._codec import Codec
from ..transport._frame import Channel
from ._config import ConflictPolicy, RegistryConfig
from ._errors import TierUnavailable, WaitTimeout
from ._name import GLOBAL_TIERS, LOOKUP_ORDER, Name, Tier, check_global_name, check_tier
from ._rpc import REP, REQ, Rpc

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["FENCED", "RELEASED", "GlobalTier", "Names", "Registration"]

log = logging.getLogger("ember.registry")

RELEASED = "released"
"""The reason of the Down a name monitor gets when the name is released."""
FENCED = 2
"""REGISTRY frame kind of a fenced send: ``[FENCED, name, token, pid, message]``."""
YIELD_EVERY = 256
"""Local global registrations between two yields to the event loop."""

Consistency = Literal["cached", "linearizable"]
Policy = ConflictPolicy | Callable[[Any, Pid, Pid], None]


@dataclass(frozen=True, slots=True)
class Registration:
    """A name's current registration: ``token`` is the fencing token of a consistent one
    (``index * 2**16 + position`` of the registration in the Raft entry that made it: larger
    for every later registration), None for the other tiers."""

    name: Any
    pid: Pid
    tier: Tier
    meta: Any = None
    token: int | None = None


class GlobalTier(Protocol):
    """What the eventual and consistent tiers provide to :class:`Names`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def register(
        self, name: Any, pid: Pid, meta: Any, policy: Policy | None, within: float
    ) -> int | None:
        """Register local ``pid`` within ``within`` seconds; raises :class:`NameTaken` if
        another process holds it."""
        ...

    async def unregister(self, name: Any, within: float) -> None:
        """Release ``name``; raises :class:`UnknownName` if it is not registered."""
        ...

    def lookup(self, name: Any) -> Registration | None: ...

    def names(self) -> list[Any]: ...

    def statistics(self) -> dict[str, Any]: ...


class _Watcher(Actor):
    """Holds the monitors of remote pids that have local names here."""

    def __init__(self, on_down: Callable[[Ref, Pid], None]) -> None:
        self.on_down = on_down

    def receive(self, msg: Any) -> Any:
        if isinstance(msg, Down):
            self.on_down(msg.ref, msg.pid)
            return None
        from ..actors import monitor

        return monitor(msg)


class Names:
    """The node's registry (``node.names``); see ``docs/registry.md``."""

    def __init__(self, node: ServiceNode, config: RegistryConfig | None = None) -> None:
        self.node = node
        self.config = config or RegistryConfig()
        self.codec = Codec()
        """The node's codec once started (user types registered with the node travel)."""
        self.rpc = Rpc(node, self.codec)
        self.rpc.handlers["register"] = self._serve_register
        self.tiers: dict[Tier, GlobalTier] = {}
        from ._consistent import CONSISTENT, ConsistentTier
        from ._eventual import EVENTUAL, EventualTier

        self._consistent = ConsistentTier(self, self.config)
        if self.config.replicate:
            self.tiers["eventual"] = EventualTier(self, self.config)
            self.tiers["consistent"] = self._consistent
        self.rpc.handlers["cli_names"] = self._serve_cli_names
        self.rpc.handlers["cli_groups"] = self._serve_cli_groups
        self._kernel_whereis = node.kernel.whereis
        self.frame_handlers: dict[int, Callable[[str, list[Any]], None]] = {
            REQ: lambda peer, f: self.rpc.on_request(peer, f[1], f[2], f[3]),
            REP: lambda _peer, f: self.rpc.on_reply(f[1], f[2], f[3]),
            FENCED: self._on_fenced,
        }
        self.fence_check: Callable[[Any, Pid, int], bool] | None = None
        """Set by the consistent tier: whether local ``pid`` holds ``name`` at that token."""
        self._remote_local: dict[Any, tuple[Pid, Ref]] = {}
        self._watcher: Pid | None = None
        self._name_monitors: dict[tuple[Tier, Any], list[tuple[Pid, Ref, Pid]]] = {}
        self._monitor_keys: dict[Ref, tuple[Tier, Any]] = {}
        self._local_watches: dict[Any, Any] = {}
        self._waiters: dict[Any, list[tuple[Tier | None, asyncio.Future[Registration]]]] = {}
        self._budget = YIELD_EVERY
        self._unlisten: Callable[[], None] | None = None
        self.fenced_drops = 0
        """Fenced messages dropped: their token was not the name's current one here."""
        self.malformed = 0
        """REGISTRY frames that did not decode or had no kind."""
        self.unhandled_frames: dict[str, int] = {}
        """Well-formed frames of a kind this node takes no part in (a tier it does not run,
        as on a tool node), by kind."""
        self._kind_names = {
            REQ: "request",
            REP: "reply",
            FENCED: "fenced",
            EVENTUAL: "eventual",
            CONSISTENT: "consistent",
        }

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.node.kernel.attach_resolver(_Resolver(self))
        dist = self.node.dist
        if dist is not None:
            self.codec = self.rpc.codec = dist.codec
            dist.codec.register(Name)  # a fenced call, link or monitor names its owner's node
            dist.add_channel_handler(Channel.REGISTRY, self._on_frame)
            self._unlisten = dist.add_node_listener(self._on_node)
        for tier in self.tiers.values():
            await tier.start()

    async def stop(self) -> None:
        for tier in reversed(list(self.tiers.values())):
            try:
                await tier.stop()
            except Exception:
                log.exception("node %s: stopping a registry tier failed", self.node.name)
        await self.rpc.close()
        if self._unlisten is not None:
            self._unlisten()
        if self.node.dist is not None:
            self.node.dist.remove_channel_handler(Channel.REGISTRY)
        self.node.kernel.attach_resolver(None)

    # -- the API ----------------------------------------------------------------------------

    async def register(
        self,
        name: Any,
        pid: Pid,
        tier: Tier = "local",
        *,
        meta: Any = None,
        on_conflict: Policy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> int | None:
        """Register ``pid`` (of any node) under ``name`` in ``tier``; the name is freed when
        the process exits. Returns the fencing token of a consistent registration (None for
        the other tiers). Raises :class:`NameTaken` (with the holder) if another process
        holds the name in that tier, or holds it locally here (a local name may not shadow a
        global one, nor a global one a local name of this node); :class:`NoProc` if ``pid``
        is not alive; :class:`TierUnavailable` if the tier cannot take it now. Registering
        the same pid again is idempotent (a consistent one returns its token).

        ``on_conflict`` (eventual names): what happens to this process if it loses the name
        to a concurrent claimant after a partition heals: ``"kill"``, ``"notify"`` or a
        function ``fn(name, loser, winner)`` run on this node."""
        check_tier(tier)
        if pid.__class__ is not Pid:
            raise UsageError(f"register needs a pid, not {pid!r}")
        if on_conflict is not None and tier != "eventual":
            raise UsageError("on_conflict applies to eventual names only")
        if callable(on_conflict) and pid.node != self.node.name:
            raise UsageError("an on_conflict function runs on the pid's node: register there")
        if (
            on_conflict is not None
            and not callable(on_conflict)
            and (on_conflict not in ("kill", "notify"))
        ):
            raise UsageError("on_conflict must be 'kill', 'notify' or a function")
        if tier == "local":
            self._check_unshadowed(name, "local")
            self._register_local(name, pid)
            return None
        name = check_global_name(name)
        self._check_unshadowed(name, tier)
        within = self.config.request_timeout if timeout is None else timeout
        tracing = self.node.tracing
        with (
            tracing.span("names.register", {"ember.names.tier": tier})
            if tracing.enabled
            else _UNTRACED  # a span costs microseconds even when it is a no-op
        ):
            if pid.node == self.node.name:
                self._budget -= 1
                if self._budget <= 0:
                    # A loop of registrations that never wait would starve the loop (its
                    # heartbeats, the pushes of what it registers): now and then one yields.
                    self._budget = YIELD_EVERY
                    await asyncio.sleep(0)
                return await self._global(tier).register(name, pid, meta, on_conflict, within)
            token: int | None = await self.rpc.call(
                pid.node, "register", [tier, name, pid, meta, on_conflict], within
            )
            return token

    async def unregister(
        self,
        name: Any,
        tier: Tier = "local",
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Release ``name`` in ``tier``; raises :class:`UnknownName` if it is not registered."""
        check_tier(tier)
        if tier == "local":
            entry = self._remote_local.pop(name, None)
            if entry is not None:
                self._changed("local", name, None)
                return
            self.node.kernel.unregister(name)
            self._unwatch_local(name)
            self._changed("local", name, None)
            return
        within = self.config.request_timeout if timeout is None else timeout
        await self._global(tier).unregister(check_global_name(name), within)

    @overload
    def whereis(
        self, name: Any, tier: Tier | None = None, *, consistency: Literal["cached"] = "cached"
    ) -> Pid | None: ...

    @overload
    def whereis(
        self, name: Any, tier: Tier | None = None, *, consistency: Literal["linearizable"]
    ) -> Awaitable[Pid | None]: ...

    def whereis(
        self, name: Any, tier: Tier | None = None, *, consistency: Consistency = "cached"
    ) -> Pid | Awaitable[Pid | None] | None:
        """The pid registered under ``name`` in ``tier`` (any tier when None: local, then
        consistent, then eventual), or None. A consistent name is answered from this node's
        replicated cache (see the staleness bound in ``docs/registry.md``);
        ``consistency="linearizable"`` returns an awaitable that answers as of a read
        confirmed by the group's leader."""
        if consistency == "cached":
            # The hot path (cached lookups, the resolver's): plain dict reads, no objects made.
            if tier == "consistent":
                entry = self._consistent.cache.get(name)
                return entry[0] if entry is not None else None
            if tier is None:
                try:
                    pid = self._kernel_whereis(name)
                except TypeError:  # unhashable: no such name anywhere
                    return None
                if pid is not None:
                    return pid
                entry = self._consistent.cache.get(name)
                if entry is not None:
                    return entry[0]
            reg = self.lookup(name, tier)
            return reg.pid if reg is not None else None
        if consistency == "linearizable":
            if tier not in (None, "consistent"):
                raise UsageError("consistency='linearizable' is for the consistent tier")
            return self._whereis_linearizable(name)
        raise UsageError(f"consistency must be 'cached' or 'linearizable': {consistency!r}")

    async def _whereis_linearizable(self, name: Any) -> Pid | None:
        tier = self._global("consistent")
        reg = await tier.lookup_linearizable(check_global_name(name))  # type: ignore[attr-defined]
        return reg.pid if reg is not None else None

    def lookup(self, name: Any, tier: Tier | None = None) -> Registration | None:
        """The registration of ``name`` (its pid, meta and fencing token), or None."""
        for t in (check_tier(tier),) if tier is not None else LOOKUP_ORDER:
            reg = self._lookup_tier(name, t)
            if reg is not None:
                return reg
        return None

    def registered(self, tier: Tier | None = None) -> list[Any]:
        """The names registered in ``tier`` (every tier when None), as this node sees them."""
        out: list[Any] = []
        for t in (check_tier(tier),) if tier is not None else LOOKUP_ORDER:
            if t == "local":
                out.extend(self.node.kernel.registered())
                out.extend(self._remote_local)
            elif t in self.tiers:
                out.extend(self.tiers[t].names())
        return out

    async def wait_for(
        self,
        name: Any,
        tier: Tier | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Registration:
        """The registration of ``name`` (in ``tier``, or any), once this node sees one; raises
        :class:`~ember.registry.WaitTimeout` after ``timeout`` seconds (None: no limit)."""
        reg = self.lookup(name, tier)
        if reg is not None:
            return reg
        fut: asyncio.Future[Registration] = asyncio.get_running_loop().create_future()
        waiter = (tier, fut)
        self._waiters.setdefault(name, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise WaitTimeout(name, timeout) from None
        finally:
            waiters = self._waiters.get(name)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[name]

    def monitor(self, name: Any, tier: Tier | None = None) -> Ref:
        """Called from a process: a :class:`~ember.Down` arrives when ``name`` is released
        (reason ``"released"``) or moves to another process (reason ``("moved", pid)``); at
        once, with reason ``"noproc"``, if it is not registered now."""
        me = current_process.get()
        kernel = self.node.kernel
        if me is None or me._node is not kernel:
            raise UsageError("names.monitor must be called from a process of this node")
        ref = kernel.make_ref()
        reg = self.lookup(name, tier)
        if reg is None:
            kernel.cast(me._pid, Down(ref, name, "noproc"))
            return ref
        key = (reg.tier, reg.name)
        self._name_monitors.setdefault(key, []).append((me._pid, ref, reg.pid))
        self._monitor_keys[ref] = key
        if reg.tier == "local":
            self._watch_local(reg.name, reg.pid)
        return ref

    def demonitor(self, ref: Ref) -> bool:
        """Remove a name monitor; False if ``ref`` is not one (or it fired)."""
        key = self._monitor_keys.pop(ref, None)
        if key is None:
            return False
        entries = [e for e in self._name_monitors.get(key, []) if e[1] != ref]
        if entries:
            self._name_monitors[key] = entries
        else:
            self._name_monitors.pop(key, None)
        return True

    def statistics(self) -> dict[str, Any]:
        """Counters of every tier."""
        out: dict[str, Any] = {
            "local": len(self.node.kernel.registered()) + len(self._remote_local),
            "fenced_drops": self.fenced_drops,
            "malformed": self.malformed,
            "unhandled_frames": dict(self.unhandled_frames),
        }
        for t, tier in self.tiers.items():
            out[t] = tier.statistics()
        return out

    # -- the kernel's resolver --------------------------------------------------------------

    def whereis_dest(self, dest: Any) -> Pid | tuple[Any, str] | None:
        if dest.__class__ is tuple:
            # (Name, this node): a peer's fenced call, link or monitor, decided here.
            if len(dest) != 2 or dest[0].__class__ is not Name or dest[1] != self.node.name:
                return None
            return self._fenced_pid(dest[0])
        if dest.__class__ is not Name:
            return None
        reg = self.lookup(dest.name, dest.tier)
        if reg is None:
            return None
        if dest.fence is None:
            return reg.pid
        if reg.pid.node != self.node.name:
            return (dest, reg.pid.node)  # its node checks the token, as for a send
        return self._fenced_pid(dest)

    def _fenced_pid(self, dest: Name) -> Pid | None:
        """The local process that holds ``dest``'s name at exactly its token as this node
        sees it (the owner's node decides), or None (counted in ``fenced_drops``)."""
        reg = self.lookup(dest.name, "consistent")
        check = self.fence_check
        if (
            reg is None
            or dest.fence is None
            or reg.pid.node != self.node.name
            or check is None
            or not check(dest.name, reg.pid, dest.fence)
        ):
            self.fenced_drops += 1
            return None
        return self.node.kernel.local_pid(reg.pid)

    def send_dest(self, dest: Any, msg: Any) -> bool:
        if dest.__class__ is not Name:
            return False
        reg = self.lookup(dest.name, dest.tier)
        if reg is None:
            return False
        if dest.fence is None:
            self.node.kernel.send(reg.pid, msg)
        elif reg.pid.node == self.node.name:
            self._deliver_fenced(dest.name, dest.fence, reg.pid, msg)
        else:
            from .._services import send_to_node

            frame = self.codec.encode((FENCED, dest.name, dest.fence, reg.pid, msg))
            send_to_node(self.node, reg.pid.node, Channel.REGISTRY, frame)
        return True

    # -- internals --------------------------------------------------------------------------

    def _global(self, tier: Tier) -> GlobalTier:
        backend = self.tiers.get(tier)
        if backend is None:
            raise TierUnavailable(tier, f"node {self.node.name} does not run it")
        return backend

    def _lookup_tier(self, name: Any, tier: Tier) -> Registration | None:
        if tier == "local":
            try:
                pid = self.node.kernel.whereis(name)
            except TypeError:
                return None
            if pid is not None:
                return Registration(name, pid, "local")
            entry = self._remote_local.get(name)
            return Registration(name, entry[0], "local") if entry is not None else None
        backend = self.tiers.get(tier)
        if backend is None:
            return None
        try:
            return backend.lookup(name)
        except TypeError:
            return None

    def _check_unshadowed(self, name: Any, tier: Tier) -> None:
        """A local name may not shadow a global one here, nor a global one a local name."""
        others: tuple[Tier, ...] = GLOBAL_TIERS if tier == "local" else ("local",)
        for other in others:
            reg = self._lookup_tier(name, other)
            if reg is not None:
                raise NameTaken(name, reg.pid)

    def _register_local(self, name: Any, pid: Pid) -> None:
        kernel = self.node.kernel
        if pid.node == kernel.name:
            if name in self._remote_local:
                raise NameTaken(name, self._remote_local[name][0])
            kernel.register(name, pid)
        else:
            if kernel.whereis(name) is not None:
                raise NameTaken(name, kernel.whereis(name))
            held = self._remote_local.get(name)
            if held is not None:
                if held[0] == pid:
                    return
                raise NameTaken(name, held[0])
            if self._watcher is None or kernel.process_info(self._watcher) is None:
                self._watcher = kernel.spawn_nowait(_Watcher, self._remote_down)
            ref = kernel.call(self._watcher, pid)
            self._remote_local[name] = (pid, _PENDING)

            def monitored(fut: Any) -> None:
                entry = self._remote_local.get(name)
                if entry is not None and entry[0] == pid and not fut.exception():
                    self._remote_local[name] = (pid, fut.result())

            ref.add_done_callback(monitored)
        self._changed("local", name, Registration(name, pid, "local"))

    def _remote_down(self, ref: Ref, pid: Pid) -> None:
        for name, (holder, held_ref) in list(self._remote_local.items()):
            if holder == pid and (held_ref == ref or held_ref is _PENDING):
                del self._remote_local[name]
                self._changed("local", name, None)

    def _watch_local(self, name: Any, pid: Pid) -> None:
        if pid.node != self.node.name or name in self._local_watches:
            return

        def exited(_pid: Pid, _reason: Any) -> None:
            self._local_watches.pop(name, None)
            self._changed("local", name, None)

        handle = self.node.kernel.watch(pid, exited)
        if handle is not None:
            self._local_watches[name] = handle

    def _unwatch_local(self, name: Any) -> None:
        handle = self._local_watches.pop(name, None)
        if handle is not None:
            self.node.kernel.unwatch(handle)

    def watching(self) -> bool:
        """Whether any name monitor or ``wait_for`` waits at all."""
        return bool(self._waiters) or bool(self._name_monitors)

    def watched(self, tier: Tier, name: Any) -> bool:
        """Whether a monitor or a ``wait_for`` waits on ``name`` (tiers skip building the
        :class:`Registration` of a change nobody watches)."""
        return name in self._waiters or (tier, name) in self._name_monitors

    def _changed(self, tier: Tier, name: Any, reg: Registration | None) -> None:
        """Tiers report every change of a name's holder here (for name monitors)."""
        if reg is not None and name in self._waiters:
            for wanted, fut in list(self._waiters[name]):
                if (wanted is None or wanted == tier) and not fut.done():
                    fut.set_result(reg)
        watchers = self._name_monitors.get((tier, name))
        if not watchers:
            return
        kept = []
        for pid, ref, holder in watchers:
            if reg is not None and reg.pid == holder:
                kept.append((pid, ref, holder))
                continue
            reason: Any = RELEASED if reg is None else ("moved", reg.pid)
            self._monitor_keys.pop(ref, None)
            self.node.kernel.cast(pid, Down(ref, holder, reason))
        if kept:
            self._name_monitors[(tier, name)] = kept
        else:
            del self._name_monitors[(tier, name)]

    async def _serve_register(
        self, tier: Tier, name: Any, pid: Pid, meta: Any, policy: Any
    ) -> int | None:
        check_tier(tier)
        if tier == "local":
            raise UsageError("local names are registered on their own node")
        pid = self.node.kernel.local_pid(pid)
        if pid.node != self.node.name:
            raise UsageError(f"{pid} is not a process of node {self.node.name}")
        self._check_unshadowed(name, tier)
        return await self._global(tier).register(
            check_global_name(name), pid, meta, policy, self.config.request_timeout
        )

    async def _serve_cli_names(self, tier: Tier | None) -> list[dict[str, Any]]:
        rows = []
        for t in (check_tier(tier),) if tier is not None else LOOKUP_ORDER:
            for name in self.registered(t):
                reg = self._lookup_tier(name, t)
                if reg is not None:
                    rows.append(
                        {
                            "name": repr(name) if not isinstance(name, str) else name,
                            "tier": t,
                            "pid": repr(reg.pid),
                            "node": reg.pid.node,
                            "token": reg.token,
                            "meta": reg.meta,
                        }
                    )
        return rows

    async def _serve_cli_groups(self, scope: str | None) -> list[dict[str, Any]]:
        pg = self.node.service("pg")
        if pg is None:
            raise UsageError(f"node {self.node.name} runs no pg")
        rows = []
        for group in pg.which_groups(scope):
            members = pg.get_members(group, scope)
            rows.append(
                {
                    "group": repr(group) if not isinstance(group, str) else group,
                    "members": [repr(p) for p in members],
                    "local": len(pg.get_local_members(group, scope)),
                    "nodes": sorted({p.node for p in members}),
                }
            )
        return rows

    def _deliver_fenced(self, name: Any, token: int, pid: Pid, msg: Any) -> None:
        check = self.fence_check
        if check is None or not check(name, pid, token):
            self.fenced_drops += 1
            return
        self.node.kernel.cast(pid, msg)

    def _on_fenced(self, _peer: str, frame: list[Any]) -> None:
        _, name, token, pid, msg = frame
        self._deliver_fenced(name, token, self.node.kernel.local_pid(pid), msg)

    def _on_frame(self, peer: str, payload: bytes) -> None:
        try:
            frame = self.codec.decode(payload)
            kind = frame[0]
        except (EmberError, ValueError, TypeError, IndexError, KeyError):
            kind = None
        if kind.__class__ is not int:  # undecodable, empty, or a kind that is not an int
            self.malformed += 1
            log.warning("registry: malformed frame from %s", peer)
            return
        handler = self.frame_handlers.get(kind)
        if handler is None:
            # Sent by a peer that runs a tier this node does not (a tool node gets the
            # eventual tier's pushes): not an error of either side.
            label = self._kind_names.get(kind) or f"kind {kind}"
            self.unhandled_frames[label] = self.unhandled_frames.get(label, 0) + 1
            log.debug("registry: %s frame from %s, a kind this node does not take", label, peer)
            return
        handler(peer, frame)

    def _on_node(self, peer: str, up: bool) -> None:
        if not up:
            self.rpc.node_down(peer)


_UNTRACED = contextlib.nullcontext()
_PENDING: Any = object()
"""A remote local name whose monitor is being set up."""


class _Resolver:
    """The kernel's :class:`~ember.actors._resolver.Resolver`, for :class:`Name`s."""

    __slots__ = ("names",)

    def __init__(self, names: Names) -> None:
        self.names = names

    def whereis(self, dest: Any) -> Pid | tuple[Any, str] | None:
        return self.names.whereis_dest(dest)

    def send(self, dest: Any, msg: Any) -> bool:
        return self.names.send_dest(dest, msg)
