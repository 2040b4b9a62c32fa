"""The options of the registry services: :class:`RegistryConfig` (``node.names``) and
:class:`PgConfig` (``node.pg``). Frozen, keyword-only, validated on construction; the defaults
are the LAN profile, and :meth:`~RegistryConfig.local` / :meth:`~RegistryConfig.wan` tune
the timings for one machine or a wide-area network."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from .._checks import check_int, check_positive
from .._errors import UsageError
from ..consensus._cluster_config import ClusterConfig

__all__ = ["SYSTEM_GROUP", "ConflictPolicy", "PgConfig", "RegistryConfig", "check_scope"]

SYSTEM_GROUP = "ember.names"
"""The Raft group of the consistent tier."""

_SCOPE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

ConflictPolicy = Literal["kill", "notify"]
"""What happens to the losing claimant of an eventual name after a partition heals:
``"kill"`` (it exits with :class:`~ember.registry.NameConflict`, as ``global``'s default) or
``"notify"`` (it receives a :class:`~ember.registry.NameLost` message). A callable
``fn(name, loser, winner)`` may be given instead, run on the loser's node."""


def check_scope(name: Any) -> str:
    if not isinstance(name, str) or not _SCOPE.match(name):
        raise UsageError(f"a scope name is 1-100 of [A-Za-z0-9_.-], not {name!r}")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryConfig:
    """How ``node.names`` runs its tiers (see ``docs/registry.md``)."""

    expect: int = 3
    """The consistent tier's system group (``ember.names``) is founded once this many nodes
    that can vote are in the mesh (Consul's ``bootstrap_expect``); every node of a cluster
    must use the same value. Nodes that come later join it as learners, and the voter-cap
    policy of :class:`~ember.consensus.ClusterConfig` promotes them."""

    member: bool = True
    """Whether this node hosts a member (voter or learner) of the system group. A node that
    does not (a client) registers and looks up consistent names through the others."""

    group: ClusterConfig = field(default_factory=ClusterConfig)
    """The system group's Raft settings (voter cap, timings)."""

    durable: bool | None = None
    """Keep the system group's log on disk (None: when the node has a ``data_dir``)."""

    formation_settle: float = 1.0
    """Seconds the view must hold ``expect`` voters unchanged before the smallest-named of
    them proposes the founding; shorter than this, nodes that start at once may still be
    learning of each other."""

    request_timeout: float = 5.0
    """Default seconds a global ``register`` / ``unregister`` may take."""

    batch_limit: int = 4096
    """Group commit: at most this many registrations and unregistrations of one node go in
    one Raft entry of the system group (at most 65,536: a fencing token numbers its item in
    the entry with 16 bits). An entry is also kept to about half the group's
    ``max_command_bytes``."""

    batch_queue: int = 10_000
    """Group commit: at most this many registrations and unregistrations wait on one node
    while its previous entries are in flight; more are refused with
    :class:`~ember.registry.TierUnavailable` (counted in ``queue_full``)."""

    batches_in_flight: int = 1
    """Group commit: entries of one node proposed at once (1: stop and wait, the next batch
    forms while one is in flight)."""

    shards: int = 64
    """The eventual tier's map is cut into this many shards; anti-entropy compares a digest
    per shard and exchanges only the shards that differ. Every node must use the same value."""

    anti_entropy_interval: float = 1.0
    """Seconds between anti-entropy rounds, each with one random peer (digests over TCP)."""

    anti_entropy_limit: int = 4096
    """At most about this many claims travel in one anti-entropy exchange (whole shards, at
    least one): each exchange's work is bounded however far apart two replicas are; when more
    shards differ, the next exchange follows at once."""

    push_batch: int = 4096
    """At most this many changes go in one REGISTRY frame of eager delta propagation."""

    gossip_limit: int = 256
    """A turn with at most this many changes also hands them to the mesh's gossip, when they
    fit a packet (a burst goes over TCP only, so gossip is never flooded)."""

    on_conflict: ConflictPolicy = "kill"
    """The default conflict policy of eventual registrations."""

    replicate: bool = True
    """Whether this node takes part in the global tiers. False: it keeps no replica and never
    votes, and only its local tier works (a tool that asks other nodes, as the CLI does)."""

    def __post_init__(self) -> None:
        check_int("expect", self.expect, 1, 99)
        check_int("shards", self.shards, 1, 4096)
        check_int("batch_limit", self.batch_limit, 1, 1 << 16)
        check_int("batch_queue", self.batch_queue, 1, 100_000_000)
        check_int("batches_in_flight", self.batches_in_flight, 1, 64)
        check_int("push_batch", self.push_batch, 1, 1_000_000)
        check_int("anti_entropy_limit", self.anti_entropy_limit, 1, 10_000_000)
        check_int("gossip_limit", self.gossip_limit, 0, 1_000_000)
        for name in ("formation_settle", "request_timeout", "anti_entropy_interval"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.group, ClusterConfig):
            raise UsageError(f"group must be a ClusterConfig, not {self.group!r}")
        if self.on_conflict not in ("kill", "notify"):
            raise UsageError(f"on_conflict must be 'kill' or 'notify', not {self.on_conflict!r}")
        if self.durable not in (None, True, False):
            raise UsageError(f"durable must be None, True or False, not {self.durable!r}")
        for name in ("member", "replicate"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be a bool, not {getattr(self, name)!r}")

    @classmethod
    def lan(cls, **overrides: Any) -> Self:
        """The defaults: nodes on one LAN."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides: Any) -> Self:
        """Nodes on one machine (tests, demos): quick formation and anti-entropy."""
        defaults: dict[str, Any] = {"formation_settle": 0.3, "anti_entropy_interval": 0.3}
        return cls(**{**defaults, **overrides})

    @classmethod
    def wan(cls, **overrides: Any) -> Self:
        """Nodes across a WAN: slower rounds, more patience."""
        defaults: dict[str, Any] = {
            "formation_settle": 5.0,
            "anti_entropy_interval": 5.0,
            "request_timeout": 15.0,
        }
        return cls(**{**defaults, **overrides})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class PgConfig:
    """How ``node.pg`` runs (see ``docs/pg.md``)."""

    default_scope: str = "default"
    """The scope the node starts, and the one calls use when they name none."""

    scopes: tuple[str, ...] = ()
    """More scopes to start with the node."""

    resync_interval: float = 0.1
    """Seconds between attempts to send a full sync to a peer whose PG queue overflowed (its
    view of this node is then rebuilt from that sync, as after a reconnect)."""

    def __post_init__(self) -> None:
        check_scope(self.default_scope)
        if not isinstance(self.scopes, tuple):
            raise UsageError(f"scopes must be a tuple of names, not {self.scopes!r}")
        for scope in self.scopes:
            check_scope(scope)
        check_positive("resync_interval", self.resync_interval)
