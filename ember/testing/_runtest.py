"""Running one async test function the way Ember's pytest plugin does, without pytest: on a
fresh :class:`VirtualTimeLoop` (or uvloop), with the nodes its fixtures asked for, seeded.

It is apart from ``_plugin.py`` so that ``import ember.testing`` (the simulator and the
linearizability checker, which the chaos runner uses at run time) never needs pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any

from .._node import Node, default_seed
from ._vtime import VirtualTimeLoop

__all__ = ["run_test"]


class _NodeRequest:
    """Placeholder the fixtures return; replaced by live nodes inside the test's event loop."""

    def __init__(self, factory: bool) -> None:
        self.factory = factory


def run_test(
    fn: Callable[..., Coroutine[Any, Any, Any]], kwargs: dict[str, Any], realtime: bool = False
) -> None:
    """Run one async test function, starting the nodes its fixtures asked for."""
    env = os.environ.get("EMBER_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)

    async def main() -> None:
        default_seed.set(seed)  # this task's context: nodes the test makes itself too
        async with contextlib.AsyncExitStack() as stack:
            for key, value in list(kwargs.items()):
                if isinstance(value, _NodeRequest):
                    kwargs[key] = (
                        _factory(stack)
                        if value.factory
                        else (await stack.enter_async_context(Node("test")))
                    )
            await fn(**kwargs)

    if realtime:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = VirtualTimeLoop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except BaseException as exc:
        exc.add_note(f"ember: node seed {seed}; replay with EMBER_SEED={seed}")
        raise


def _factory(stack: contextlib.AsyncExitStack) -> Callable[..., Coroutine[Any, Any, Node]]:
    async def make(name: str, **kwargs: Any) -> Node:
        return await stack.enter_async_context(Node(name, **kwargs))

    return make
