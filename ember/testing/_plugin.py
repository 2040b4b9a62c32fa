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

import inspect

import pytest

from ._runtest import _NodeRequest, run_test


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
