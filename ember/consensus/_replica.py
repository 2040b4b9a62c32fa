"""A member's applied state: the user's :class:`StateMachine` plus the client sessions that make
retried writes apply once, and the encoding of commands in log entries."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._pack import pack
from ._state_machine import StateMachine

__all__ = ["Outcome", "Replica", "Session", "encode_command"]

Outcome = tuple[bool, Any]
"""``(True, result)``, or ``(False, (exception type, message))`` when the handler raised."""

Session = tuple[str, str, str, int | None, int]
"""What a write says of its client (Raft thesis §6.3): ``(client id, stream, request id, seq,
mark)``. A ``stream`` is one client handle's life (a client id reused after a restart starts a
new one); ``seq`` numbers the stream's requests whose ids the handle chose itself (None for a
caller's id), and ``mark`` says the handle holds the outcome of every numbered request of its
stream below it, so the members may forget those."""


def encode_command(session: Session | None, command: Any) -> bytes:
    """The ``data`` of the log entry carrying ``command``; ``session`` makes a retry of it
    apply once. :class:`~ember.UnsendableError` if ``command`` is not plain msgpack."""
    return pack((session, command))


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
        self.sessions: OrderedDict[tuple[str, str], tuple[str, int | None, Outcome]] = OrderedDict()
        """(client, request id) -> (stream, seq, outcome), oldest first."""
        self._numbered: dict[tuple[str, str], list[tuple[int, str]]] = {}
        """Per (client, stream), a heap of its numbered request ids (some maybe evicted)."""
        self.duplicates = 0
        """Writes not applied because their session key had been applied before."""

    def apply(self, data: bytes, index: int = 0) -> Outcome:
        """Apply the entry at log ``index`` (the state machine sees it as ``index``)."""
        session, command = msgpack.unpackb(data, strict_map_key=False)
        self.state_machine.index = index
        if session is not None:
            client, stream, request, seq, mark = session
            self._forget_below(client, stream, mark)
            done = self.sessions.get((client, request))
            if done is not None:
                self.duplicates += 1
                return done[2]
        outcome: Outcome
        try:
            result = self.state_machine.apply_command(command)
            msgpack.packb(result)  # results travel to clients and in snapshots
            outcome = (True, result)
        except Exception as exc:  # the handler's verdict, deterministic on every member
            t = type(exc)
            outcome = (False, (f"{t.__module__}.{t.__qualname__}", str(exc)))
        if session is not None:
            self._keep(client, stream, request, seq, outcome)
        return outcome

    def _keep(
        self, client: str, stream: str, request: str, seq: int | None, outcome: Outcome
    ) -> None:
        self.sessions[client, request] = (stream, seq, outcome)
        if seq is not None:
            heapq.heappush(self._numbered.setdefault((client, stream), []), (seq, request))
        if len(self.sessions) > self.session_limit:
            (old_client, _), (old_stream, old_seq, _) = self.sessions.popitem(last=False)
            if old_seq is not None:  # drop it (and others evicted) from its heap's top
                self._forget_below(old_client, old_stream, -1)

    def _forget_below(self, client: str, stream: str, mark: int) -> None:
        """Forget the numbered outcomes of ``client``'s ``stream`` below ``mark``, and any
        already evicted at the top of its heap."""
        heap = self._numbered.get((client, stream))
        if heap is None:
            return
        sessions = self.sessions
        while heap and (heap[0][0] < mark or (client, heap[0][1]) not in sessions):
            sessions.pop((client, heapq.heappop(heap)[1]), None)
        if not heap:
            del self._numbered[client, stream]

    def snapshot(self) -> bytes:
        sessions = [(c, r, st, seq, out) for (c, r), (st, seq, out) in self.sessions.items()]
        data: bytes = msgpack.packb((self.state_machine.snapshot(), sessions))
        return data

    def restore(self, data: bytes) -> None:
        state, sessions = msgpack.unpackb(data, strict_map_key=False)
        self.state_machine.restore(state)
        self.sessions = OrderedDict()
        self._numbered = {}
        for client, request, stream, seq, (ok, value) in sessions:
            self.sessions[client, request] = (stream, seq, (ok, value))
            if seq is not None:
                self._numbered.setdefault((client, stream), []).append((seq, request))
        for heap in self._numbered.values():
            heapq.heapify(heap)
