"""What a node needs from a transport, so a real one and a simulated one are interchangeable.

:class:`~ember.transport.Transport` (TCP) and :class:`~ember.transport.MemoryTransport` (a
simulated network) both satisfy :class:`NodeTransport`; the kernel codes against it.

How callbacks are called (both implementations):

- From the transport's event loop, synchronously, one at a time, never concurrently with each
  other. They must not block: they run inside the loop's I/O callbacks. They may call ``send``
  (what they queue goes out in the same loop iteration's flush).
- ``on_frames(peer, frames)`` gets, in order, every frame that one read from ``peer``
  completed (a whole batch, for throughput); frames of one channel from one peer always arrive
  in the order they were sent. Heartbeats are never delivered. The list is the callee's. An
  item is a :class:`~ember.transport._frame.Frame` or, from the TCP transport, a
  :class:`~ember.transport._frame.FrameRun` of consecutive small USER frames still in their
  wire form (``run.frames()`` splits it; ``Codec.decode_run`` decodes it in one pass).
- ``on_node_up(peer, creation)`` fires when a connection to ``peer`` opens, before any of its
  frames is delivered; ``on_node_down(peer, reason)`` fires once when it ends, after its last
  frame. Up and down alternate strictly for each peer.
- An exception a callback raises is logged and counted (``callback_errors``) and swallowed: a
  buggy consumer must not take the connection down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ._frame import Channel, Frame, FrameRun
from ._stats import TransportStats

__all__ = ["CountsErrors", "NodeTransport", "OnFrames", "OnNodeDown", "OnNodeUp", "guarded_call"]

OnFrames = Callable[[str, list[Frame | FrameRun]], None]
"""``on_frames(peer_name, frames)``: a batch of frames (and runs of frames) from one peer, in
order."""
OnNodeUp = Callable[[str, int], None]
"""``on_node_up(peer_name, peer_creation)``: a connection to the peer opened."""
OnNodeDown = Callable[[str, str], None]
"""``on_node_down(peer_name, reason)``: the connection ended; ``reason`` is a short label
(``"peer_closed"``, ``"connection_lost"``, ``"heartbeat_timeout"``, ``"protocol_error:<kind>"``,
``"closed"`` for a local close, ...) for logs; to the kernel every reason means noconnection."""


class CountsErrors(Protocol):
    """Where :func:`guarded_call` counts the exceptions it swallows."""

    callback_errors: int


def guarded_call(
    stats: CountsErrors, who: object, callback: Callable[..., object], *args: object
) -> None:
    """Call a consumer's callback as the rules above say: what it raises is logged and
    counted (``callback_errors``), never allowed to take the connection down. ``who`` names
    the caller in the log (formatted only then)."""
    try:
        callback(*args)
    except Exception:
        stats.callback_errors += 1
        logging.getLogger("ember.transport").exception("%s: callback %r raised", who, callback)


class NodeTransport(Protocol):
    """The transport interface a node uses; see the module docstring for callback rules."""

    @property
    def node_name(self) -> str:
        """This node's name."""
        ...

    async def start(self, listen: str | None = "127.0.0.1:0") -> tuple[str, int] | None:
        """Start listening (``"host:port"``; ``None`` for an outbound-only transport); return
        the bound address."""
        ...

    def add_peer_address(self, name: str, host: str, port: int) -> None:
        """Where to dial ``name`` when a send needs a connection to it."""
        ...

    async def connect(
        self,
        peer_name: str,
        host: str | None = None,
        port: int | None = None,
        *,
        retry: bool = True,
    ) -> None:
        """Return once connected to ``peer_name``, dialling (with backoff) until then; with
        ``retry=False``, raise the first attempt's failure instead."""
        ...

    def send(self, peer: str, channel: Channel, payload: bytes) -> None:
        """Queue one frame for ``peer``; never blocks; may raise ``QueueFull``/``NoRoute``."""
        ...

    async def send_wait(self, peer: str, channel: Channel, payload: bytes) -> None:
        """Like :meth:`send`, but wait for room instead of raising ``QueueFull``."""
        ...

    def connected_nodes(self) -> list[str]:
        """Names of the peers with an open connection, sorted."""
        ...

    def is_connected(self, peer: str) -> bool:
        """Whether a connection to ``peer`` is open."""
        ...

    def disconnect(self, peer: str) -> None:
        """Close the connection to ``peer``, if open (its node goes down)."""
        ...

    def statistics(self) -> TransportStats:
        """A snapshot of the counters."""
        ...

    def peer_queues(self) -> dict[str, tuple[bool, dict[str, int]]]:
        """Per peer: connected, and frames queued per channel name (metrics, admin API)."""
        ...

    async def close(self) -> None:
        """Close every connection and stop; idempotent."""
        ...
