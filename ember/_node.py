"""``ember.Node``: the kernel node plus, when asked to listen or connect, the TCP transport (or,
on a simulated network, an endpoint of it)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UsageError
from ._services import Service
from ._skew import rate_follower
from .actors import Node as KernelNode
from .actors import Pid, Statistics
from .consensus._host import RaftHost
from .consensus._metrics import RaftProbe
from .contracts._config import ContractsConfig
from .contracts._service import ContractsService
from .mesh._config import SwimConfig
from .mesh._discovery import Discovery, format_address, make_discovery, parse_seeds
from .mesh._events import MemberEvent
from .mesh._messages import Member
from .mesh._metrics import MeshProbe
from .mesh._netdiscovery import NetworkDiscovery
from .mesh._shell import Membership
from .observability import AdminConfig, Metrics
from .observability._actors import kernel_collector, receive_histogram
from .observability._otlp import MetricsExportConfig
from .observability._tracing import Tracing, TracingConfig
from .registry._config import PgConfig, RegistryConfig
from .registry._metrics import NamesProbe, PgProbe
from .registry._names import Names
from .registry._pg import ProcessGroups
from .transport._codec import Codec
from .transport._config import TransportConfig
from .transport._cookie import normalize_cookie
from .transport._dist import Distribution
from .transport._frame import Channel
from .transport._interface import NodeTransport
from .transport._memory import MemoryNetwork
from .transport._memory_datagrams import OnDatagram, sim_address
from .transport._metrics import TransportProbe
from .transport._transport import Transport, parse_address

if TYPE_CHECKING:
    from .observability._admin import AdminService

log = logging.getLogger("ember.node")


def parse_node_address(spec: str) -> tuple[str, str, int]:
    """``"b@127.0.0.1:7002"`` -> ``("b", "127.0.0.1", 7002)``."""
    name, sep, address = spec.partition("@")
    if not sep or not name:
        raise UsageError(f"a node address looks like 'name@host:port', got {spec!r}")
    host, port = parse_address(address)
    return name, host, port


def next_creation(data_dir: Path) -> int:
    """Bump and return the incarnation counter kept in ``data_dir/creation``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "creation"
    try:
        last = int(path.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        last = 0
    creation = last % (2**31 - 1) + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{creation}\n")
    os.replace(tmp, path)
    return creation


default_seed: ContextVar[int | None] = ContextVar("ember_default_seed", default=None)
"""Seeds each :class:`Node` made without ``seed=`` in this context (mixed with its name): the
pytest plugin sets it per test, so every node a failing test made replays from one seed."""


class Node(KernelNode):
    """One Ember node. Without ``listen``/``connect`` it is a local node; with them it runs the
    TCP transport, and pids, links, monitors and calls work across nodes.

    ``cookie`` is the cluster's shared secret (never sent; both sides prove they know it);
    whitespace around it is not part of it, as for ``--cookie-file`` (``docs/nodes.md``).
    ``connect`` lists ``"name@host:port"`` peers to connect to at start. ``creation`` numbers
    this incarnation of the node name; by default it is a counter kept in ``data_dir`` (if
    given) or derived from the clock, so pids of an earlier run never name new processes.
    ``spawn_allow`` lists module prefixes other nodes may spawn from (``None``: any).

    Membership (SWIM gossip, see ``docs/mesh.md``) runs when ``discovery`` (``"mdns"``,
    ``"dns"``, ``"seeds"``, ``"sim"`` on a simulated network, or
    :class:`~ember.mesh.Discovery` objects), ``join`` (seeds, ``"name@host:port"`` or
    ``"host:port"``) or ``mesh`` (a :class:`~ember.mesh.SwimConfig` or a
    profile name: ``"local"``, ``"lan"``, ``"wan"``) is given. ``dns`` names the DNS seed
    record (``"name"`` for SRV records, ``"name:port"`` for A/AAAA records); ``meta`` is this
    node's gossiped metadata. The mesh uses the transport's port for UDP as well;
    ``advertise`` (``"host:port"``) is the address others reach this node at when it listens
    on a wildcard address. ``mdns_probe=False`` skips mDNS name probing (about 1 s at start;
    it refuses a second live node of the same name), for clusters whose names are unique by
    construction.

    ``mailbox_warning``: a mailbox longer than this is logged once with its pid and class and
    listed in :meth:`statistics` (``None``: never; see ``docs/actors.md``).

    ``contracts`` configures the contracts service (``node.contracts``, see
    ``docs/contracts.md``).

    ``seed`` seeds :attr:`rng`, the one source of randomness of the node's protocol cores
    (SWIM probe order and jitter, Raft election timeouts): with a seed and the virtual-time
    loop a test replays exactly. ``None`` seeds from the operating system.

    ``admin`` (an :class:`~ember.observability.AdminConfig`) serves the admin API, the
    Prometheus metrics and the dashboard on their own port (``node.admin``; see
    ``docs/operability.md``). Metrics are kept either way (``node.metrics``). ``tracing``
    (a :class:`~ember.observability.TracingConfig`) turns on OpenTelemetry spans (off and
    free by default; ``node.tracing``); ``metrics_export`` (a
    :class:`~ember.observability.MetricsExportConfig`) pushes the metrics over OTLP.

    ``network`` puts the node on a simulated network (``ember.testing.SimNetwork``, the same
    object as :class:`ember.transport.MemoryNetwork`) instead of TCP and UDP: the transport is
    an endpoint of that network, the mesh's datagrams travel on it, ``listen`` is not needed
    (the node's address is ``network.address_of(name)``), the cookie defaults to ``"sim"`` and
    the creation to the network's counter for the name. Everything above the transport runs
    unchanged, so a whole cluster runs in one process on the virtual-time loop.

    ``registry`` configures ``node.names`` (a :class:`~ember.registry.RegistryConfig`: the
    consistent tier's ``expect``, the eventual tier's timings) and ``pg`` configures
    ``node.pg`` (a :class:`~ember.registry.PgConfig`: the scopes to start).
    """

    def __init__(
        self,
        name: str = "nonode",
        *,
        listen: str | None = None,
        cookie: str | bytes | None = None,
        cluster: str = "ember",
        connect: Iterable[str] = (),
        config: TransportConfig | None = None,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        creation: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        spawn_allow: tuple[str, ...] | None = None,
        discovery: str | Iterable[Discovery] | None = None,
        join: Iterable[str] = (),
        dns: str | None = None,
        mesh: SwimConfig | str | None = None,
        meta: Mapping[str, Any] | None = None,
        advertise: str | None = None,
        mdns_probe: bool = True,
        seed: int | None = None,
        admin: AdminConfig | None = None,
        tracing: TracingConfig | None = None,
        metrics_export: MetricsExportConfig | None = None,
        network: MemoryNetwork | None = None,
        registry: RegistryConfig | None = None,
        pg: PgConfig | None = None,
        mailbox_warning: int | None = 10_000,
        contracts: ContractsConfig | None = None,
    ) -> None:
        self._connect = [parse_node_address(c) for c in connect]
        self._seeds = parse_seeds(join)
        self._discovery = discovery
        self._dns = dns
        self._mesh_config = _swim_config(mesh) if mesh is not None else None
        self._meshed = discovery is not None or bool(self._seeds) or mesh is not None
        self._meta = meta
        self._advertise = parse_address(advertise) if advertise is not None else None
        self._mdns_probe = mdns_probe
        self._network = network
        if network is not None:
            if listen is not None or ssl_server is not None or ssl_client is not None:
                raise UsageError("a node on a simulated network takes no listen address or TLS")
            cookie = cookie or "sim"
        elif self._meshed and listen is None:
            raise UsageError("a node in a mesh must listen (other members reach it there)")
        self._listen = listen
        self._networked = listen is not None or bool(self._connect) or network is not None
        if self._networked:
            if not cookie:
                raise UsageError("a distributed node needs a cookie")
            cookie = normalize_cookie(cookie)  # the one rule: surrounding whitespace is not in it
        if creation is None:
            if data_dir is not None:
                creation = next_creation(Path(data_dir))
            elif network is not None:
                creation = network.next_creation(name)
            elif self._networked:
                creation = int(time.time() * 1000) % (2**31 - 1) + 1
            else:
                creation = 1
        super().__init__(name, creation=creation, mailbox_warning=mailbox_warning)
        self.cluster = cluster
        if seed is None and (base := default_seed.get()) is not None:
            seed = zlib.crc32(f"{base}/{name}".encode())
        self.rng = random.Random(seed)
        """The node's source of randomness; each core gets a generator seeded from it."""
        self.data_dir = Path(data_dir) if data_dir is not None else None
        """Where this node keeps durable state (Raft logs, the creation counter), if anywhere."""
        self._cookie = cookie
        self._config = config
        self._ssl = (ssl_server, ssl_client)
        self._spawn_allow = spawn_allow
        self._codec = Codec()
        self._bound: tuple[str, int] | None = None
        self.transport: NodeTransport | None = None
        self.dist: Distribution | None = None
        self.mesh: Membership | None = None
        self._member_subscribers: set[Pid] = set()
        self._services: dict[str, Service] = {}
        self.raft: RaftHost | None = None
        """This node's Raft groups (see ``ember.consensus``), once started."""
        if contracts is not None and not isinstance(contracts, ContractsConfig):
            raise UsageError(f"contracts must be a ContractsConfig, not {contracts!r}")
        self._contracts_config = contracts
        self.contracts: ContractsService | None = None
        """This node's contracts service (see ``ember.contracts``), once started."""
        if admin is not None and not isinstance(admin, AdminConfig):
            raise UsageError(f"admin must be an AdminConfig, not {admin!r}")
        self._admin_config = admin
        self.admin: AdminService | None = None
        """The admin API (``Node(admin=AdminConfig(...))``), once started."""
        if tracing is not None and not isinstance(tracing, TracingConfig):
            raise UsageError(f"tracing must be a TracingConfig, not {tracing!r}")
        self._tracing = Tracing(tracing, name)
        if metrics_export is not None and not isinstance(metrics_export, MetricsExportConfig):
            raise UsageError(
                f"metrics_export must be a MetricsExportConfig, not {metrics_export!r}"
            )
        self._metrics_export = metrics_export
        self._metrics = Metrics()
        receive = receive_histogram()
        self.time_receives(receive.observe)
        self._metrics.add("actors", lambda: kernel_collector(self, receive))
        if registry is not None and not isinstance(registry, RegistryConfig):
            raise UsageError(f"registry must be a RegistryConfig, not {registry!r}")
        if pg is not None and not isinstance(pg, PgConfig):
            raise UsageError(f"pg must be a PgConfig, not {pg!r}")
        self._registry_config = registry or RegistryConfig()
        self._pg_config = pg or PgConfig()
        self._names_service: Names | None = None
        self._pg_service: ProcessGroups | None = None

    @property
    def metrics(self) -> Metrics:
        """This node's metrics registry: every layer's collectors (``ember.observability``)."""
        return self._metrics

    @property
    def tracing(self) -> Tracing:
        """This node's tracer (disabled unless ``Node(tracing=TracingConfig(...))``)."""
        return self._tracing

    def observables(self) -> dict[str, Any]:
        """The parts the admin API shows: transport, mesh and the services but admin."""
        out: dict[str, Any] = {}
        if self.transport is not None:
            out["transport"] = TransportProbe(self.transport)
        if self.mesh is not None:
            out["mesh"] = MeshProbe(self.mesh)
        for name, service in self._services.items():
            if isinstance(service, RaftHost):
                out[name] = RaftProbe(service)
            elif isinstance(service, Names):
                out[name] = NamesProbe(service)
            elif isinstance(service, ProcessGroups):
                out[name] = PgProbe(service)
            elif name not in ("admin", "metrics_export"):
                out[name] = service
        return out

    @property
    def names(self) -> Names:
        """The registry: global names in three tiers (see ``ember.registry``)."""
        if self._names_service is None:
            raise UsageError(f"node {self.name} is not started: it has no names yet")
        return self._names_service

    @property
    def pg(self) -> ProcessGroups:
        """Process groups with OTP ``pg`` semantics (see ``ember.registry``)."""
        if self._pg_service is None:
            raise UsageError(f"node {self.name} is not started: it has no pg yet")
        return self._pg_service

    @property
    def kernel(self) -> KernelNode:
        """The actor kernel of this node (the node itself), for services."""
        return self

    def service(self, name: str) -> Any:
        """The service ``name`` this node runs (``"raft"``...), or None."""
        return self._services.get(name)

    def _add_service(self, name: str, service: Service) -> None:
        if name in self._services:
            raise UsageError(f"node {self.name} already runs a {name!r} service")
        self._services[name] = service

    async def _start_services(self) -> None:
        if self._admin_config is not None:
            from .observability._admin import AdminService  # aiohttp: only when served

            token = self._admin_config.resolve_token(self._cookie, self.cluster)
            self.admin = AdminService(self, self._admin_config, token)
            self._add_service("admin", self.admin)
        if self._metrics_export is not None:
            from .observability._otlp import MetricsExport

            export = MetricsExport(self._metrics, self._metrics_export, self.name)
            self._add_service("metrics_export", export)
        for name in ("transport", "mesh"):
            self._add_collectors(name, self.observables().get(name))
        for name, service in self._services.items():
            await service.start()
            self._add_collectors(name, self.observables().get(name, service))

    def _add_collectors(self, name: str, part: Any) -> None:
        """Add ``part``'s ``collectors()`` (if it has any) to the node's metrics."""
        collectors = getattr(part, "collectors", None)
        for i, collector in enumerate(collectors() if collectors is not None else ()):
            self._metrics.add(f"{name}/{i}" if i else name, collector)

    async def _stop_services(self) -> None:
        for name, service in reversed(self._services.items()):
            try:
                await service.stop()
            except Exception:
                log.exception("node %s: stopping service %s failed", self.name, name)

    @property
    def address(self) -> str | None:
        """The address the node listens on, ``"host:port"`` (``"[v6]:port"`` for IPv6), once
        started; None if it does not listen. ``ember.Node(..., connect=[f"a@{a.address}"])``."""
        return format_address(*self._bound) if self._bound is not None else None

    async def start(self) -> None:
        """Start the kernel, then the transport (if distributed) and the connections asked for.
        If any of it fails (a port in use, a name already taken in the cluster...), what was
        started is stopped again and the error raised."""
        await super().start()
        try:
            await self._start_layers()
        except BaseException:
            await self.stop()
            raise

    async def _start_layers(self) -> None:
        self.raft = RaftHost(self)
        self._add_service("raft", self.raft)
        self._add_registry_services()
        self.contracts = ContractsService(self, self._contracts_config)
        self._add_service("contracts", self.contracts)
        if not self._networked:
            await self._start_services()
            return
        assert self._cookie is not None
        dist: Distribution | None = None

        def on_frames(peer: str, frames: Any) -> None:
            assert dist is not None
            dist.on_frames(peer, frames)

        def on_up(peer: str, creation: int) -> None:
            assert dist is not None
            dist.on_node_up(peer, creation)

        def on_down(peer: str, reason: str) -> None:
            assert dist is not None
            dist.on_node_down(peer, reason)

        transport: NodeTransport
        if self._network is not None:
            transport = self._network.endpoint(
                self.name,
                self.cluster,
                self._cookie,
                self.creation,
                self._config,
                on_frames=on_frames,
                on_node_up=on_up,
                on_node_down=on_down,
            )
        else:
            transport = Transport(
                self.name,
                self.cluster,
                self._cookie,
                self.creation,
                self._config,
                on_frames=on_frames,
                on_node_up=on_up,
                on_node_down=on_down,
                ssl_server=self._ssl[0],
                ssl_client=self._ssl[1],
                rng=random.Random(self.rng.getrandbits(64)),
            )
        self.transport = transport
        dist = self.dist = Distribution(
            self, transport, codec=self._codec, spawn_allow=self._spawn_allow
        )
        dist.attach()
        if isinstance(transport, Transport):
            # Fault requests from `ember fault` and other nodes (refused unless enabled).
            dist.add_channel_handler(Channel.ADMIN, transport.faults.channel.on_frame)
            if transport.faults.enabled:  # a clock skew set through the hook skews this loop
                faults = transport.faults
                follow = rate_follower(asyncio.get_running_loop(), lambda: faults.clock_rate)
                faults.add_listener(follow)
        if self._tracing.enabled:
            dist.tracing = self._tracing
        bound = await transport.start(self._listen)
        if self._network is not None:
            bound = sim_address(self.name)
        self._bound = bound
        if self._meshed:
            assert bound is not None
            await self._start_mesh(*(self._advertise or bound))
        await self._start_services()
        for peer, host, port in self._connect:
            await self.connect_node(f"{peer}@{host}:{port}")

    def _add_registry_services(self) -> None:
        self._names_service = Names(self, self._registry_config)
        self._add_service("names", self._names_service)
        self._pg_service = ProcessGroups(self, self._pg_config)
        self._add_service("pg", self._pg_service)

    async def _start_mesh(self, host: str, port: int) -> None:
        if host in ("0.0.0.0", "::", ""):
            raise UsageError("listening on a wildcard address needs advertise='host:port'")
        assert self.transport is not None and self.dist is not None and self._cookie is not None
        config = self._mesh_config or SwimConfig.lan()
        sources: list[Discovery] = []
        if self._network is not None and self._discovery in ("mdns", "dns"):
            raise UsageError(
                f"discovery {self._discovery!r} needs real sockets; on a simulated network "
                "use discovery='sim' or join="
            )
        if self._discovery == "sim":
            if self._network is None:
                raise UsageError("discovery 'sim' is for nodes on a simulated network")
            sources.append(NetworkDiscovery(self._network, node=self.name, cluster=self.cluster))
        elif self._discovery == "mdns":
            sources.append(
                make_discovery(
                    "mdns",
                    cluster=self.cluster,
                    node=self.name,
                    host=host,
                    port=port,
                    probe=self._mdns_probe,
                )
            )
        elif self._discovery == "dns":
            dns_name, _, dns_port = (self._dns or "").rpartition(":")
            if not dns_port.isdigit():
                dns_name, dns_port = self._dns or "", ""
            sources.append(
                make_discovery(
                    "dns", dns_name=dns_name, dns_port=int(dns_port) if dns_port else None
                )
            )
        elif self._discovery not in (None, "seeds"):
            if isinstance(self._discovery, str):
                raise UsageError(
                    f"discovery must be mdns, dns, seeds or sim, not {self._discovery!r}"
                )
            sources = list(self._discovery)
        network = self._network
        datagrams = None
        incarnation = None
        if network is not None:
            # Deterministic where the real shell reads the wall clock: each start of a name
            # has a higher creation, so it outranks its past self (room for 2**20 refutations),
            # and a run does not depend on when in the loop's time it began.
            incarnation = self.creation << 20

            async def datagrams(on_datagram: OnDatagram, bind: tuple[str, int]) -> Any:
                assert network is not None
                return network.bind_datagrams(self.name, bind, on_datagram)

        self.mesh = Membership(
            name=self.name,
            cluster=self.cluster,
            cookie=self._cookie,
            transport=self.transport,
            router=self.dist,
            config=config,
            host=host,
            port=port,
            meta=self._meta,
            seeds=self._seeds,
            discovery=sources,
            rng=random.Random(self.rng.getrandbits(64)),
            incarnation=incarnation,
            datagrams=datagrams,
        )
        self.mesh.add_listener(self._member_event)
        await self.mesh.start()

    def members(self) -> tuple[Member, ...]:
        """The membership as this node sees it (itself included), sorted by name; empty when
        the node runs no mesh."""
        return self.mesh.members() if self.mesh is not None else ()

    def subscribe_members(self, flag: bool = True) -> None:
        """The calling process gets every member event (``MemberJoined``, ``MemberSuspect``,
        ``MemberAlive``, ``MemberUpdated``, ``MemberFailed``, ``MemberLeft``,
        ``MemberReaped``) as a message; ``False`` stops it."""
        me = self._caller("subscribe_members")
        if flag:
            self._member_subscribers.add(me._pid)
        else:
            self._member_subscribers.discard(me._pid)

    def on_member_event(self, listener: Callable[[MemberEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` from the loop for every member event (for layers built on
        the mesh); returns a function that removes it."""
        if self.mesh is None:
            raise UsageError(f"node {self.name} runs no mesh")
        return self.mesh.add_listener(listener)

    def _member_event(self, event: MemberEvent) -> None:
        for pid in list(self._member_subscribers):
            proc = self._lookup(pid)
            if proc is None:
                self._member_subscribers.discard(pid)
            else:
                proc._deliver(event)

    async def connect_node(self, spec: str) -> None:
        """Connect to ``"name@host:port"`` (returns once connected)."""
        if self.transport is None:
            raise UsageError(f"node {self.name} is not distributed")
        peer, host, port = parse_node_address(spec)
        self.transport.add_peer_address(peer, host, port)
        await self.transport.connect(peer, host, port)

    def register_type(self, cls: type[Any], code: int | None = None) -> None:
        """Let instances of dataclass ``cls`` travel in messages to other nodes (every node
        that receives them must register it too, with the same ``code`` if one is given)."""
        self._codec.register(cls, code)

    def statistics(self) -> Statistics:
        """The kernel's figures (``ember.actors.Node.statistics``) plus, for a distributed
        node, back-pressure to and from other nodes as ``remote_<name>`` counters
        (``ember.transport._flow.FlowStats``) and the distribution's own as ``dist_<name>``
        (``dist_undecodable``, ``dist_replies_failed``...: ``Distribution.statistics``)."""
        stats = super().statistics()
        if self.dist is not None:
            flow = self.dist.flow.stats
            stats.counters.update({f"remote_{k}": getattr(flow, k) for k in flow.__slots__})
            stats.counters.update({f"dist_{k}": v for k, v in self.dist.statistics().items()})
        return stats

    def connected_nodes(self) -> list[str]:
        """Names of the nodes this node has an open connection to."""
        return self.transport.connected_nodes() if self.transport is not None else []

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a grace period
        """Stop every process (their exit signals still reach remote links), then the
        transport."""
        await self._stop_services()
        try:
            await super().stop(timeout)
        finally:
            if self.mesh is not None:
                await self.mesh.leave(self.mesh.config.leave_timeout)
            if self.dist is not None:
                await self.dist.close()
            if self.transport is not None:
                await self.transport.close()
                self.attach_remote(None)
            self._tracing.shutdown()


def _swim_config(mesh: SwimConfig | str) -> SwimConfig:
    if isinstance(mesh, SwimConfig):
        return mesh
    profiles = {"local": SwimConfig.local, "lan": SwimConfig.lan, "wan": SwimConfig.wan}
    if mesh not in profiles:
        raise UsageError(f"mesh profile must be one of {sorted(profiles)}, not {mesh!r}")
    return profiles[mesh]()
