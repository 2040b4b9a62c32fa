"""The network-namespace lab for multi-process tests (``ember.chaos._netns``, which the netns
chaos driver uses too; its docstring says what it builds), and :class:`JsonLines` to follow a
process's JSON output."""

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
