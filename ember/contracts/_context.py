"""``ctx``: what a step function may ask of its run, given to a parameter named ``ctx``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["EffectUnknown", "StepContext"]


class EffectUnknown(BaseException):
    """A side effect of this step started on an earlier attempt and did not report: the step
    stops and the run's outcome becomes unknown. A ``BaseException``, so that a step's own
    ``except Exception`` cannot swallow it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class StepContext:
    """The run a step attempt belongs to, its checkpoints, and side effects that run once.

    ``await ctx.checkpoint(name, value)`` records intermediate state (replicated for a durable
    run before it returns); an attempt that resumes the step elsewhere finds it in
    ``ctx.checkpoints``. ``await ctx.run(fn, *args, name=None)`` runs ``fn`` (plain or async)
    once per run: its start and its result are recorded, a later attempt gets the recorded
    result without running it, and one whose earlier start has no result ends the run as
    ``unknown`` instead of running it twice. Effects are named in call order by default
    (``effect-0``, ``effect-1``...): keep their order stable, or name them.
    """

    __slots__ = (
        "_checkpoints",
        "_count",
        "_effects",
        "_request",
        "attempt",
        "key",
        "node",
        "run_id",
    )

    def __init__(  # noqa: PLR0917 - made in one place, by the worker
        self,
        run_id: str,
        key: str,
        attempt: int,
        node: str,
        checkpoints: Mapping[str, Any],
        effects: Mapping[str, Any],
        request: Callable[[str, list[Any]], Awaitable[Any]],
    ) -> None:
        self.run_id = run_id
        self.key = key
        """The task: the step's name, or ``name[i]`` for an item of a collection."""
        self.attempt = attempt
        self.node = node
        self._checkpoints = dict(checkpoints)
        self._effects = {k: list(v) for k, v in effects.items()}
        self._request = request
        self._count = 0

    @property
    def checkpoints(self) -> Mapping[str, Any]:
        """Checkpoints recorded by this step's attempts so far."""
        return MappingProxyType(self._checkpoints)

    async def checkpoint(self, name: str, value: Any) -> None:
        """Record ``value`` under ``name``; returns once it is persisted."""
        await self._request("checkpoint", [name, value])
        self._checkpoints[name] = value

    async def run(self, fn: Callable[..., Any], *args: Any, name: str | None = None) -> Any:
        """Run side effect ``fn(*args)`` at most once for this run and return its result."""
        if name is None:
            name = f"effect-{self._count}"
            self._count += 1
        kept = self._effects.get(name)
        if kept is not None:
            state, value = kept
            if state == "done":
                return value
            if state == "started":
                raise EffectUnknown(name)
        await self._request("effect", [name, "started", None])
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            await self._request("effect", [name, "failed", None])
            raise
        await self._request("effect", [name, "done", result])
        self._effects[name] = ["done", result]
        return result
