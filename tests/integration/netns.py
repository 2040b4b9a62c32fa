"""A network-namespace lab for multi-process tests: N namespaces on one Linux bridge (the lab
itself is ``ember.chaos._netns``, which the netns chaos driver uses too).

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
import json
import queue
import subprocess
import threading
import time
from typing import Any

import pytest

from ember.chaos._netns import (
    Netns,
    NetnsLab,
    NetnsUnavailable,
    firewall_tool,
    netns_lab,
    unavailable_reason,
)

__all__ = [
    "JsonLines",
    "Netns",
    "NetnsLab",
    "NetnsUnavailable",
    "firewall_tool",
    "netns_lab",
    "unavailable_reason",
]


class JsonLines:
    """A process whose stdout is JSON lines, read by a thread into :attr:`events` on demand.

    ``wait_for`` reads until a condition on the events holds (failing after ``bound`` seconds
    or at EOF); ``observe`` takes what arrives within a window (to assert an absence).
    """

    def __init__(self, proc: subprocess.Popen[str], label: str, bound: float = 30.0) -> None:
        self.proc = proc
        self.label = label
        self.bound = bound
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _take(self, line: str) -> None:
        with contextlib.suppress(ValueError):
            self.events.append(json.loads(line))

    def wait_for(self, condition: Any, what: str, bound: float | None = None) -> None:
        """Read events until ``condition(self)`` holds; fail after ``bound`` s or at EOF."""
        deadline = time.monotonic() + (self.bound if bound is None else bound)
        while not condition(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"{self.label}: timed out waiting for {what}; events {self.events}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"{self.label} exited ({self.proc.wait()}) before {what}")
            self._take(line)

    def drain(self) -> None:
        """Take the events already printed, without waiting."""
        self.observe(0.0)

    def observe(self, seconds: float) -> None:
        """Take every event printed within the next ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if line is not None:
                self._take(line)
