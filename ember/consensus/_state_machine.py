"""What a Raft group replicates: a :class:`StateMachine` whose ``@apply`` handlers every member
runs on the same commands in the same order, and :class:`KVStateMachine`, the default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import msgpack  # type: ignore[import-untyped]

from .._errors import UsageError
from ..actors._refs import resolve_class

__all__ = ["KVStateMachine", "StateMachine", "apply", "resolve_state_machine", "state_machine_ref"]

F = TypeVar("F", bound=Callable[..., Any])


def apply(name: str) -> Callable[[F], F]:
    """Declare the decorated method the handler of commands whose ``"op"`` is ``name``.

    The handler gets the command (a dict) and returns the write's result. It must be
    deterministic: same state and command, same new state and result, on every member."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"a command name must be a non-empty string, not {name!r}")

    def mark(fn: F) -> F:
        fn._ember_apply = name  # type: ignore[attr-defined]
        return fn

    return mark


class StateMachine:
    """A replicated state machine. Subclasses declare handlers with :func:`apply`; a command is a
    dict whose ``"op"`` names its handler (``default_op`` when it has none).

    The state lives in ``self.state`` (a dict by default); :meth:`snapshot` and :meth:`restore`
    serialize it with msgpack, so keep it to msgpack types or override both. :meth:`read`
    answers ``Cluster.read(key)``. Handlers run on the event loop and must not block.
    """

    handlers: ClassVar[dict[str, str]] = {}
    """Command name -> method name, collected from the ``@apply`` methods of the class."""
    default_op: ClassVar[str | None] = None
    """The handler of commands without an ``"op"``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                name = getattr(value, "_ember_apply", None)
                if name is not None:
                    handlers[name] = attr
        cls.handlers = handlers

    def __init__(self) -> None:
        self.state: Any = {}
        self.index = 0
        """The log index of the command being applied (unique and increasing in the group's
        history, the same on every member: usable as a fencing token); 0 outside apply."""

    def apply_command(self, command: Any) -> Any:
        """Run the handler ``command`` names and return its result; raises :class:`UsageError`
        for a command no handler takes (the same on every member)."""
        op = command.get("op", self.default_op) if isinstance(command, Mapping) else None
        method = self.handlers.get(op) if isinstance(op, str) else None
        if method is None:
            raise UsageError(f"{type(self).__name__} has no handler for command {command!r}")
        return getattr(self, method)(command)

    def read(self, key: Any) -> Any:
        """The value a read of ``key`` returns (default: ``state.get(key)``)."""
        return self.state.get(key)

    def snapshot(self) -> bytes:
        """The whole state as bytes (default: msgpack of ``state``)."""
        return msgpack.packb(self.state)  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        """Replace the state with one :meth:`snapshot` returned."""
        self.state = msgpack.unpackb(data, strict_map_key=False)


class KVStateMachine(StateMachine):
    """A key-value map: ``{"key": k, "value": v}`` sets (returns the previous value),
    ``{"key": k, "op": "delete"}`` deletes (returns whether it existed); ``read(k)`` gets."""

    default_op = "set"

    @apply("set")
    def set(self, cmd: dict[str, Any]) -> Any:
        key = cmd["key"]
        previous = self.state.get(key)
        self.state[key] = cmd["value"]
        return previous

    @apply("delete")
    def delete(self, cmd: dict[str, Any]) -> bool:
        return self.state.pop(cmd["key"], _MISSING) is not _MISSING


_MISSING = object()


def state_machine_ref(cls: type[StateMachine] | str) -> str:
    """``"pkg.mod:Class"`` for a state machine class (it must be importable by that name on
    every node that runs a member)."""
    if isinstance(cls, str):
        resolve_state_machine(cls)
        return cls
    if not (isinstance(cls, type) and issubclass(cls, StateMachine)):
        raise UsageError(f"state_machine must be a StateMachine subclass, not {cls!r}")
    if "<locals>" in cls.__qualname__:
        raise UsageError(f"{cls.__qualname__} is defined in a function: it cannot be imported")
    return f"{cls.__module__}:{cls.__qualname__}"


SYSTEM_STATE_MACHINES = frozenset({"ember.registry._names_sm:NamesStateMachine"})
"""Ember's own state machines (the registry's system group): accepted whatever
``spawn_allow`` says."""


def resolve_state_machine(ref: str, allow: tuple[str, ...] | None = None) -> type[StateMachine]:
    """The class ``"pkg.mod:Class"`` names; ``allow`` lists the module prefixes accepted."""
    if (
        allow is not None
        and ref not in SYSTEM_STATE_MACHINES
        and not any(ref.startswith(p) for p in allow)
    ):
        raise UsageError(f"state machine {ref!r} is not in this node's spawn_allow list")
    return resolve_class(ref, StateMachine, "a state machine")
