"""The kernel's own records on the wire: supervisor requests, child specs and child rows, so
every supervisor verb works on a supervisor of another node.

A class travels by importable reference, ``"pkg.mod:Class"``, as a remote spawn names it. A
:class:`~ember.ChildSpec` arriving from another node is checked against the receiving node's
``spawn_allow`` (:func:`spawn_allowed`) and imported there; a refused or unimportable one makes
the whole message fail to decode, with the :class:`~ember.UsageError` saying why, which the
caller of the request gets. A :class:`~ember.ChildInfo` names its behaviour by reference too,
and arrives with the class if the module is already loaded on the caller's node (never
importing anything for a peer), else with the reference.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .._errors import UsageError
from ..actors import Actor, ChildInfo, ChildSpec, Supervisor
from ..actors._node import resolve_actor
from ..actors._supervisor import _Request
from ._codec import Codec
from ._errors import UnsendableError

__all__ = ["class_ref", "register_kernel_records", "spawn_allowed"]

ALWAYS_ALLOWED = frozenset({f"{Supervisor.__module__}:{Supervisor.__qualname__}"})
"""Classes another node may always start, whatever ``spawn_allow`` says: Ember's own
supervisor runs only the children its specs name, each of them checked."""


def spawn_allowed(target: str, allow: tuple[str, ...] | None) -> bool:
    """Whether ``target`` (``"pkg.mod:Class"``) may be started for another node: ``allow`` lists
    module names, each allowing itself and the modules below it (``"app"`` allows ``app`` and
    ``app.x``, not ``apple``; a trailing dot is ignored); ``None`` allows anything."""
    if allow is None or target in ALWAYS_ALLOWED:
        return True
    module = target.partition(":")[0]
    for entry in allow:
        prefix = entry.rstrip(".")
        if module == prefix or module.startswith(prefix + "."):
            return True
    return False


def class_ref(cls: type, what: Any) -> str:
    """``cls`` as ``"pkg.mod:Class"``; raise :class:`UnsendableError` (naming ``what``) if it is
    not importable by that name (a class defined inside a function)."""
    ref = f"{cls.__module__}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
        raise UnsendableError(
            type(what), f"{ref} cannot be imported by another node: define it in a module"
        )
    return ref


def register_kernel_records(
    codec: Codec, node: str, allow: Callable[[], tuple[str, ...] | None]
) -> None:
    """Teach ``codec`` the kernel's records; ``allow()`` is the node's current allow-list and
    ``node`` its name (for refusals)."""

    def dump_spec(spec: ChildSpec) -> dict[str, Any]:
        return {
            "id": spec.id,
            "cls": spec.cls if isinstance(spec.cls, str) else class_ref(spec.cls, spec),
            "args": spec.args,
            "kwargs": spec.kwargs,
            "restart": spec.restart,
            "shutdown": spec.shutdown,
            "name": spec.name,
        }

    def load_spec(fields: dict[str, Any]) -> ChildSpec:
        target = fields.get("cls")
        if not isinstance(target, str):
            raise UsageError(f"a child spec names its actor as 'pkg.mod:Class', not {target!r}")
        if not spawn_allowed(target, allow()):
            raise UsageError(f"spawning {target!r} is not allowed on {node}")
        return ChildSpec(**(fields | {"cls": resolve_actor(target)}))

    def dump_info(info: ChildInfo) -> dict[str, Any]:
        behaviour = info.behaviour
        ref = behaviour if isinstance(behaviour, str) else class_ref(behaviour, info)
        return {"id": info.id, "pid": info.pid, "kind": info.kind, "behaviour": ref}

    def load_info(fields: dict[str, Any]) -> ChildInfo:
        ref = fields.get("behaviour")
        behaviour: type[Actor] | str = str(ref)
        if isinstance(ref, str):
            behaviour = _loaded(ref) or ref
        return ChildInfo(**(fields | {"behaviour": behaviour}))

    codec.register_record(ChildSpec, dump=dump_spec, load=load_spec)
    codec.register_record(ChildInfo, dump=dump_info, load=load_info)
    codec.register_record(_Request)


def _loaded(ref: str) -> type[Actor] | None:
    """The Actor class ``ref`` names if its module is loaded here; never imports."""
    module_name, _, qualname = ref.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, Actor):
        return obj
    return None
