"""A network-namespace lab: N namespaces on one Linux bridge (the netns driver's, and the
multi-process tests').

``with netns_lab(3) as lab:`` creates a bridge and three namespaces, each with a veth into the
bridge (``eth0`` inside, an address in a private 10.201.x.0/24 that nothing else on the machine
uses), loopback up and, unless ``multicast_route=False``, the route ``224.0.0.0/4 dev eth0`` that
mDNS needs for zeroconf's default interface choice. ``lab.popen(ns, argv)`` runs a command inside
a namespace; ``lab.partition(a, b)`` drops, on the receiving side, every packet between the two
groups (nftables if installed, else iptables) and ``lab.heal()`` removes the rules. On exit (also
on failure) the processes the lab started are terminated by pid, and the namespaces and the bridge
are deleted. Traffic only ever goes to the lab's own addresses.

Needs root and ``ip`` (iproute2); :func:`unavailable_reason` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Netns",
    "NetnsLab",
    "NetnsUnavailable",
    "netns_lab",
    "unavailable_reason",
]

SUBNET_PREFIX = "10.201"
_TABLE = "ember_partition"


class NetnsUnavailable(RuntimeError):
    """The lab cannot be built here (not root, no iproute2, namespaces refused)."""


def unavailable_reason() -> str | None:
    """Why no lab can be built here, or None."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (the ip command)"
    return None


def firewall_tool() -> str | None:
    """``nft`` or ``iptables``, whichever is installed (nft preferred), for partitions."""
    for tool in ("nft", "iptables"):
        if shutil.which(tool) is not None:
            return tool
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _subnet_in_use(third: int) -> bool:
    prefix = f"{SUBNET_PREFIX}.{third}."
    texts = [_ip("-4", "addr").stdout, _ip("-4", "route", "show", "table", "all").stdout]
    for line in _ip("netns", "list").stdout.splitlines():
        if line.split():
            texts.append(_ip("-n", line.split()[0], "-4", "addr", check=False).stdout)
    return any(prefix in text for text in texts)


@dataclass(frozen=True, slots=True)
class Netns:
    """One namespace of the lab: its name, its address on the bridge, its index."""

    name: str
    address: str
    index: int


@dataclass(slots=True)
class NetnsLab:
    """A bridge and its namespaces; build it with :func:`netns_lab`."""

    tag: str
    subnet: str
    bridge: str
    namespaces: list[Netns] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    partitioned: set[str] = field(default_factory=set)
    host: str | None = None
    """This (the root) namespace's address on the bridge, if it was given one."""

    def popen(self, ns: Netns, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside ``ns`` (``ip netns exec`` execs it: the pid is the command's).

        Text mode with stdout piped unless overridden; the lab terminates it on exit.
        """
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc: subprocess.Popen[str] = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, *argv], **kwargs
        )
        self.processes.append(proc)
        return proc

    def run(self, ns: Netns, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run a short command inside ``ns``; raises ``CalledProcessError`` if it fails."""
        return subprocess.run(
            ["ip", "netns", "exec", ns.name, *argv],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )

    def partition(self, side_a: Iterable[Netns], side_b: Iterable[Netns]) -> None:
        """Drop every packet between the two groups, on the receiving side of each."""
        group_a, group_b = list(side_a), list(side_b)
        for receivers, senders in ((group_a, group_b), (group_b, group_a)):
            for ns in receivers:
                self.drop_from(ns, [s.address for s in senders])

    def heal(self) -> None:
        """Remove every partition rule."""
        for ns in self.namespaces:
            if ns.name in self.partitioned:
                self._clear_rules(ns)
        self.partitioned.clear()

    def drop_from(self, ns: Netns, sources: list[str], probability: float | None = None) -> None:
        """Drop, at ``ns``, packets from ``sources``: all of them, or each with
        ``probability`` (nftables ``numgen`` / iptables ``statistic``: loss without netem)."""
        if not sources:
            return
        tool = firewall_tool()
        if tool is None:
            raise NetnsUnavailable("partitions need nftables or iptables")
        if tool == "nft":
            chance = (
                ""
                if probability is None
                else f"numgen random mod 1000 < {round(probability * 1000)} "
            )
            script = (
                f"add table inet {_TABLE}\n"
                f"add chain inet {_TABLE} input "
                "{ type filter hook input priority -10; policy accept; }\n"
                f"add rule inet {_TABLE} input ip saddr {{ {', '.join(sources)} }} {chance}drop\n"
            )
            subprocess.run(
                ["ip", "netns", "exec", ns.name, "nft", "-f", "-"],
                input=script,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
        else:
            odds = [] if probability is None else [
                "-m", "statistic", "--mode", "random", "--probability", str(probability)
            ]  # fmt: skip
            for source in sources:
                self.run(ns, ["iptables", "-I", "INPUT", "-s", source, *odds, "-j", "DROP"])
        self.partitioned.add(ns.name)

    def clear(self, ns: Netns) -> None:
        """Remove every drop rule of ``ns``."""
        if ns.name in self.partitioned:
            self._clear_rules(ns)
            self.partitioned.discard(ns.name)

    def _clear_rules(self, ns: Netns) -> None:
        if firewall_tool() == "nft":
            self.run(ns, ["nft", "delete", "table", "inet", _TABLE])
        else:
            self.run(ns, ["iptables", "-F", "INPUT"])

    def _stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                if stream is not None:
                    stream.close()


def _pick_subnet(rng: random.Random) -> int:
    for _ in range(50):
        third = rng.randrange(1, 255)
        if not _subnet_in_use(third):
            return third
    raise NetnsUnavailable(f"no free {SUBNET_PREFIX}.x.0/24 subnet found")


@contextlib.contextmanager
def netns_lab(
    n: int, *, multicast_route: bool = True, host_address: bool = False
) -> Iterator[NetnsLab]:
    """Build a lab of ``n`` namespaces (1 <= n <= 200) and tear it down on exit."""
    reason = unavailable_reason()
    if reason is not None:
        raise NetnsUnavailable(reason)
    if not 1 <= n <= 200:
        raise ValueError(f"1 <= n <= 200, got {n}")
    rng = random.Random()
    tag = f"{rng.getrandbits(24):06x}"
    third = _pick_subnet(rng)
    lab = NetnsLab(tag=tag, subnet=f"{SUBNET_PREFIX}.{third}.0/24", bridge=f"eb{tag}")
    created_bridge = False
    try:
        try:
            _ip("link", "add", lab.bridge, "type", "bridge")
        except subprocess.CalledProcessError as exc:
            raise NetnsUnavailable(f"cannot create a bridge: {exc.stderr.strip()}") from exc
        created_bridge = True
        _ip("link", "set", lab.bridge, "up")
        if host_address:  # this namespace joins the lab at .1 (the netns driver's client)
            lab.host = f"{SUBNET_PREFIX}.{third}.1"
            _ip("addr", "add", f"{lab.host}/24", "dev", lab.bridge)
        for i in range(n):
            ns = Netns(f"ember-{tag}-{i}", f"{SUBNET_PREFIX}.{third}.{i + 10}", i)
            _ip("netns", "add", ns.name)
            lab.namespaces.append(ns)
            veth = f"ev{tag}{i}"
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            _ip("link", "set", veth, "master", lab.bridge, "up")
            _ip("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", "eth0")
            _ip("-n", ns.name, "link", "set", "lo", "up")
            _ip("-n", ns.name, "link", "set", "eth0", "up")
            if multicast_route:
                _ip("-n", ns.name, "route", "add", "224.0.0.0/4", "dev", "eth0")
        yield lab
    finally:
        lab._stop_processes()
        for ns in lab.namespaces:
            _ip("netns", "del", ns.name, check=False)  # takes its veth and rules along
        if created_bridge:
            _ip("link", "del", lab.bridge, check=False)
