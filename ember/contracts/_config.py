"""``ContractsConfig``: the options of a node's contracts service (``node.contracts``)."""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_int, check_positive
from .._errors import UsageError
from ..consensus import ClusterConfig
from ._policy import CapabilityPolicy

__all__ = ["ContractsConfig"]


def _names(field: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise UsageError(f"{field} must be a tuple of names, not {value!r}")
    if not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{field} must be a tuple of non-empty names, not {value!r}")
    return tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractsConfig:
    """How a node runs contracts. Give it as ``ember.Node(..., contracts=ContractsConfig(...))``;
    every field is checked here."""

    store: tuple[str, ...] | None = None
    """The members of the durable store, a Raft group of its own (``"ember.contracts"``): node
    names (``("a", "b", "c")``, one member each) or ``"node#k"`` ids for several on one node.
    Every node of the cluster should be given the same tuple; those named host a member. None:
    no durable runs (runs live on their own node)."""

    capabilities: tuple[str, ...] | None = None
    """What this node offers steps. None: the ``capabilities`` entry of its mesh metadata if
    it has one (``Node(meta={"capabilities": [...]})`` or ``--meta capabilities=a,b``), else
    every capability."""

    deny: tuple[str, ...] = ()
    """Capabilities this node refuses to run steps with (its policy), whatever it offers."""

    max_parallel: int = 64
    """Tasks of one run running at once (a collection's items count one each)."""

    placement_timeout: float = 30.0
    """Seconds a step may wait for a node that offers what it needs before the run fails with
    ``NoCapableNode`` (the wait shows in its status)."""

    placement_retry: float = 0.5
    """Seconds between placement attempts of a step that no node could take."""

    max_reruns: int = 3
    """Times an idempotent step is run again because its node was lost, before it fails."""

    cache_size: int = 10_000
    """Results of pure steps kept for reuse by this node's runs (0: no cache)."""

    keep_finished: int = 10_000
    """Finished runs kept in this node's local store for ``status`` (the oldest go first)."""

    store_timeout: float = 30.0
    """Seconds a write to the durable store is retried (through leader changes) before
    ``StoreUnavailable``."""

    sweep_interval: float = 0.5
    """Seconds between the store leader's sweeps: runs whose owner is gone are taken over,
    owners of runs with new events or due timers are woken."""

    takeover_grace: float = 0.0
    """Seconds after the mesh reports a run's owner failed or gone before its runs are taken
    over (0: at once; the mesh's failure detection already waited)."""

    raft: ClusterConfig | None = None
    """The store group's Raft settings (None: ``ClusterConfig()``)."""

    def __post_init__(self) -> None:
        if self.store is not None:
            store = _names("store", self.store)
            if not store or len(set(store)) != len(store):
                raise UsageError(f"store must name distinct members, not {self.store!r}")
            object.__setattr__(self, "store", store)
        if self.capabilities is not None:
            object.__setattr__(self, "capabilities", _names("capabilities", self.capabilities))
        object.__setattr__(self, "deny", _names("deny", self.deny))
        check_int("max_parallel", self.max_parallel, 1, 1_000_000)
        check_int("max_reruns", self.max_reruns, 0, 1_000)
        check_int("cache_size", self.cache_size, 0, 100_000_000)
        check_int("keep_finished", self.keep_finished, 1, 100_000_000)
        for name in (
            "placement_timeout",
            "placement_retry",
            "store_timeout",
            "sweep_interval",
        ):
            check_positive(name, getattr(self, name))
        if self.takeover_grace.__class__ not in (int, float) or self.takeover_grace < 0:
            raise UsageError(f"takeover_grace must be seconds >= 0, not {self.takeover_grace!r}")
        if self.raft is not None and not isinstance(self.raft, ClusterConfig):
            raise UsageError(f"raft must be a ClusterConfig, not {self.raft!r}")

    @property
    def policy(self) -> CapabilityPolicy:
        """This node's deny list as a policy."""
        return CapabilityPolicy(self.deny)
