"""CPU time per frame of the TCP transport's write and read paths (not a test).

    python -m bench.transport_cpu [--size 37] [--frames 300000] [--burst 1000]

Two :class:`~ember.transport.Transport` s in this one process on loopback: ``a`` sends
``--frames`` USER frames of ``--size`` bytes to ``b`` in bursts of ``--burst`` (yielding to the
loop between bursts), ``b`` counts them. The figure is this process's CPU time
(``time.process_time``) from the first send to the last frame counted, over the frame count:
what both ends of the transport cost per frame, outbox to frame decoder. CPU time, not wall
time, so a machine busy with other work moves it much less than a throughput figure; still,
compare runs made one after the other (e.g. two versions of the code, alternated), not figures
from different sessions. 37-byte frames travel in runs of small USER frames; frames of
``SMALL_FRAME`` (128) bytes or more are split one by one. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop

from ember.transport._config import TransportConfig
from ember.transport._frame import Channel, Frame, FrameRun
from ember.transport._queue import QueueFull
from ember.transport._transport import Transport

WARMUP_BURSTS = 10


async def measure(size: int, frames: int, burst: int) -> float:
    """CPU seconds for ``frames`` frames of ``size`` bytes, both ends counted."""
    loop = asyncio.get_running_loop()
    seen = 0
    target = WARMUP_BURSTS * burst
    done: asyncio.Future[None] = loop.create_future()

    def on_frames(peer: str, batch: list[Frame | FrameRun]) -> None:
        nonlocal seen
        for item in batch:
            seen += len(item.lengths) if item.__class__ is FrameRun else 1
        if seen >= target and not done.done():
            done.set_result(None)

    quiet = TransportConfig.local(heartbeat_interval=30.0, heartbeat_timeout=120.0)
    b = Transport("b", "bench", "bench-cookie", 1, quiet, on_frames=on_frames)
    a = Transport("a", "bench", "bench-cookie", 2, quiet, on_frames=lambda peer, batch: None)
    try:
        address = await b.start("127.0.0.1:0")
        assert address is not None
        await a.start(None)
        await a.connect("b", *address)
        payload = b"\x96" + b"x" * (size - 1)

        async def send(count: int) -> None:
            for start in range(0, count, burst):
                for _ in range(min(burst, count - start)):
                    try:
                        a.send("b", Channel.USER, payload)
                    except QueueFull:
                        await a.send_wait("b", Channel.USER, payload)
                await asyncio.sleep(0)

        await send(target)
        await done
        seen, target, done = 0, frames, loop.create_future()
        t0 = time.process_time()
        await send(frames)
        await done
        return time.process_time() - t0
    finally:
        await a.close()
        await b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=37, help="payload bytes per frame")
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    cpu = uvloop.run(measure(args.size, args.frames, args.burst))
    print(
        json.dumps(
            {
                "size": args.size,
                "frames": args.frames,
                "cpu_s": round(cpu, 4),
                "cpu_ns_per_frame": round(cpu / args.frames * 1e9, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
