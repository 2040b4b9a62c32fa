"""mDNS discovery with python-zeroconf's asyncio API.

Every node announces ``_ember._tcp.local.`` with TXT records ``cluster``, ``node`` and ``v`` (the
discovery protocol version) and browses for peers of its own cluster. See the Discovery section
of ``docs/mesh.md`` for the conditions it needs (a multicast-capable interface or route;
loopback works).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from zeroconf import (  # type: ignore[attr-defined]  # re-exported
    DNSOutgoing,
    DNSQuestion,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .._errors import UsageError
from .._tasks import OwnedTasks
from ._config import MAX_NAME_SIZE
from ._discovery import DiscoveryError, DiscoveryStatistics, Seed, format_address

__all__ = ["MDNS_PROTOCOL_VERSION", "SERVICE_TYPE", "Interfaces", "MdnsDiscovery"]

log = logging.getLogger("ember.mesh.discovery")

SERVICE_TYPE = "_ember._tcp.local."
MDNS_PROTOCOL_VERSION = "1"
"""TXT ``v``: peers announcing another version are ignored (counted as malformed)."""

Interfaces = Literal["auto"] | InterfaceChoice | list[str]
_MAX_LABEL = 63  # bytes in one DNS label: the service instance name
_DNS_PTR, _DNS_IN, _DNS_QUERY_FLAGS = 12, 1, 0


def instance_name(cluster: str, node: str) -> str:
    """The service instance label: ``node@cluster``, hashed down when over 63 bytes.

    The cluster is part of it so two clusters on one LAN may use the same node names.
    """
    label = f"{node}@{cluster}"
    if len(label.encode()) <= _MAX_LABEL:
        return label
    digest = hashlib.sha256(label.encode()).hexdigest()[:16]
    return f"{node.encode()[:40].decode(errors='ignore')}-{digest}"


class MdnsDiscovery:
    """Announce this node over mDNS and report peers of its cluster.

    ``host`` is the IPv4 address announced (``localhost`` means 127.0.0.1). ``interfaces``:
    ``"auto"`` (default) is ``[host]``: mDNS on the interface holding ``host``, which needs no
    multicast route (loopback works); ``InterfaceChoice.Default`` is the interface the routing
    table picks for 224.0.0.251 (needs a default or ``224.0.0.0/4`` route);
    ``InterfaceChoice.All`` (every IPv4 interface) or a list of interface addresses pass through
    to zeroconf.
    ``zc`` shares an ``AsyncZeroconf`` (not closed on stop). ``probe``: check the name is unique
    before announcing (RFC 6762 probing, about 1.2 s, inside :meth:`start`); without it the
    announcement goes out at once (zeroconf's ``cooperating_responders``).
    """

    def __init__(
        self,
        cluster: str,
        node: str,
        host: str,
        port: int,
        *,
        interfaces: Interfaces = "auto",
        zc: AsyncZeroconf | None = None,
        probe: bool = True,
        resolve_timeout: float = 3.0,
    ) -> None:
        for what, value in (("cluster", cluster), ("node", node)):
            if not value or len(value.encode()) > MAX_NAME_SIZE or "=" in value:
                raise UsageError(f"mDNS: bad {what} name {value!r}")
        if not 0 < port < 65536:
            raise UsageError(f"mDNS: port must be 1..65535, got {port}")
        if host in ("", "localhost"):
            host = "127.0.0.1"
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise UsageError(f"mDNS: host must be an IPv4 address, got {host!r}") from None
        self.cluster, self.node, self.host, self.port = cluster, node, host, port
        if ip.is_unspecified:
            raise UsageError("mDNS: announce a concrete address, not 0.0.0.0")
        if interfaces == "auto":
            interfaces = [host]
        self.interfaces: InterfaceChoice | list[str] = interfaces
        self.probe = probe
        self.resolve_timeout = resolve_timeout
        self.service_name = f"{instance_name(cluster, node)}.{SERVICE_TYPE}"
        self._zc_given = zc
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._announce: Awaitable[Any] | None = None
        self._on_found: Callable[[Seed], None] | None = None
        self._peers: dict[str, Seed] = {}
        self._tasks = OwnedTasks(log, "mDNS: resolving a peer")
        self._last_query: float | None = None
        self._c = DiscoveryStatistics()

    async def start(self, on_found: Callable[[Seed], None]) -> None:
        """Browse, then announce; raises :class:`DiscoveryError` if mDNS cannot work here."""
        if self._azc is not None:
            raise UsageError("mDNS discovery already started")
        self._on_found = on_found
        try:
            self._azc = self._zc_given or AsyncZeroconf(
                interfaces=self.interfaces, ip_version=IPVersion.V4Only
            )
        except OSError as exc:
            raise DiscoveryError(
                f"mDNS: cannot join the multicast group on {self.interfaces}: {exc}; give the "
                "node a concrete IPv4 host, or add a multicast route "
                "(ip route add 224.0.0.0/4 dev <if>)"
            ) from exc
        self._browser = AsyncServiceBrowser(
            self._azc.zeroconf, SERVICE_TYPE, handlers=[self._on_service_state_change]
        )
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.service_name,
            addresses=[ipaddress.IPv4Address(self.host).packed],
            port=self.port,
            properties={"cluster": self.cluster, "node": self.node, "v": MDNS_PROTOCOL_VERSION},
        )
        try:
            self._announce = await self._azc.async_register_service(
                self._info, cooperating_responders=not self.probe
            )
        except NonUniqueNameException:
            await self.stop()
            raise DiscoveryError(
                f"mDNS: another node named {self.node!r} already announces cluster {self.cluster!r}"
            ) from None

    async def stop(self) -> None:
        """Stop browsing, send the goodbye, close zeroconf if it is ours. Idempotent."""
        azc, self._azc = self._azc, None
        if azc is None:
            return
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        await self._tasks.cancel_all()
        if isinstance(self._announce, asyncio.Future) and not self._announce.done():
            self._announce.cancel()
        self._announce = None
        registry = azc.zeroconf.registry
        if self._info is not None and registry.async_get_info_name(self.service_name) is not None:
            await (await azc.async_unregister_service(self._info))
        self._info = None
        if self._zc_given is None:
            await azc.async_close()

    async def seeds(self) -> list[Seed]:
        """Peers heard of so far; also asks the network again (at most once a second).

        The browser queries only at start-up (about 0.1, 1, 5 and 14 s) and then when records
        near their expiry, so a node that is alone (after a partition, say) re-asks here.
        """
        azc = self._azc
        now = asyncio.get_running_loop().time()
        if azc is not None and (self._last_query is None or now - self._last_query >= 1.0):
            self._last_query = now
            out = DNSOutgoing(_DNS_QUERY_FLAGS, True)
            out.add_question(DNSQuestion(SERVICE_TYPE, _DNS_PTR, _DNS_IN))
            azc.zeroconf.async_send(out)
        return list(self._peers.values())

    def statistics(self) -> DiscoveryStatistics:
        """Counters: found, removed, ignored (self, other cluster, malformed), resolve errors."""
        return self._c.snapshot()

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        # Called by the browser on the event loop.
        if name == self.service_name:
            if state_change is ServiceStateChange.Added:
                self._c.ignored_self += 1
            return
        if state_change is ServiceStateChange.Removed:
            if self._peers.pop(name, None) is not None:
                self._c.removed += 1
            return
        self._tasks.spawn(self._resolve(zeroconf, name))

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        self._c.lookups += 1
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(zeroconf, self.resolve_timeout * 1000):
            self._c.resolve_errors += 1
            log.info("mDNS: %s did not resolve within %.1f s", name, self.resolve_timeout)
            return
        txt = info.decoded_properties
        cluster, node = txt.get("cluster"), txt.get("node")
        if txt.get("v") != MDNS_PROTOCOL_VERSION or not node or not cluster:
            self._c.ignored_malformed += 1
            return
        if cluster != self.cluster:
            self._c.ignored_other_cluster += 1
            return
        if node == self.node:
            self._c.ignored_self += 1
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses or not info.port:
            self._c.ignored_malformed += 1
            return
        seed = Seed(format_address(addresses[0], info.port), node)
        if self._peers.get(name) == seed or self._azc is None:
            return
        self._peers[name] = seed
        self._c.found += 1
        if self._on_found is not None:
            self._on_found(seed)
