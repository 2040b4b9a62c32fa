"""A member's applied state: the user's :class:`StateMachine` plus the client sessions that make
retried writes apply once, and the encoding of commands in log entries."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._state_machine import StateMachine

__all__ = ["Outcome", "Replica", "Session", "encode_command"]

Outcome = tuple[bool, Any]
"""``(True, result)``, or ``(False, (exception type, message))`` when the handler raised."""

Session = tuple[str, str, int | None, int]
"""What a write says of its client (Raft thesis §6.3): ``(client id, request id, seq, mark)``.
``seq`` numbers the requests whose ids the client chose itself (None for a caller's id), and
``mark`` says the client holds the outcome of every one of its numbered requests below it, so
the members may forget those."""


def encode_command(session: Session | None, command: Any) -> bytes:
    """The ``data`` of the log entry carrying ``command``; ``session`` makes a retry of it
    apply once."""
    return msgpack.packb((session, command))  # type: ignore[no-any-return]


class Replica:
    """Applies entries to ``state_machine`` in log order, keeping the outcome of each write that
    names a session so that a retry returns it instead of applying again. A client's numbered
    outcomes are forgotten once its mark passes them; at most ``session_limit`` outcomes are
    kept in all (the oldest go first: caller-chosen ids and clients that vanished mid-write).
    Every member applies the same entries, so every member keeps the same outcomes; they travel
    in snapshots with the state."""

    def __init__(self, state_machine: StateMachine, session_limit: int = 100_000) -> None:
        self.state_machine = state_machine
        self.session_limit = session_limit
        self.sessions: OrderedDict[tuple[str, str], tuple[int | None, Outcome]] = OrderedDict()
        self._numbered: dict[str, list[tuple[int, str]]] = {}
        """Per client, a heap of its numbered request ids (some maybe evicted already)."""
        self.duplicates = 0
        """Writes not applied because their session key had been applied before."""

    def apply(self, data: bytes) -> Outcome:
        session, command = msgpack.unpackb(data, strict_map_key=False)
        if session is not None:
            client, request, seq, mark = session
            self._forget_below(client, mark)
            key = (client, request)
            done = self.sessions.get(key)
            if done is not None:
                self.duplicates += 1
                return done[1]
        outcome: Outcome
        try:
            result = self.state_machine.apply_command(command)
            msgpack.packb(result)  # results travel to clients and in snapshots
            outcome = (True, result)
        except Exception as exc:  # the handler's verdict, deterministic on every member
            t = type(exc)
            outcome = (False, (f"{t.__module__}.{t.__qualname__}", str(exc)))
        if session is not None:
            self._keep(client, request, seq, outcome)
        return outcome

    def _keep(self, client: str, request: str, seq: int | None, outcome: Outcome) -> None:
        self.sessions[client, request] = (seq, outcome)
        if seq is not None:
            heapq.heappush(self._numbered.setdefault(client, []), (seq, request))
        if len(self.sessions) > self.session_limit:
            (old_client, _), _ = self.sessions.popitem(last=False)
            self._forget_below(old_client, -1)  # drops the evicted ones from the heap's top

    def _forget_below(self, client: str, mark: int) -> None:
        """Forget ``client``'s numbered outcomes below ``mark``, and any already evicted at the
        top of its heap."""
        heap = self._numbered.get(client)
        if heap is None:
            return
        sessions = self.sessions
        while heap and (heap[0][0] < mark or (client, heap[0][1]) not in sessions):
            sessions.pop((client, heapq.heappop(heap)[1]), None)
        if not heap:
            del self._numbered[client]

    def snapshot(self) -> bytes:
        sessions = [(c, r, seq, out) for (c, r), (seq, out) in self.sessions.items()]
        data: bytes = msgpack.packb((self.state_machine.snapshot(), sessions))
        return data

    def restore(self, data: bytes) -> None:
        state, sessions = msgpack.unpackb(data, strict_map_key=False)
        self.state_machine.restore(state)
        self.sessions = OrderedDict()
        self._numbered = {}
        for client, request, seq, (ok, value) in sessions:
            self.sessions[client, request] = (seq, (ok, value))
            if seq is not None:
                self._numbered.setdefault(client, []).append((seq, request))
        for heap in self._numbered.values():
            heapq.heapify(heap)
