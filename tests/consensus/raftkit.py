"""Helpers for the Raft core's tests: seeds that can be replayed, request counting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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


def seeds(*defaults: int) -> list[int]:
    """The seeds a randomized test runs with: ``EMBER_SEED`` if set, else ``defaults``."""
    env = os.environ.get("EMBER_SEED")
    return [int(env)] if env else list(defaults)


@contextmanager
def seeded(seed: int) -> Iterator[int]:
    """Run a block under ``seed``; a failure inside carries the seed and how to replay it."""
    try:
        yield seed
    except BaseException as exc:
        exc.add_note(f"seed {seed}: replay with EMBER_SEED={seed}")
        print(f"failing seed: {seed} (replay with EMBER_SEED={seed})")
        raise


def requests(sim: Simulation) -> int:
    """Requests sent so far (comparable with MIT 6.5840's RPC counts)."""
    return sum(n for t, n in sim.sent.items() if t in REQUESTS)


def ids(n: int) -> list[str]:
    return [str(k) for k in range(1, n + 1)]
