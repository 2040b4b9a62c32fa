"""Classes named by importable reference, ``"pkg.mod:Class"``: how remote spawns and Raft
state machines name the code another node must run (Erlang names module and function)."""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from .._errors import UsageError

__all__ = ["resolve_class"]

T = TypeVar("T")


def resolve_class(ref: str, base: type[T], what: str) -> type[T]:
    """Import ``ref`` (``"pkg.mod:Class"``, nested classes as ``Outer.Inner``) and check it is
    a subclass of ``base``; any failure is a :class:`UsageError` naming ``what`` was wanted."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise UsageError(f"{what} reference looks like 'pkg.mod:Class', not {ref!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import {what} {ref!r}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise UsageError(f"{ref!r} is not {what} (a {base.__name__} subclass)")
    return obj
