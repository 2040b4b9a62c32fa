"""Helpers for the transport shell tests: a recorder of callbacks and a raw hand-driven peer."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ember.transport._frame import Channel, Frame, FrameDecoder, FrameRun
from ember.transport._handshake import Established, Handshake, SendBytes

COOKIE = "test-cookie"
CLUSTER = "test"
WAIT = 5.0  # generous bound on anything that should happen "soon"


class Recorder:
    """Collects what a transport reports; ``await wait(predicate)`` until it holds."""

    def __init__(self) -> None:
        self.frames: dict[str, list[Frame]] = defaultdict(list)
        self.batches = 0
        self.ups: list[tuple[str, int]] = []
        self.downs: list[tuple[str, str]] = []
        self.events: list[tuple[str, str]] = []  # ("up" | "down" | "frames", peer), in order
        self._changed = asyncio.Event()

    def on_frames(self, peer: str, frames: list[Frame | FrameRun]) -> None:
        for item in frames:  # runs of small USER frames are split back into frames here
            self.frames[peer].extend(item.frames() if isinstance(item, FrameRun) else [item])
        self.batches += 1
        if not self.events or self.events[-1] != ("frames", peer):
            self.events.append(("frames", peer))
        self._changed.set()

    def on_node_up(self, peer: str, creation: int) -> None:
        self.ups.append((peer, creation))
        self.events.append(("up", peer))
        self._changed.set()

    def on_node_down(self, peer: str, reason: str) -> None:
        self.downs.append((peer, reason))
        self.events.append(("down", peer))
        self._changed.set()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_frames": self.on_frames,
            "on_node_up": self.on_node_up,
            "on_node_down": self.on_node_down,
        }

    def payloads(self, peer: str, channel: Channel) -> list[bytes]:
        return [f.payload for f in self.frames[peer] if f.channel is channel]

    async def wait(self, predicate: Callable[[], bool], bound: float = WAIT) -> None:
        async with asyncio.timeout(bound):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


class LogWaiter(logging.Handler):
    """Awaits a log record: ``async with LogWaiter("ember.transport") as w: ... await
    w.wait("text")`` returns the first record whose message contains ``text``."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.DEBUG)
        self._logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    async def __aenter__(self) -> LogWaiter:
        self._logger.addHandler(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self)

    async def wait(self, text: str, bound: float = WAIT) -> logging.LogRecord:
        async with asyncio.timeout(bound):
            while True:
                for record in self.records:
                    if text in record.getMessage():
                        return record
                self._changed.clear()
                await self._changed.wait()


class RawPeer:
    """A hand-driven TCP client: speaks the handshake (or not) and then whatever a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()

    @classmethod
    async def open(cls, address: tuple[str, int]) -> RawPeer:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    async def handshake(
        self,
        name: str,
        expected_peer: str,
        cookie: str = COOKIE,
        creation: int = 7,
    ) -> Established:
        """Complete the handshake as initiator ``name``; leaves the status frame unread."""
        hs = Handshake(
            "initiator",
            node_name=name,
            cluster=CLUSTER,
            cookie=cookie.encode(),
            creation=creation,
            nonce_source=os.urandom,
            expected_peer=expected_peer,
        )
        self.writer.write(hs.initiate())
        async with asyncio.timeout(WAIT):
            while True:
                data = await self.reader.read(65536)
                assert data, "connection closed during the handshake"
                for event in hs.receive_data(data):
                    if isinstance(event, SendBytes):
                        self.writer.write(event.data)
                    else:
                        self.decoder.add_data(hs.trailing_data)
                        return event

    async def next_frame(self) -> Frame:
        async with asyncio.timeout(WAIT):
            while True:
                frame = self.decoder.next_frame()
                if frame is not None:
                    return frame
                data = await self.reader.read(65536)
                assert data, "connection closed"
                self.decoder.add_data(data)

    async def closed_by_peer(self) -> bool:
        """Read until EOF (True) or a connection reset (True); bounded by WAIT."""
        async with asyncio.timeout(WAIT):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass
        return True

    def close(self) -> None:
        self.writer.transport.abort()
