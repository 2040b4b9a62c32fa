"""Discovery: what introduces peers to the mesh.

A discovery source reports :class:`Seed` addresses (``host:port``, the port serving both the node's
TCP transport and its SWIM UDP socket), optionally with the peer's node name. The node joins the
seeds it is told about, and its rejoin loop asks :meth:`Discovery.seeds` again whenever it finds
itself alone. Discovery only introduces peers: failure detection is SWIM's job.

Sources: :class:`StaticSeeds` (``--join a@host:port,...``), :class:`DnsSeeds` (A/AAAA or SRV
records, as a Kubernetes headless service provides) and ``MdnsDiscovery`` (``_mdns.py``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

from .._errors import EmberError, UsageError
from ._config import MAX_ADDRESS_SIZE, MAX_NAME_SIZE

__all__ = [
    "DEFAULT_SRV_SERVICE",
    "DISCOVERY_KINDS",
    "Discovery",
    "DiscoveryError",
    "DiscoveryStatistics",
    "DnsResolver",
    "DnsSeeds",
    "Seed",
    "SeedSpecError",
    "StaticSeeds",
    "format_address",
    "make_discovery",
    "parse_address",
    "parse_seed",
    "parse_seeds",
]

log = logging.getLogger("ember.mesh.discovery")

DEFAULT_SRV_SERVICE = "_ember._tcp"
"""SRV service prefix looked up by :class:`DnsSeeds` for a plain name without a port."""


class SeedSpecError(UsageError):
    """A seed specification (``name@host:port`` or ``host:port``) is malformed."""

    def __init__(self, spec: str, why: str) -> None:
        super().__init__(f"bad seed {spec!r}: {why}")
        self.spec = spec
        self.why = why


class DiscoveryError(EmberError):
    """A discovery source cannot work here (no multicast route, a duplicate node name...)."""


@dataclass(frozen=True, slots=True)
class Seed:
    """A peer to join: its mesh address ``host:port`` and, when known, its node name."""

    address: str
    name: str | None = None


@dataclass(slots=True, kw_only=True)
class DiscoveryStatistics:
    """Counters of one discovery source. Every field only grows; ``statistics()`` hands out
    snapshots."""

    lookups: int = 0
    """Resolutions made (DNS queries, mDNS service resolutions)."""
    found: int = 0
    """Peers reported to ``on_found`` (new ones, or known ones at a new address)."""
    removed: int = 0
    """Peers withdrawn (an mDNS goodbye)."""
    ignored_self: int = 0
    """Announcements of this node itself."""
    ignored_other_cluster: int = 0
    """Announcements of nodes of another cluster."""
    ignored_malformed: int = 0
    """Announcements or records that could not be used (bad TXT, other protocol version...)."""
    resolve_errors: int = 0
    """Resolutions that failed (DNS error or timeout, mDNS service not resolved in time)."""

    def snapshot(self) -> DiscoveryStatistics:
        """A copy of the counters."""
        return dataclasses.replace(self)


class Discovery(Protocol):
    """A source of peers. ``start``, ``stop`` and ``seeds`` are called from the node's loop."""

    async def start(self, on_found: Callable[[Seed], None]) -> None:
        """Begin; ``on_found`` is called on the loop, never concurrently, for each peer found.

        It must not block; the source may call it again for a peer whose address changed.
        """
        ...

    async def stop(self) -> None:
        """Stop finding peers and withdraw any announcement. Idempotent."""
        ...

    async def seeds(self) -> list[Seed]:
        """The peers known now (re-resolved where that makes sense); never raises for lookups."""
        ...

    def statistics(self) -> DiscoveryStatistics:
        """The counters so far."""
        ...


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:7946``); raises :class:`SeedSpecError`."""
    if len(address.encode()) > MAX_ADDRESS_SIZE:
        raise SeedSpecError(address, f"address longer than {MAX_ADDRESS_SIZE} bytes")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise SeedSpecError(address, "expected host:port")
    if host.startswith("["):
        if not host.endswith("]"):
            raise SeedSpecError(address, "unclosed [ in IPv6 address")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SeedSpecError(address, f"{host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise SeedSpecError(address, "an IPv6 host must be in brackets: [::1]:7946")
    if not host or any(c.isspace() or c in "@,/" for c in host):
        raise SeedSpecError(address, f"bad host {host!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SeedSpecError(address, f"port must be 1..65535, got {port_text!r}")
    return host, int(port_text)


def parse_seed(spec: str) -> Seed:
    """Parse ``name@host:port`` or ``host:port``; raises :class:`SeedSpecError`."""
    text = spec.strip()
    name: str | None = None
    if "@" in text:
        name, _, text = text.partition("@")
        if not name or any(c.isspace() or c in "@," for c in name):
            raise SeedSpecError(spec, f"bad node name {name!r}")
        if len(name.encode()) > MAX_NAME_SIZE:
            raise SeedSpecError(spec, f"node name longer than {MAX_NAME_SIZE} bytes")
    try:
        host, port = parse_address(text)
    except SeedSpecError as exc:
        raise SeedSpecError(spec, exc.why) from None
    return Seed(format_address(host, port), name)


def parse_seeds(specs: str | Iterable[str]) -> list[Seed]:
    """Parse comma-separated seeds (a string, or several); duplicates are kept once."""
    parts = [specs] if isinstance(specs, str) else list(specs)
    seeds: list[Seed] = []
    for part in parts:
        for spec in part.split(","):
            if not spec.strip():
                raise SeedSpecError(part, "empty seed")
            seed = parse_seed(spec)
            if seed not in seeds:
                seeds.append(seed)
    return seeds


class StaticSeeds:
    """A fixed list of seeds, as given by ``--join a@host:port,b@host:port``."""

    def __init__(self, specs: str | Iterable[str]) -> None:
        self._seeds = parse_seeds(specs)
        if not self._seeds:
            raise UsageError("static seeds: no seed given")
        self._found = 0

    async def start(self, on_found: Callable[[Seed], None]) -> None:
        """Report every seed once."""
        for seed in self._seeds:
            self._found += 1
            on_found(seed)

    async def stop(self) -> None:
        """Nothing to withdraw."""

    async def seeds(self) -> list[Seed]:
        """The seeds given."""
        return list(self._seeds)

    def statistics(self) -> DiscoveryStatistics:
        """``found`` counts reports."""
        return DiscoveryStatistics(found=self._found)


class DnsResolver(Protocol):
    """What :class:`DnsSeeds` needs of a resolver: dnspython's ``asyncresolver.Resolver`` fits.

    ``resolve`` returns the answer's rdata (an ``Answer`` iterates over them) or raises a
    ``dns.exception.DNSException``.
    """

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


class DnsSeeds:
    """Seeds from DNS, re-resolved on every :meth:`seeds` call.

    With ``port``: the A and AAAA records of ``name``, each ``address:port``. Without: the SRV
    records of ``name`` if it starts with ``_`` (``_ember._tcp.ember.default.svc.cluster.local``),
    else of ``_ember._tcp.<name>``; each target resolved to its A/AAAA records, with the SRV port.
    A failed lookup is logged and counted (``resolve_errors``), never raised.
    """

    def __init__(
        self, name: str, port: int | None = None, resolver: DnsResolver | None = None
    ) -> None:
        name = name.strip().rstrip(".")
        if not name or any(c.isspace() or c in "@,/:" for c in name):
            raise UsageError(f"DNS seeds: bad name {name!r}")
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"DNS seeds: port must be 1..65535, got {port}")
        self.name = name
        self.port = port
        self._resolver: DnsResolver = resolver or dns.asyncresolver.Resolver()
        self._c = DiscoveryStatistics()
        self._reported: set[Seed] = set()

    @property
    def srv_name(self) -> str | None:
        """The SRV name looked up, or None when resolving A/AAAA with the given port."""
        if self.port is not None:
            return None
        return self.name if self.name.startswith("_") else f"{DEFAULT_SRV_SERVICE}.{self.name}"

    async def start(self, on_found: Callable[[Seed], None]) -> None:
        """Resolve once and report what was found."""
        for seed in await self.seeds():
            on_found(seed)

    async def stop(self) -> None:
        """Nothing to withdraw."""

    async def seeds(self) -> list[Seed]:
        """Resolve now; an empty list when nothing resolved."""
        srv = self.srv_name
        if srv is None:
            assert self.port is not None
            seeds = [Seed(format_address(ip, self.port)) for ip in await self._addresses(self.name)]
        else:
            seeds = []
            for target, port in await self._srv(srv):
                seeds.extend(Seed(format_address(ip, port)) for ip in await self._addresses(target))
        unique = list(dict.fromkeys(seeds))
        for seed in unique:
            if seed not in self._reported:
                self._reported.add(seed)
                self._c.found += 1
        if not unique:
            log.warning("DNS seeds: %s resolved to no address", srv or self.name)
        return unique

    def statistics(self) -> DiscoveryStatistics:
        """``lookups`` counts queries, ``found`` distinct addresses ever returned."""
        return self._c.snapshot()

    async def _query(self, qname: str, rdtype: str) -> list[Any]:
        self._c.lookups += 1
        try:
            return list(await self._resolver.resolve(qname, rdtype))
        except dns.resolver.NoAnswer:
            return []  # the name exists without records of this type (no AAAA, say)
        except (dns.exception.DNSException, OSError) as exc:
            self._c.resolve_errors += 1
            log.warning("DNS seeds: %s %s failed: %s", rdtype, qname, exc)
            return []

    async def _addresses(self, name: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(name))]  # an SRV target may be a literal
        except ValueError:
            pass
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            for rdata in await self._query(name, rdtype):
                address = getattr(rdata, "address", None)
                if isinstance(address, str):
                    found.append(address)
                else:
                    self._c.ignored_malformed += 1
        return found

    async def _srv(self, name: str) -> list[tuple[str, int]]:
        records = []
        for rdata in await self._query(name, "SRV"):
            target, port = getattr(rdata, "target", None), getattr(rdata, "port", None)
            if target is None or not isinstance(port, int) or not 0 < port < 65536:
                self._c.ignored_malformed += 1
                continue
            records.append((rdata.priority, -rdata.weight, str(target).rstrip("."), port))
        records.sort()
        return [(target, port) for _, _, target, port in records]


DISCOVERY_KINDS = ("mdns", "seeds", "dns")


def make_discovery(
    kind: str,
    *,
    cluster: str = "default",
    node: str = "",
    host: str = "",
    port: int = 0,
    join: str | Iterable[str] | None = None,
    dns_name: str | None = None,
    dns_port: int | None = None,
    resolver: DnsResolver | None = None,
    **mdns: Any,
) -> Discovery:
    """Build the discovery source the CLI or a ``Node`` asked for.

    ``mdns``: announce ``node`` of ``cluster`` at ``host:port`` (keywords such as ``interfaces``
    go to ``MdnsDiscovery``); ``seeds``: ``join`` (``a@host:port,...``); ``dns``: ``dns_name``,
    with ``dns_port`` for A/AAAA records or without for SRV records.
    """
    if kind == "mdns":
        from ._mdns import MdnsDiscovery

        return MdnsDiscovery(cluster, node, host, port, **mdns)
    if mdns:
        raise UsageError(f"discovery {kind!r} takes no {sorted(mdns)}")
    if kind == "seeds":
        if join is None:
            raise UsageError("discovery 'seeds' needs --join name@host:port,...")
        return StaticSeeds(join)
    if kind == "dns":
        if not dns_name:
            raise UsageError("discovery 'dns' needs a DNS name")
        return DnsSeeds(dns_name, dns_port, resolver)
    raise UsageError(f"unknown discovery {kind!r}: expected 'mdns', 'seeds' or 'dns'")
