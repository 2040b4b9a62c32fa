"""Random linearizable key-value histories, for testing and benchmarking checkers."""

from __future__ import annotations

import heapq
import random

from ._linearizability import Operation

__all__ = ["random_kv_history"]


def random_kv_history(
    rng: random.Random,
    *,
    operations: int,
    keys: int,
    clients: int,
    hot_keys: int = 4,
    unknown: float = 0.1,
    applied: float = 0.5,
    reads: float = 0.5,
    writes: float = 0.3,
) -> list[Operation]:
    """A linearizable history of ``operations`` reads, writes and cas on ``keys`` registers
    (:class:`KVModel` inputs), by ``clients`` concurrent clients.

    Each operation takes effect at a random instant inside its interval. A fraction
    ``unknown`` ends with an unknown outcome (``end=None``; the client is then replaced, as in
    Jepsen); of those, a fraction ``applied`` took effect, possibly well after the client gave
    up. Clients work ``hot_keys`` keys at a time, moving through all ``keys`` over the run, so
    every key sees concurrent operations. Written values are unique. The rest of the mix
    (``1 - reads - writes``) is cas, half of which find the value they expect.
    """
    ready = [(0.0, c) for c in range(clients)]
    next_client = clients
    # (effect instant or None, op number, client, f, key, start, end)
    drafts: list[tuple[float | None, int, int, str, int, float, float | None]] = []
    for n in range(operations):
        t, client = heapq.heappop(ready)
        start = t + rng.expovariate(10.0)
        length = rng.expovariate(1.0)
        key = (n * keys // operations + rng.randrange(hot_keys)) % keys
        r = rng.random()
        f = "read" if r < reads else "write" if r < reads + writes else "cas"
        if rng.random() < unknown:
            late = rng.random() < applied
            effect = start + rng.random() * length * 3 if late else None
            drafts.append((effect, n, client, f, key, start, None))
            heapq.heappush(ready, (start + length, next_client))
            next_client += 1
        else:
            drafts.append((start + rng.random() * length, n, client, f, key, start, start + length))
            heapq.heappush(ready, (start + length, client))
    registers: dict[int, int | None] = {}
    history: list[Operation] = []
    ordered = sorted(drafts, key=lambda d: (d[0] is None, d[0] or 0.0, d[1]))
    for value, (effect, n, client, f, key, start, end) in enumerate(ordered, start=1):
        current = registers.get(key)
        if f == "read":
            history.append(Operation(client, ("read", key), current, start, end, n))
        elif f == "write":
            if effect is not None:
                registers[key] = value
            history.append(Operation(client, ("write", key, value), None, start, end, n))
        else:
            old = current if rng.random() < 0.5 else -value
            swapped = effect is not None and old == current
            if swapped:
                registers[key] = value
            history.append(Operation(client, ("cas", key, old, value), swapped, start, end, n))
    history.sort(key=lambda op: op.id or 0)
    return history
