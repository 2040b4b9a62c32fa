"""The netns driver: each node process in its own network namespace on one bridge (root
needed), the client node in this process on the bridge's host address. Partitions and loss are
nftables (or iptables) drop rules on the receiving side, as Jepsen does, since this kernel has
no netem; kill -9, restart and pause as the processes driver. Everything it built (rules,
namespaces, the bridge, the processes) is removed when it stops, also after a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ._driver import DriverError
from ._nemesis import Link
from ._netns import Netns, NetnsLab, NetnsUnavailable, netns_lab, unavailable_reason
from ._procdriver import ProcessDriver
from ._scenario import Scenario

__all__ = ["NetnsDriver"]

PORT = 7000


class NetnsDriver(ProcessDriver):
    """Nodes ``n1``... in namespaces ``ember-<tag>-0``...; partitions, loss, kill, pause."""

    kind: ClassVar[str] = "netns"
    faults: ClassVar[frozenset[str]] = frozenset({"kill", "restart", "pause", "partition", "loss"})

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise DriverError(f"the netns driver cannot run here: {reason}")
        super().__init__(scenario, seed, workdir)
        self._stack = contextlib.ExitStack()
        self.lab: NetnsLab | None = None
        self._ns: dict[str, Netns] = {}
        self._cuts: set[Link] = set()
        self._loss: dict[str, float] = {}

    async def start(self) -> None:
        try:
            self.lab = self._stack.enter_context(netns_lab(len(self.names), host_address=True))
        except NetnsUnavailable as exc:
            raise DriverError(f"the netns driver cannot build its namespaces: {exc}") from exc
        self._ns = dict(zip(self.names, self.lab.namespaces, strict=True))
        procs = self.procs
        procs.host = self.lab.host or procs.host
        procs.wrap = lambda name: ["ip", "netns", "exec", self._ns[name].name]
        procs.listen_of = lambda name: f"{self._ns[name].address}:{PORT}"
        await super().start()

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            self._stack.close()  # rules, namespaces (with their veths) and the bridge

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["namespaces"] = [ns.name for ns in self._ns.values()]
        return out

    async def cut(self, links: set[Link]) -> None:
        self._cuts = set(links)
        self._apply()

    async def network_faults(
        self, targets: Iterable[str], delay: tuple[float, float] | None, loss: float | None
    ) -> None:
        if delay is not None:
            raise DriverError("the netns driver cannot delay traffic (no netem on this kernel)")
        for name in targets:
            if loss is None:
                self._loss.pop(name, None)
            else:
                self._loss[name] = loss
        self._apply()

    def _apply(self) -> None:
        """Rewrite every namespace's rules: drop what comes over a cut link, and a share of
        what comes to a lossy node."""
        lab = self.lab
        assert lab is not None
        for name, ns in self._ns.items():
            lab.clear(ns)
            cut = [self._ns[p].address for p in self.names if frozenset((name, p)) in self._cuts]
            lab.drop_from(ns, cut)
            if name in self._loss:
                others = [self._ns[p].address for p in self.names if p != name]
                lab.drop_from(ns, [*others, *([lab.host] if lab.host else [])], self._loss[name])
