"""Ember's pytest plugin (registered through the ``pytest11`` entry point).

* ``async def`` tests run on a fresh :class:`VirtualTimeLoop` (timers jump, nothing sleeps for
  real); mark a test ``@pytest.mark.ember_realtime`` to run it on uvloop with a real clock.
* The ``node`` fixture gives the test a started :class:`ember.Node` named ``test``; the
  ``make_node`` fixture gives a factory ``make_node(name)`` for more nodes in the same loop.
  Both are stopped in order when the test ends.
* Every node the test makes (with the fixtures or ``ember.Node(...)`` itself) is seeded from one
  seed per test and its name (``ember._node.default_seed``): ``EMBER_SEED`` if set, else a
  random one. A failing test carries a note with it; ``EMBER_SEED=<n>`` replays the
  same protocol randomness (with ``PYTHONHASHSEED`` fixed too, set iteration orders match).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from .._node import Node, default_seed
from ._vtime import VirtualTimeLoop


class _NodeRequest:
    """Placeholder the fixtures return; replaced by live nodes inside the test's event loop."""

    def __init__(self, factory: bool) -> None:
        self.factory = factory


@pytest.fixture
def node() -> _NodeRequest:
    """A started ``ember.Node("test")`` in the test's event loop (async tests only)."""
    return _NodeRequest(factory=False)


@pytest.fixture
def make_node() -> _NodeRequest:
    """``await make_node(name)`` starts another node in the test's loop (async tests only)."""
    return _NodeRequest(factory=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ember_realtime: run this async test on uvloop with the real clock"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn) or pyfuncitem.get_closest_marker("asyncio"):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    realtime = pyfuncitem.get_closest_marker("ember_realtime") is not None
    run_test(fn, kwargs, realtime=realtime)
    return True


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
