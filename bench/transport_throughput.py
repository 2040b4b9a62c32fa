"""One-way frame throughput between two Transports in two processes on loopback (not a test).

    python -m bench.transport_throughput [--frames 1000000] [--burst 1000] [--mode raw|codec]

A receiver process listens; the sender process connects, sends ``--frames`` small USER frames
in bursts of ``--burst`` (yielding to the loop between bursts, so each burst leaves in one
coalesced write), and the receiver answers with one CONTROL frame when it has them all. The rate
is frames over the time from the first send to that answer, on the sender's clock.

``--mode raw`` sends a pre-encoded 37-byte msgpack payload and the receiver only counts frames:
the transport alone. ``--mode codec`` encodes each message with ``Codec.encode`` on the sender
and decodes every batch on the receiver (``Codec.decode_run`` for each run of small frames,
``Codec.decode_batch`` for the others): the transport plus the wire codec, about what a remote
tell costs below the actor kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import uvloop

from ember.transport._codec import Codec
from ember.transport._config import TransportConfig
from ember.transport._frame import Channel, Frame, FrameRun
from ember.transport._queue import QueueFull
from ember.transport._transport import Transport

MESSAGE = ("call", 12345, "hello world!", b"payload!", True, 7)
COOKIE = "bench-cookie"


def receiver(port_q: Any, total: int, mode: str) -> None:
    async def main() -> None:
        codec = Codec()
        seen = 0
        done = asyncio.get_running_loop().create_future()

        def on_frames(peer: str, frames: list[Frame | FrameRun]) -> None:
            nonlocal seen
            loose: list[bytes] = []
            for item in frames:
                if isinstance(item, FrameRun):
                    if mode == "codec":
                        codec.decode_run(item.data, item.lengths)
                    seen += len(item.lengths)
                else:
                    loose.append(item.payload)
            if mode == "codec":
                codec.decode_batch(loose)
            seen += len(loose)
            if seen >= total and not done.done():
                done.set_result(peer)

        transport = Transport(
            "receiver", "bench", COOKIE, 1, TransportConfig.local(), on_frames=on_frames
        )
        address = await transport.start("127.0.0.1:0")
        assert address is not None
        port_q.put(address[1])
        peer = await done
        transport.send(peer, Channel.CONTROL, b"\xc3")  # msgpack True: "got them all"
        await asyncio.sleep(0.2)
        await transport.close()

    uvloop.run(main())


async def sender(port: int, total: int, burst: int, mode: str) -> float:
    codec = Codec()
    payload = codec.encode(MESSAGE)
    done = asyncio.get_running_loop().create_future()

    def on_frames(peer: str, frames: list[Frame | FrameRun]) -> None:
        if not done.done():
            done.set_result(time.perf_counter())

    transport = Transport(
        "sender", "bench", COOKIE, 2, TransportConfig.local(), on_frames=on_frames
    )
    await transport.start(None)
    await transport.connect("receiver", "127.0.0.1", port)
    send = transport.send
    encode = codec.encode
    user = Channel.USER
    start = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(burst, total - sent)
        for _ in range(n):
            data = encode(MESSAGE) if mode == "codec" else payload
            try:
                send("receiver", user, data)
            except QueueFull:
                await transport.send_wait("receiver", user, data)
        sent += n
        await asyncio.sleep(0)
    end = await done
    stats = transport.statistics()
    await transport.close()
    rate = total / (end - start)
    print(
        f"mode={mode} frames={total} burst={burst}: {rate:,.0f} frames/s one-way "
        f"({end - start:.3f} s; {stats.writes} writes, "
        f"{stats.frames_sent / max(stats.writes, 1):.0f} frames/write, "
        f"{stats.rejected['USER']} QueueFull)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--mode", choices=["raw", "codec"], default="raw")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    port_q = ctx.Queue()
    proc = ctx.Process(target=receiver, args=(port_q, args.frames, args.mode))
    proc.start()
    try:
        port = port_q.get(timeout=30)
        uvloop.run(sender(port, args.frames, args.burst, args.mode))
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


if __name__ == "__main__":
    main()
