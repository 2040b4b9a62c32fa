"""A member's applied state: the user's :class:`StateMachine` plus the client sessions that make
retried writes apply once, and the encoding of commands in log entries."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._state_machine import StateMachine

__all__ = ["Outcome", "Replica", "encode_command"]

Outcome = tuple[bool, Any]
"""``(True, result)``, or ``(False, (exception type, message))`` when the handler raised."""


def encode_command(session_key: str | None, command: Any) -> bytes:
    """The ``data`` of the log entry carrying ``command``; ``session_key`` (client id and
    request id) makes a retry of it apply once."""
    return msgpack.packb((session_key, command))  # type: ignore[no-any-return]


class Replica:
    """Applies entries to ``state_machine`` in log order. The outcome of each write with a
    session key is kept (the newest ``session_limit`` of them, evicted in apply order, so every
    member keeps the same ones); a retried key returns the kept outcome without applying again.
    Sessions travel in snapshots with the state."""

    def __init__(self, state_machine: StateMachine, session_limit: int = 100_000) -> None:
        self.state_machine = state_machine
        self.session_limit = session_limit
        self.sessions: OrderedDict[str, Outcome] = OrderedDict()
        self.duplicates = 0
        """Writes not applied because their session key had been applied before."""

    def apply(self, data: bytes) -> Outcome:
        key, command = msgpack.unpackb(data, strict_map_key=False)
        if key is not None:
            done = self.sessions.get(key)
            if done is not None:
                self.duplicates += 1
                return done
        outcome: Outcome
        try:
            result = self.state_machine.apply_command(command)
            msgpack.packb(result)  # results travel to clients and in snapshots
            outcome = (True, result)
        except Exception as exc:  # the handler's verdict, deterministic on every member
            t = type(exc)
            outcome = (False, (f"{t.__module__}.{t.__qualname__}", str(exc)))
        if key is not None:
            self.sessions[key] = outcome
            if len(self.sessions) > self.session_limit:
                self.sessions.popitem(last=False)
        return outcome

    def snapshot(self) -> bytes:
        # The session map is packed as it is, in eviction order (msgpack keeps a map's order):
        # no Python-level copy, which halves the time the loop is held at 100,000 sessions.
        data: bytes = msgpack.packb((self.state_machine.snapshot(), self.sessions))
        return data

    def restore(self, data: bytes) -> None:
        state, sessions = msgpack.unpackb(data, strict_map_key=False)
        self.state_machine.restore(state)
        self.sessions = OrderedDict((k, (ok, v)) for k, (ok, v) in sessions.items())
