"""The seam between a node and the layers it hosts as services.

A layer above the transport (Raft, the registry, pg, contracts, the admin API) is a
:class:`Service` that the node creates, starts after its transport and mesh, and stops in
reverse order before its processes. A service reaches its node only through
:class:`ServiceNode`, never by importing ``ember._node``: the layers stay below the node that
assembles them, and a test can host a service on anything that has these attributes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import UsageError

if TYPE_CHECKING:
    from .actors import Node as KernelNode
    from .mesh._events import MemberEvent
    from .mesh._messages import Member
    from .mesh._shell import Membership
    from .observability import Metrics
    from .observability._tracing import Tracing
    from .transport._dist import Distribution
    from .transport._frame import Channel
    from .transport._interface import NodeTransport

__all__ = ["Service", "ServiceNode", "send_to_node"]


class Service(Protocol):
    """A layer the node hosts. ``start`` runs once the transport and mesh are up (and the
    services added before it are started); ``stop`` runs in reverse order, before the node's
    processes stop, and must not raise.

    Optionally, for operators (``ember.observability``): ``collectors()`` (read after
    ``start``, each added to ``node.metrics`` under the service's name), ``admin_routes()``
    (mounted under ``/api/v1/<name>``), ``admin_summary()`` and ``ready()``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServiceNode(Protocol):
    """What a service may use of its node; :class:`ember.Node` satisfies it."""

    @property
    def name(self) -> str: ...

    @property
    def creation(self) -> int: ...

    @property
    def cluster(self) -> str: ...

    @property
    def rng(self) -> random.Random:
        """The node's one source of randomness: seed a generator of your own from it."""
        ...

    @property
    def data_dir(self) -> Path | None: ...

    @property
    def kernel(self) -> KernelNode:
        """The actor kernel: spawn, send, links, monitors, the process table."""
        ...

    @property
    def transport(self) -> NodeTransport | None: ...

    @property
    def dist(self) -> Distribution | None: ...

    @property
    def mesh(self) -> Membership | None: ...

    def members(self) -> tuple[Member, ...]: ...

    def on_member_event(self, listener: Callable[[MemberEvent], None]) -> Callable[[], None]: ...

    def service(self, name: str) -> Any:
        """Another service of this node by name (``"raft"``, ``"names"``, ``"pg"``...), or
        None when the node does not run it."""
        ...

    @property
    def metrics(self) -> Metrics:
        """The node's metrics registry (``ember.observability``)."""
        ...

    @property
    def tracing(self) -> Tracing:
        """The node's tracer: ``with node.tracing.span("names.register"):`` (a no-op when
        tracing is off)."""
        ...

    def observables(self) -> dict[str, Any]:
        """The node's parts the admin API shows, by name: ``transport``, ``mesh`` and every
        service but ``admin``. Each may offer ``collectors()``, ``admin_routes()``,
        ``admin_summary()`` and ``ready()`` (see ``ember.observability``)."""
        ...


def send_to_node(node: ServiceNode, peer: str, channel: Channel, payload: bytes) -> None:
    """Queue ``payload`` for ``peer`` on ``channel`` (the transport's ``send``: it may raise
    ``QueueFull``). A peer the transport has no address for is looked up in the mesh's view
    (a member may be known there first); ``NoRoute`` if neither knows it."""
    from .transport._queue import NoRoute

    transport = node.transport
    if transport is None:
        raise UsageError(f"node {node.name} is not networked: cannot reach {peer}")
    try:
        transport.send(peer, channel, payload)
    except NoRoute:
        member = next((m for m in node.members() if m.name == peer), None)
        if member is None:
            raise
        host, _, port = member.address.rpartition(":")
        transport.add_peer_address(peer, host.strip("[]"), int(port))
        transport.send(peer, channel, payload)
