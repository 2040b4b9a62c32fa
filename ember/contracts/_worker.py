"""Running one step attempt: :func:`execute` (shared by steps run inline in their coordinator
and by workers) and :class:`StepWorker`, the actor an attempt runs in on the node it was placed
on (spawned there, remotely if need be), which reports to its run's coordinator."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from .._errors import EmberError
from ..actors import Actor, Pid, call
from ..actors import Node as KernelNode
from ._context import EffectUnknown, StepContext
from ._graph import Call, Step
from ._values import Failure

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = [
    "StepWorker",
    "execute",
    "failed",
    "report",
    "resolve",
    "run_function",
    "runs_inline",
]

_GO = ("ember.contracts", "go")


def _cached(
    service: ContractsService, step: Step, call: Call, args: dict[str, Any]
) -> tuple[Hashable | None, bool, Any]:
    """``(content address, hit, value)`` of a call of a pure step (no address otherwise)."""
    if not step.cache or call.fn is None:
        return None, False, None
    cache = service.cache
    key = cache.key(call.code, args)
    if key is None:
        return None, False, None
    hit, value = cache.get(key)
    return key, hit, value


def run_function(service: ContractsService, step: Step, call: Call, args: dict[str, Any]) -> Any:
    """Call a plain step function (the inline path), through the cache for a pure step."""
    fn = call.fn
    assert fn is not None
    key, hit, value = _cached(service, step, call, args)
    if hit:
        return value
    value = fn(**args)
    if key is not None:
        service.cache.put(key, value)
    return value


async def execute(
    service: ContractsService,
    *,
    run_id: str,
    step: Step,
    call: Call,
    args: dict[str, Any],
    ctx: StepContext | None,
) -> Any:
    """Run one attempt of ``call`` with ``args``: a function (async, in a thread if
    ``blocking``, or plain) or a child contract; pure steps go through the cache."""
    key, hit, value = _cached(service, step, call, args)
    if hit:
        return value
    fn = call.fn
    if fn is not None:
        kwargs = {**args, "ctx": ctx} if call.wants_ctx else args
        if call.is_async:
            value = await fn(**kwargs)
        elif step.blocking:
            value = await asyncio.to_thread(lambda: fn(**kwargs))
        else:
            value = fn(**kwargs)
    else:
        value = await service.run_child(call.contract, args, parent=run_id, key=step.name)
    if key is not None:
        service.cache.put(key, value)
    return value


def report(node: KernelNode, coordinator: Pid, msg: tuple[Any, ...]) -> None:
    """Send an attempt's report to its coordinator; a result that cannot travel to the
    coordinator's node is reported as a failure instead."""
    try:
        node.send(coordinator, msg)
    except EmberError as exc:
        if msg[0] != "done":
            raise
        failure = Failure.of(exc, node.name, "")
        node.send(coordinator, ("fail", msg[1], msg[2], failure.as_list(), node.name))


def failed(exc: BaseException, key: str, attempt: int, node: str) -> tuple[Any, ...]:
    """The report of an attempt that raised ``exc``."""
    if isinstance(exc, EffectUnknown):
        detail = f"side effect {exc.name!r} started before and did not report"
        return ("unknown", key, attempt, detail)
    tb = "".join(traceback.format_exception(exc))
    return ("fail", key, attempt, Failure.of(exc, node, tb).as_list(), node)


def resolve(
    service: ContractsService, contract: list[Any], step: str, case: int, run_id: str
) -> tuple[Step, Call, str | None]:
    """The step and call an attempt runs, and the capability this node's policy denies it
    (None if none)."""
    name, version, shape, ref = contract
    graph = service.graph_for(name, version, shape, ref, run_id)
    st = graph.steps[step]
    return st, st.calls[case], service.policy.first_denied(st.needs)


def runs_inline(step: Step, call: Call) -> bool:
    """Whether an attempt is a plain function call that runs at once where it lands (in its
    coordinator, or in the step host of the node it was sent to) instead of in a worker."""
    return call.fn is not None and not call.is_async and not call.wants_ctx and not step.blocking


class StepWorker(Actor):
    """Runs attempt ``attempt`` of task ``key`` of run ``run_id`` and sends the outcome to
    ``coordinator``: ``("done", key, attempt, value, node)``, ``("fail", key, attempt, failure,
    node)``, ``("denied", key, attempt, capability, by)`` or ``("unknown", key, attempt,
    detail)``. ``contract`` is ``[name, version, shape, ref]``; ``case`` indexes
    ``Step.calls``. All arguments are plain data (they may come from another node)."""

    def __init__(  # noqa: PLR0917 - the arguments of a "run" message, in order
        self,
        coordinator: Pid,
        run_id: str,
        contract: list[Any],
        key: str,
        step: str,
        case: int,
        attempt: int,
        args: dict[str, Any],
        checkpoints: dict[str, Any],
        effects: dict[str, Any],
    ) -> None:
        self.coordinator = coordinator
        self.run_id = run_id
        self.contract = contract
        self.key = key
        self.step_name = step
        self.case = case
        self.attempt = attempt
        self.args = args
        self.checkpoints = checkpoints
        self.effects = effects
        self.node.send(self.pid, _GO)

    async def receive(self, msg: Any) -> None:
        if msg != _GO:
            return
        try:
            report(self.node, self.coordinator, await self._attempt())
        finally:
            self.stop()

    async def _attempt(self) -> tuple[Any, ...]:
        from ._service import service_of

        service = service_of(self.node)
        here = self.node.name
        key, attempt = self.key, self.attempt
        try:
            step, call, denied = resolve(
                service, self.contract, self.step_name, self.case, self.run_id
            )
            if denied is not None:
                return ("denied", key, attempt, denied, f"node {here}")
            ctx = StepContext(
                self.run_id, key, attempt, here, self.checkpoints, self.effects, self._request
            )
            value = await execute(
                service, run_id=self.run_id, step=step, call=call, args=self.args, ctx=ctx
            )
        except (Exception, EffectUnknown) as exc:
            return failed(exc, key, attempt, here)
        return ("done", key, attempt, value, here)

    async def _request(self, op: str, args: list[Any]) -> Any:
        return await call(self.coordinator, ("ctx", self.key, self.attempt, op, args), timeout=60.0)
