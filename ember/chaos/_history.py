"""Histories as Jepsen keeps them: every operation an ``invoke`` and then ``ok``, ``fail`` or
``info``.

A client records ``invoke`` before it sends an operation and one completion after: ``ok`` (it
happened, with its result), ``fail`` (it certainly did not happen) or ``info`` (the outcome is
unknown: it may happen at any later instant, or never). A client whose operation ended ``info``
is not reused: its next operation comes from a new process id, so every process's operations
are sequential. Times are seconds since the run started, on the run's monotonic clock (the
virtual clock in simulation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from .._errors import UsageError
from ..testing import Operation

__all__ = ["COMPLETIONS", "KV_FS", "Event", "EventType", "History", "kv_operations"]

EventType = Literal["invoke", "ok", "fail", "info"]
COMPLETIONS: Final = frozenset({"ok", "fail", "info"})
_TYPES: Final = COMPLETIONS | {"invoke"}


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history.

    ``process`` is the client (Jepsen's process), ``f`` the operation (``read``, ``write``,
    ``cas``, ``register``...), ``key`` what it is about (a KV key, a name, a group), ``value``
    its argument on ``invoke`` and its result on ``ok``. ``error`` names why a ``fail`` or
    ``info`` happened (an error type), ``node`` the node that served it, if known.
    """

    index: int
    type: EventType
    process: int
    f: str
    key: Any
    value: Any
    time: float
    error: str | None = None
    node: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-able dict (fields that are None left out)."""
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "process": self.process,
            "f": self.f,
            "key": self.key,
            "value": self.value,
            "time": round(self.time, 6),
        }
        if self.error is not None:
            out["error"] = self.error
        if self.node is not None:
            out["node"] = self.node
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """The event :meth:`as_dict` gave (lists stand for tuples, as JSON has no tuples)."""
        if data.get("type") not in _TYPES:
            raise UsageError(f"history event type must be one of {sorted(_TYPES)}: {data!r}")
        return cls(
            int(data["index"]),
            data["type"],
            int(data["process"]),
            str(data["f"]),
            _tuples(data.get("key")),
            _tuples(data.get("value")),
            float(data["time"]),
            data.get("error"),
            data.get("node"),
        )


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass
class History:
    """A run's events in the order they happened, and the pairing of invokes with completions.

    :meth:`invoke` and :meth:`complete` append (the time comes in as an argument: the history
    reads no clock). A process may have one operation open at a time.
    """

    events: list[Event] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fail": 0, "info": 0})
    """Completions recorded by :meth:`complete`, by type (for a live display)."""
    _open: dict[int, Event] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def invoke(self, process: int, f: str, key: Any, value: Any, time: float) -> Event:
        """Record that ``process`` starts operation ``f`` on ``key`` with ``value``."""
        if process in self._open:
            raise UsageError(f"process {process} already has an operation open")
        event = Event(len(self.events), "invoke", process, f, key, value, time)
        self.events.append(event)
        self._open[process] = event
        return event

    def complete(
        self,
        invoke: Event,
        type: EventType,
        value: Any,
        time: float,
        *,
        error: str | None = None,
        node: str | None = None,
    ) -> Event:
        """Record the completion of ``invoke``: ``ok`` with its result, ``fail`` or ``info``."""
        if type not in COMPLETIONS:
            raise UsageError(f"a completion is ok, fail or info, not {type!r}")
        if self._open.get(invoke.process) is not invoke:
            raise UsageError(f"operation {invoke.index} of process {invoke.process} is not open")
        del self._open[invoke.process]
        self.tally[type] += 1
        event = Event(
            len(self.events), type, invoke.process, invoke.f, invoke.key, value, time, error, node
        )
        self.events.append(event)
        return event

    def open(self) -> list[Event]:
        """The invokes with no completion yet."""
        return list(self._open.values())

    def pairs(self) -> list[tuple[Event, Event | None]]:
        """Every invoke with its completion (None: none was recorded), in invoke order."""
        pending: dict[int, Event] = {}
        done: dict[int, Event] = {}
        for event in self.events:
            if event.type == "invoke":
                pending[event.process] = event
            else:
                invoke = pending.pop(event.process, None)
                if invoke is None:
                    raise UsageError(f"event {event.index} completes nothing: {event!r}")
                done[invoke.index] = event
        return [(e, done.get(e.index)) for e in self.events if e.type == "invoke"]

    def counts(self) -> dict[str, int]:
        """Completions by type (``ok``, ``fail``, ``info``) and operations still ``open``."""
        out = {"ok": 0, "fail": 0, "info": 0}
        for event in self.events:
            if event.type != "invoke":
                out[event.type] += 1
        out["open"] = sum(1 for _, c in self.pairs() if c is None)
        return out

    def dump(self, path: Path) -> None:
        """Write the history as JSON lines."""
        with path.open("w") as f:
            for event in self.events:
                f.write(json.dumps(event.as_dict(), default=repr) + "\n")

    @classmethod
    def load(cls, path: Path) -> History:
        """Read a history :meth:`dump` wrote."""
        history = cls()
        with path.open() as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        history.events.append(Event.from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError, UsageError) as exc:
                        raise UsageError(f"{path}:{n}: not a history event: {exc}") from exc
        return history

    @classmethod
    def of(cls, events: Iterable[Event]) -> History:
        """A history holding ``events`` (already complete, e.g. from a test)."""
        return cls(list(events))


KV_FS: Final = frozenset({"read", "final_read", "write", "cas"})
"""The KV operations; ``final_read`` is a read of the final phase, after everything healed."""


def kv_operations(history: History | Sequence[Event]) -> list[Operation]:
    """The history's KV operations (``read``, ``write``, ``cas`` on keys) as the
    linearizability checker's :class:`~ember.testing.Operation` s for a
    :class:`~ember.testing.KVModel`.

    ``fail`` is left out (it did not happen); ``info`` and an invoke never completed become
    unknown outcomes. A ``cas`` invokes with ``(old, new)`` and completes ok with whether it
    swapped.
    """
    h = history if isinstance(history, History) else History.of(history)
    ops: list[Operation] = []
    for invoke, done in h.pairs():
        if invoke.f not in KV_FS or (done is not None and done.type == "fail"):
            continue
        if invoke.f in ("read", "final_read"):
            inp: tuple[Any, ...] = ("read", invoke.key)
        elif invoke.f == "write":
            inp = ("write", invoke.key, invoke.value)
        else:
            old, new = invoke.value
            inp = ("cas", invoke.key, old, new)
        if done is None or done.type == "info":
            ops.append(Operation(invoke.process, inp, None, invoke.time, None, invoke.index))
        else:
            ops.append(
                Operation(invoke.process, inp, done.value, invoke.time, done.time, invoke.index)
            )
    return ops
