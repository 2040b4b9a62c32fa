"""Helpers for the Raft core's tests: request counting and member ids (seeds come from
``ember.testing.seeds`` / ``seeded``)."""

from __future__ import annotations

from ember.consensus._messages import MsgType
from ember.consensus._sim import Simulation

# Messages that start an exchange; the others answer one. MIT 6.5840 counts RPCs, i.e. a request
# and its reply together, so its bounds compare with these counts.
REQUESTS = frozenset(
    {
        MsgType.APP,
        MsgType.VOTE,
        MsgType.PRE_VOTE,
        MsgType.HEARTBEAT,
        MsgType.SNAP,
        MsgType.TIMEOUT_NOW,
        MsgType.READ_INDEX,
        MsgType.TRANSFER_LEADER,
    }
)


def requests(sim: Simulation) -> int:
    """Requests sent so far (comparable with MIT 6.5840's RPC counts)."""
    return sum(n for t, n in sim.sent.items() if t in REQUESTS)


def ids(n: int) -> list[str]:
    return [str(k) for k in range(1, n + 1)]
