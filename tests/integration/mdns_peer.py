"""A process that runs one ``MdnsDiscovery`` and prints what it finds as JSON lines.

    python tests/integration/mdns_peer.py --cluster C --node N --host IP --port P
        [--interfaces auto|default|all] [--probe] [--requery SECONDS]

Lines: ``{"event": "started", "t": ...}`` once announced, ``{"event": "found", "name": ...,
"address": ..., "t": ...}`` per peer (``t``: seconds since the process began discovery), and on
SIGTERM or end of stdin ``{"event": "stopped", "stats": {...}}`` after the goodbye. If mDNS cannot
start: ``{"event": "error", "error": ...}`` and exit status 2. ``--requery`` calls ``seeds()``
that often, as the node's rejoin loop does while the node is alone.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from zeroconf import InterfaceChoice

from ember.mesh._discovery import DiscoveryError, Seed
from ember.mesh._mdns import Interfaces, MdnsDiscovery


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def main(args: argparse.Namespace) -> int:
    choices: dict[str, Interfaces] = {
        "auto": "auto",
        "default": InterfaceChoice.Default,
        "all": InterfaceChoice.All,
    }
    interfaces = choices[args.interfaces]
    source = MdnsDiscovery(
        args.cluster, args.node, args.host, args.port, interfaces=interfaces, probe=args.probe
    )
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)

    def on_stdin() -> None:
        if not sys.stdin.readline():
            done.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    t0 = time.monotonic()

    def found(seed: Seed) -> None:
        emit(event="found", name=seed.name, address=seed.address, t=time.monotonic() - t0)

    try:
        await source.start(found)
    except DiscoveryError as exc:
        emit(event="error", error=str(exc))
        return 2
    emit(event="started", t=time.monotonic() - t0)
    try:
        while not done.is_set():
            if args.requery:
                await source.seeds()
            try:
                async with asyncio.timeout(args.requery or None):
                    await done.wait()
            except TimeoutError:
                pass
    finally:
        await source.stop()
    emit(event="stopped", stats=dataclasses.asdict(source.statistics()))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interfaces", choices=("auto", "default", "all"), default="auto")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--requery", type=float, default=0.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
