"""mDNS discovery latency on loopback: real zeroconf, several ``MdnsDiscovery`` in one process.

Each trial uses a fresh cluster name, so trials (and other mDNS users) do not see each other.
An *existing* peer is started and fully announced first; then a *newcomer* starts. Measured:

- ``start_s``: how long the newcomer's ``start()`` takes, with RFC 6762 probing (``probe=True``,
  the default; anchor: about 1.2 s) and without it (zeroconf's cooperating responders);
- ``newcomer_finds_existing_s``: from the newcomer's ``start()`` call until its browser reports
  the existing peer (anchor: a new browser finds an existing service in 40-180 ms);
- ``existing_finds_newcomer_s``: from the same moment until the existing peer reports the
  newcomer (this waits for the newcomer's announcement, so for its probing when enabled).

``python -m bench.discovery [--quick]`` prints the section as JSON: median, p90 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench._util import run_uvloop
from ember.mesh._discovery import Seed
from ember.mesh._mdns import MdnsDiscovery

BOUND = 20.0


async def trial(probe: bool) -> dict[str, float]:
    cluster = f"bench-{secrets.token_hex(4)}"
    existing = MdnsDiscovery(cluster, "existing", "127.0.0.1", 18001, probe=False)
    newcomer = MdnsDiscovery(cluster, "newcomer", "127.0.0.1", 18002, probe=probe)
    heard: dict[str, float] = {}  # who heard the other -> when
    both = asyncio.Event()

    def hearing(who: str, other: str) -> Callable[[Seed], None]:
        def on_found(seed: Seed) -> None:
            if seed.name == other:
                heard.setdefault(who, time.perf_counter())
                if len(heard) == 2:
                    both.set()

        return on_found

    try:
        await existing.start(hearing("existing", "newcomer"))
        await asyncio.sleep(1.0)  # let its announcements finish: the newcomer must query
        t0 = time.perf_counter()
        await newcomer.start(hearing("newcomer", "existing"))
        started = time.perf_counter()
        async with asyncio.timeout(BOUND):
            await both.wait()
    finally:
        await newcomer.stop()
        await existing.stop()
    return {
        "start_s": started - t0,
        "newcomer_finds_existing_s": heard["newcomer"] - t0,
        "existing_finds_newcomer_s": heard["existing"] - t0,
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 4),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 4),
        "max": round(ordered[-1], 4),
    }


def run(quick: bool, reps: int = 0) -> dict[str, Any]:
    """Trials round-robin with and without probing; ``reps`` trials each (default 10, quick 3)."""
    trials = reps or (3 if quick else 10)
    samples: dict[str, list[dict[str, float]]] = {"probe": [], "no_probe": []}
    for _ in range(trials):
        for variant, runs in samples.items():
            runs.append(run_uvloop(trial(probe=variant == "probe")))
    return {
        "trials": trials,
        "interface": "loopback (127.0.0.1)",
        **{
            variant: {key: _summary([s[key] for s in runs]) for key in runs[0]}
            for variant, runs in samples.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.discovery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 trials instead of 10")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
