"""The admin API's own JSON views of a node: the node, its processes, its supervision trees,
and the one-screen summary behind the dashboard, ``ember status`` and ``ember top``."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from ..actors import Pid, ProcessInfo, Supervisor

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = [
    "API_VERSION",
    "KNOWN_SECTIONS",
    "jsonable",
    "node_view",
    "process_view",
    "summary_view",
    "supervision_view",
    "top_processes",
]

API_VERSION = 1
"""The version of the JSON shapes (``/api/v1``); a breaking change makes ``/api/v2``."""

KNOWN_SECTIONS = ("transport", "mesh", "raft", "names", "pg", "contracts")
"""Sections every node answers for, with ``{"running": false}`` when it lacks one."""

TOP_BY = ("mailbox", "messages")


def jsonable(value: Any) -> Any:
    """``value`` with pids, refs, tuples and other objects made JSON-friendly."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def process_view(info: ProcessInfo) -> dict[str, Any]:
    """One process as JSON (schema ``Process`` in ``docs/operability.md``)."""
    return {
        "pid": str(info.pid),
        "name": None if info.name is None else str(info.name),
        "behaviour": info.behaviour,
        "status": info.status,
        "mailbox": info.mailbox_len,
        "messages": info.messages,
        "links": len(info.links),
        "monitored_by": info.monitored_by,
        "monitoring": len(info.monitoring),
        "trap_exits": info.trap_exits,
    }


def top_processes(node: ServiceNode, n: int, by: str) -> list[dict[str, Any]]:
    """The ``n`` processes with the longest mailboxes (``by="mailbox"``) or the most messages
    handled (``by="messages"``), largest first."""
    if by not in TOP_BY:
        raise UsageError(f"by must be one of {', '.join(TOP_BY)}, not {by!r}")
    kernel = node.kernel
    key = 1 if by == "mailbox" else 2
    best = heapq.nlargest(n, kernel.mailbox_lengths(), key=lambda row: row[key])
    out = []
    for pid, _, _ in best:
        info = kernel.process_info(pid)
        if info is not None:
            out.append(process_view(info))
    return out


def node_view(node: ServiceNode, sections: Mapping[str, Any], started: float) -> dict[str, Any]:
    """The node itself (schema ``Node``)."""
    stats = node.kernel.statistics()
    transport = node.transport
    address = getattr(transport, "address", None) if transport is not None else None
    return {
        "name": node.name,
        "cluster": node.cluster,
        "creation": node.creation,
        "address": f"{address[0]}:{address[1]}" if address else None,
        "uptime_s": round(time.monotonic() - started, 3),
        "processes": stats.processes,
        "counters": dict(stats.counters),
        "sections": {name: name in sections for name in _section_names(sections)},
    }


def _section_names(sections: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys([*KNOWN_SECTIONS, *sections]))


async def supervision_view(node: ServiceNode, within: float) -> list[dict[str, Any]]:
    """Every supervision tree of the node, the root supervisor's first (schema ``Tree``)."""
    kernel = node.kernel
    seen: set[Pid] = set()

    async def walk(pid: Pid, child_id: Any) -> dict[str, Any]:
        seen.add(pid)
        info = kernel.process_info(pid)
        entry: dict[str, Any] = {
            "id": None if child_id is None else str(child_id),
            "pid": str(pid),
            "behaviour": info.behaviour if info is not None else None,
            "kind": "supervisor",
            "children": [],
        }
        try:
            children = await Supervisor.which_children(pid)
        except Exception as exc:  # it exited meanwhile, or is busy past the deadline
            entry["error"] = type(exc).__name__
            return entry
        for ch in children:
            if ch.kind == "supervisor" and ch.pid is not None:
                entry["children"].append(await walk(ch.pid, ch.id))
            else:
                if ch.pid is not None:
                    seen.add(ch.pid)
                entry["children"].append(
                    {
                        "id": None if ch.id is None else str(ch.id),
                        "pid": None if ch.pid is None else str(ch.pid),
                        "behaviour": _behaviour_name(ch.behaviour),
                        "kind": "worker",
                    }
                )
        return entry

    trees: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        trees.append(await walk(kernel.root, "ember_root"))
        for info in list(kernel.iter_processes()):
            if info.pid not in seen and _is_supervisor(kernel, info.pid):
                trees.append(await walk(info.pid, None))
    return trees


def _is_supervisor(kernel: Any, pid: Pid) -> bool:
    return isinstance(getattr(pid, "_proc", None), Supervisor) and pid.node == kernel.name


def summary_view(
    node: ServiceNode, sections: Mapping[str, Any], started: float, top: int, by: str
) -> dict[str, Any]:
    """One screen of a node (schema ``Summary``): itself, the members it sees, each section's
    summary (or ``{"running": false}``), and its top processes. Cheap: no awaits, no calls."""
    out: dict[str, Any] = {
        "version": API_VERSION,
        "time": time.time(),
        "node": node_view(node, sections, started),
        "members": [m.as_dict() for m in node.members()],
        "sections": {},
        "top": top_processes(node, top, by),
    }
    for name in _section_names(sections):
        out["sections"][name] = section_summary(sections.get(name))
    return out


def section_summary(section: Any) -> dict[str, Any]:
    """A section's ``admin_summary()``, marked running (``{"running": false}`` if absent)."""
    if section is None:
        return {"running": False}
    summary = getattr(section, "admin_summary", None)
    body = jsonable(summary()) if summary is not None else {}
    return {"running": True, **body}


def _behaviour_name(behaviour: type[Any] | str) -> str:
    """A child's behaviour as ``pkg.mod.Class`` (a remote child's arrives as a reference)."""
    if isinstance(behaviour, str):
        return behaviour.replace(":", ".")
    return f"{behaviour.__module__}.{behaviour.__qualname__}"
