"""Thespian (``simpleSystemBase``, the ``bench`` extra) measured in the same run, for
Ember/Thespian ratios.

- ``tell``: N ``ActorSystem.tell`` to a counting actor, then one ``ask`` for the count (which
  must equal N); messages/s over the whole.
- ``ask``: M sequential ``ActorSystem.ask`` to an echo actor; round trips/s.
"""

from __future__ import annotations

import gc
import importlib.metadata
from typing import Any

from thespian.actors import Actor, ActorSystem  # type: ignore[import-untyped]

from ._util import interleaved, perf_counter, rates, section

NAME = "thespian"


class Counter(Actor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if message == "count":
            self.send(sender, self.n)
        else:
            self.n += 1


class Echo(Actor):  # type: ignore[misc]
    def receiveMessage(self, message: Any, sender: Any) -> None:
        self.send(sender, message)


def thespian_tell(n: int) -> float:
    asys = ActorSystem("simpleSystemBase")
    try:
        addr = asys.createActor(Counter)
        tell = asys.tell
        gc.collect()
        t0 = perf_counter()
        for i in range(n):
            tell(addr, i)
        count = asys.ask(addr, "count", 60)
        elapsed = perf_counter() - t0
        assert count == n, count
        return elapsed
    finally:
        asys.shutdown()


def thespian_ask(n: int) -> float:
    asys = ActorSystem("simpleSystemBase")
    try:
        addr = asys.createActor(Echo)
        ask = asys.ask
        gc.collect()
        t0 = perf_counter()
        for i in range(n):
            ask(addr, i, 10)
        return perf_counter() - t0
    finally:
        asys.shutdown()


def run(quick: bool, reps: int) -> dict[str, Any]:
    n_tell = 5_000 if quick else 200_000
    n_ask = 1_000 if quick else 50_000
    tell_samples = interleaved({"thespian_tell": lambda: thespian_tell(n_tell)}, reps)
    ask_samples = interleaved({"thespian_ask": lambda: thespian_ask(n_ask)}, reps)
    return section(
        unit="msg/s (tell), round trips/s (ask)",
        params={
            "tells": n_tell,
            "asks": n_ask,
            "repetitions": reps,
            "thespian_version": importlib.metadata.version("thespian"),
        },
        samples={**tell_samples, **ask_samples},
        results={**rates(tell_samples, n_tell), **rates(ask_samples, n_ask)},
        ratios={},
        notes={"ratios": "Ember/Thespian ratios are in the top-level 'cross' section"},
    )
