"""Hostile peers for Ember's own tests and benchmarks of admission (not a public API).

:class:`SilentFlood` is sockets that connect and never speak; :func:`wrong_cookie_attempt` is
one handshake of a misconfigured node. Both talk raw TCP to a node's listener on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from ..transport._errors import ProtocolError
from ..transport._handshake import Handshake

__all__ = ["SilentFlood", "wrong_cookie_attempt"]


class SilentFlood:
    """``sockets`` sockets from as many loopback source addresses (127.0.x.y) that connect to
    ``address`` and never speak; each one the node closes is opened again at once, up to
    ``reopen`` times in all: an attacker who keeps the pressure on.

    ``async with SilentFlood(...)`` returns once every socket has connected once and cancels
    them all on exit.
    """

    def __init__(self, address: tuple[str, int], sockets: int = 200, reopen: int = 2000) -> None:
        self.address = address
        self.sockets = sockets
        self._budget = reopen
        self._connected = 0
        self._all_in = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SilentFlood:
        self._tasks = [asyncio.create_task(self._one(i)) for i in range(self.sockets)]
        try:
            async with asyncio.timeout(30):
                await self._all_in.wait()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _one(self, i: int) -> None:
        source = (f"127.0.{1 + i // 200}.{2 + i % 200}", 0)
        first = True
        while True:
            try:
                reader, writer = await asyncio.open_connection(*self.address, local_addr=source)
            except OSError:
                return
            finally:
                if first:
                    first = False
                    self._connected += 1
                    if self._connected == self.sockets:
                        self._all_in.set()
            try:
                with contextlib.suppress(ConnectionError):
                    await reader.read()  # until the node closes it
            finally:
                writer.transport.abort()
            if self._budget <= 0:
                return
            self._budget -= 1


async def wrong_cookie_attempt(address: tuple[str, int], cluster: str) -> None:
    """One handshake with a wrong cookie, as a misconfigured node makes it: HELLO; the node's
    proof fails to verify here, so we send the REJECT, and read until the node closes."""
    reader, writer = await asyncio.open_connection(*address)
    hs = Handshake(
        "initiator",
        node_name="intruder",
        cluster=cluster,
        cookie=b"not the cookie",
        creation=1,
        nonce_source=os.urandom,
    )
    try:
        writer.write(hs.initiate())
        async with asyncio.timeout(30):
            with contextlib.suppress(ProtocolError, ConnectionError):  # or a rate_limited refusal
                while data := await reader.read(65536):
                    hs.receive_data(data)
            if hs.rejection is not None:
                writer.write(hs.rejection)
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
    finally:
        writer.transport.abort()
