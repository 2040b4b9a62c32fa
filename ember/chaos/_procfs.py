"""Resident memory of a process, from ``/proc`` (Linux)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["rss_of"]


def rss_of(pid: int | str) -> int:
    """``VmRSS`` of process ``pid`` (or ``"self"``) in bytes; 0 if it is gone or unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
