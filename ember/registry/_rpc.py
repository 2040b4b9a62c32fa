"""Requests between the registry services of two nodes, on the REGISTRY channel.

A request is ``[REQ, id, op, args]`` and its reply ``[REP, id, ok, value]``, where a failed
reply's value is ``[error type, *args]`` for the error types the registry raises (they arrive
as the same types), or ``["EmberError", text]``. A request whose node goes down before the
reply fails with :class:`~ember.registry.TierUnavailable`; one with no reply within its timeout
raises ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._errors import EmberError, NameTaken, NoProc, UnknownName, UsageError
from .._services import send_to_node
from .._tasks import OwnedTasks
from ..consensus._cluster_errors import NoLeader, OutcomeUnknown
from ..transport._frame import Channel
from ._errors import TierUnavailable

if TYPE_CHECKING:
    from .._services import ServiceNode
    from ..transport._codec import Codec

__all__ = ["REP", "REQ", "Rpc", "decode_error", "encode_error"]

log = logging.getLogger("ember.registry")

REQ, REP = 0, 1

Handler = Callable[..., Awaitable[Any]]


def encode_error(exc: BaseException) -> list[Any]:
    """A registry error as wire data (see the module docstring)."""
    match exc:
        case NameTaken():
            return ["NameTaken", exc.name, exc.owner]
        case UnknownName():
            return ["UnknownName", exc.name]
        case NoProc():
            return ["NoProc", exc.pid, str(exc.reason)]
        case TierUnavailable():
            return ["TierUnavailable", exc.tier, exc.reason]
        case OutcomeUnknown():
            return ["OutcomeUnknown", exc.request_id, str(exc)]
        case NoLeader() | UsageError():
            return [type(exc).__name__, str(exc)]
    return ["EmberError", f"{type(exc).__name__}: {exc}"]


def decode_error(value: list[Any]) -> EmberError:
    kind, *args = value
    if kind == "NameTaken":
        return NameTaken(args[0], args[1])
    if kind == "UnknownName":
        return UnknownName(args[0])
    if kind == "NoProc":
        return NoProc(args[0], args[1])
    if kind == "TierUnavailable":
        return TierUnavailable(args[0], args[1])
    if kind == "OutcomeUnknown":
        err = OutcomeUnknown(args[0])
        err.args = (args[1],)
        return err
    if kind == "NoLeader":
        return NoLeader(args[0])
    if kind == "UsageError":
        return UsageError(args[0])
    return EmberError(*args)


class Rpc:
    """Calls to the registry service of another node, and the serving of theirs with the
    handlers in ``handlers`` (op -> ``async fn(*args)``)."""

    def __init__(self, node: ServiceNode, codec: Codec, tier: str = "global") -> None:
        self.node = node
        self.codec = codec
        self.tier = tier
        self.handlers: dict[str, Handler] = {}
        self._ids = itertools.count(1)
        self._calls: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._tasks = OwnedTasks(log, "registry request")

    async def close(self) -> None:
        await self._tasks.cancel_all()
        for _peer, fut in self._calls.values():
            if not fut.done():
                fut.set_exception(TierUnavailable(self.tier, f"node {self.node.name} stopped"))
        self._calls.clear()

    async def call(self, peer: str, op: str, args: list[Any], timeout: float) -> Any:  # noqa: ASYNC109
        """Run ``op`` on ``peer`` (on this node directly) and return its value."""
        if peer == self.node.name:
            async with asyncio.timeout(timeout):
                return await self.handlers[op](*args)
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            send_to_node(
                self.node, peer, Channel.REGISTRY, self.codec.encode((REQ, call_id, op, args))
            )
        except (EmberError, OSError) as exc:
            raise TierUnavailable(self.tier, f"node {peer} cannot be reached ({exc})") from exc
        self._calls[call_id] = (peer, fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._calls.pop(call_id, None)

    def node_down(self, peer: str) -> None:
        """Fail the requests waiting on ``peer``."""
        for call_id, (node, fut) in list(self._calls.items()):
            if node == peer and not fut.done():
                del self._calls[call_id]
                fut.set_exception(
                    TierUnavailable(self.tier, f"node {peer} went down before replying")
                )

    def on_request(self, peer: str, call_id: int, op: str, args: list[Any]) -> None:
        self._tasks.spawn(self._serve(peer, call_id, op, args))

    def on_reply(self, call_id: int, ok: bool, value: Any) -> None:
        entry = self._calls.pop(call_id, None)
        if entry is None or entry[1].done():
            return
        if ok:
            entry[1].set_result(value)
        else:
            entry[1].set_exception(decode_error(value))

    async def _serve(self, peer: str, call_id: int, op: str, args: list[Any]) -> None:
        handler = self.handlers.get(op)
        try:
            if handler is None:
                raise UsageError(f"unknown registry request {op!r}")
            value, ok = await handler(*args), True
        except Exception as exc:  # every failure travels back to the caller
            value, ok = encode_error(exc), False
        try:
            send_to_node(
                self.node, peer, Channel.REGISTRY, self.codec.encode((REP, call_id, ok, value))
            )
        except EmberError as exc:
            log.warning("registry: cannot reply to %s: %r", peer, exc)
