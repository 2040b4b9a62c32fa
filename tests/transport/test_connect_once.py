"""``connect(retry=False)``: one attempt, and its failure raised at once (what the command-line
clients use to say "connection refused"); by default a connect retries while the caller waits."""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_kit import CLUSTER, COOKIE, WAIT, Recorder

from ember.transport import MemoryNetwork, Transport


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.ember_realtime
async def test_one_attempt_raises_its_failure_and_the_default_keeps_trying() -> None:
    a = Transport("a", CLUSTER, COOKIE, 1, **Recorder().callbacks())
    await a.start(None)
    try:
        port = closed_port()
        async with asyncio.timeout(WAIT):
            with pytest.raises(ConnectionRefusedError):
                await a.connect("b", "127.0.0.1", port, retry=False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):  # still dialling with backoff: nothing to raise
                await a.connect("b", "127.0.0.1", port)
        assert a.statistics().connect_failures >= 2
    finally:
        await a.close()


async def test_the_memory_transport_refuses_at_once_too() -> None:
    net = MemoryNetwork(seed=1)
    a = net.endpoint("a", on_frames=Recorder().on_frames)
    await a.start()
    try:
        with pytest.raises(ConnectionRefusedError):
            await a.connect("nobody", retry=False)
        b = net.endpoint("b", on_frames=Recorder().on_frames)
        await b.start()
        await a.connect("b", retry=False)
        assert a.is_connected("b")
        await b.close()
    finally:
        await a.close()
