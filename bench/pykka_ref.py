"""Pykka (``ThreadingActor``, the ``bench`` extra) measured in the same run, for Ember/Pykka ratios.

- ``tell``: the main thread tells N messages to a counting actor, which sets an event at the
  last one; messages/s from the first tell to the event.
- ``ask``: M sequential ``ref.ask(msg)`` to an echo actor; round trips/s.

The Ember figures these are compared with come from the ``tell`` and ``call`` benchmarks
(``ember_async`` in each); the ratios are computed by ``python -m bench`` when both ran.
"""

from __future__ import annotations

import gc
import importlib.metadata
import threading
from typing import Any

import pykka

from ._util import interleaved, perf_counter, rates, section

NAME = "pykka"


class Counter(pykka.ThreadingActor):
    def __init__(self, n: int, event: threading.Event) -> None:
        super().__init__()
        self.left = n
        self.event = event

    def on_receive(self, message: Any) -> None:
        self.left -= 1
        if self.left == 0:
            self.event.set()


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_tell(n: int) -> float:
    event = threading.Event()
    ref = Counter.start(n, event)
    try:
        tell = ref.tell
        gc.collect()
        t0 = perf_counter()
        for i in range(n):
            tell(i)
        event.wait()
        return perf_counter() - t0
    finally:
        ref.stop()


def pykka_ask(n: int) -> float:
    ref = Echo.start()
    try:
        ask = ref.ask
        gc.collect()
        t0 = perf_counter()
        for i in range(n):
            ask(i)
        return perf_counter() - t0
    finally:
        ref.stop()


def run(quick: bool, reps: int) -> dict[str, Any]:
    n_tell = 5_000 if quick else 200_000
    n_ask = 1_000 if quick else 20_000
    tell_samples = interleaved({"pykka_tell": lambda: pykka_tell(n_tell)}, reps)
    ask_samples = interleaved({"pykka_ask": lambda: pykka_ask(n_ask)}, reps)
    results = {**rates(tell_samples, n_tell), **rates(ask_samples, n_ask)}
    return section(
        unit="msg/s (tell), round trips/s (ask)",
        params={
            "tells": n_tell,
            "asks": n_ask,
            "repetitions": reps,
            "pykka_version": importlib.metadata.version("pykka"),
        },
        samples={**tell_samples, **ask_samples},
        results=results,
        ratios={},
        notes={"ratios": "Ember/Pykka ratios are in the top-level 'cross' section"},
    )
