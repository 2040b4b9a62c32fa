"""``ember node start --path DIR --app pkg.mod[:function]``: the user's own code on a node.

``--path`` directories go to the front of ``sys.path`` (in the order given), so the node can
import the actors and state machines other nodes name by ``"pkg.mod:Class"``; ``--app``
imports a module when the node starts and, given as ``pkg.mod:function``, calls
``function(node)`` (a plain or an ``async`` function) once the node is up and before it reports
ready: the place to register message types, start supervision trees, join groups.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import UsageError

__all__ = ["AppHook", "add_app_arguments", "load_app", "start_app"]

AppHook = Callable[[Any], Any]


def add_app_arguments(parser: Any) -> None:
    """The ``--path`` and ``--app`` options."""
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a directory to import the node's own code from, put first on sys.path "
        "(repeatable); other nodes' spawns and child specs name classes there",
    )
    parser.add_argument(
        "--app",
        metavar="PKG.MOD[:FUNCTION]",
        help="a module to import at start; with :FUNCTION, FUNCTION(node) (plain or async) "
        "is called once the node is up, before it reports ready",
    )


def load_app(args: argparse.Namespace) -> AppHook | None:
    """Put ``--path`` on ``sys.path`` and import ``--app``; return its function, if named.
    Raises :class:`UsageError` naming what is wrong (a missing directory, an import error)."""
    for directory in reversed(args.path):
        if not directory.is_dir():
            raise UsageError(f"--path {directory}: not a directory")
        path = str(directory.resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    if not args.app:
        return None
    module_name, sep, function = args.app.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module failed to import: say which and why
        raise UsageError(f"--app {args.app}: cannot import {module_name}: {exc!r}") from exc
    if not sep:
        return None
    hook = getattr(module, function, None)
    if not callable(hook):
        raise UsageError(f"--app {args.app}: {module_name} has no function {function!r}")
    app_hook: AppHook = hook
    return app_hook


async def start_app(hook: AppHook, node: Any) -> None:
    """Call the app's function with the started node (awaiting it if it is async)."""
    result = hook(node)
    if inspect.isawaitable(result):
        await result
