"""How exceptions and exit reasons cross nodes.

An exception travels as the array ``[type_name, message, args, traceback, cause]``:
``type_name`` is ``"module.QualName"``, ``message`` its ``str()`` (at most :data:`MAX_MESSAGE`
characters), ``traceback`` the formatted
traceback of where it was raised (at most :data:`MAX_TRACEBACK` characters, the innermost
frames kept), ``cause`` its ``__cause__`` in the same form (at most :data:`MAX_CAUSES` deep).
``args`` are the constructor arguments of an Ember error (``__reduce__``), so the receiver
rebuilds the same type (``NoProc``, ``NameTaken``, ``StartError``, ``FrameTooLarge``...), with a
note naming the node it was raised on; ``None`` for any other exception, which arrives as
:class:`~ember.RemoteError` carrying the name, message and traceback. Only classes of the
``ember`` package are ever rebuilt: a peer cannot make a node construct arbitrary classes.
"""

from __future__ import annotations

import traceback
from typing import Any

from .._errors import EmberError, RemoteError

__all__ = ["MAX_CAUSES", "MAX_MESSAGE", "MAX_TRACEBACK", "ErrorCodec", "wire_reason"]

MAX_TRACEBACK = 8192
"""Characters of a remote traceback kept (the end of it: the frames nearest the raise)."""
MAX_CAUSES = 3
"""Links of a ``__cause__`` chain carried across."""
MAX_MESSAGE = 4096
"""Characters of an exception's message carried across (a reply must fit in a frame)."""
_MAX_DEPTH = 32


def type_name(cls: type) -> str:
    """``"module.QualName"`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def wire_reason(reason: Any, depth: int = 0) -> Any:
    """An exit reason (or an error's argument) that can cross the wire: an exception travels as
    ``("exception", "module.Type", "message")`` and a class as its ``"module.QualName"``, also
    inside tuples, lists and dict values; anything else as it is."""
    if isinstance(reason, BaseException):
        return ("exception", type_name(type(reason)), str(reason))
    if isinstance(reason, type):
        return type_name(reason)
    if depth < _MAX_DEPTH:
        cls = reason.__class__
        if cls is tuple:
            return tuple(wire_reason(r, depth + 1) for r in reason)
        if cls is list:
            return [wire_reason(r, depth + 1) for r in reason]
        if cls is dict:
            return {k: wire_reason(v, depth + 1) for k, v in reason.items()}
    return reason


class ErrorCodec:
    """Turns exceptions into wire terms and back; one per distribution (it remembers which
    Ember error class a type name names)."""

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseException]] = {}

    def to_wire(self, exc: BaseException, typed: bool = True, depth: int = 0) -> list[Any]:
        """The wire term of ``exc``. ``typed=False`` leaves out the arguments (and the cause's),
        for an error whose arguments the codec could not encode: it then arrives as a
        :class:`~ember.RemoteError`."""
        args: list[Any] | None = None
        if typed and isinstance(exc, EmberError) and _is_ember(type(exc)):
            reduced = exc.__reduce__()
            if isinstance(reduced, tuple) and len(reduced) >= 2 and reduced[0] is type(exc):
                args = [wire_reason(a) for a in reduced[1]]
        text = ""
        if exc.__traceback__ is not None:
            text = "".join(traceback.format_exception(exc, chain=False))[-MAX_TRACEBACK:]
        elif isinstance(exc, RemoteError):
            text = exc.remote_traceback  # passing on what another node raised
        cause = exc.__cause__
        wired_cause = None
        if cause is not None and depth < MAX_CAUSES:
            wired_cause = self.to_wire(cause, typed, depth + 1)
        return [type_name(type(exc)), str(exc)[:MAX_MESSAGE], args, text, wired_cause]

    def from_wire(self, term: Any, node: str) -> BaseException:
        """The exception a wire term from ``node`` stands for: the Ember error it names, or a
        :class:`~ember.RemoteError`. A malformed term is a ``RemoteError`` too."""
        if not (isinstance(term, list | tuple) and len(term) == 5):
            return RemoteError("unknown", repr(term)[:1000], "", node)
        name, message, args, text, cause = term
        name, message, text = str(name), str(message), str(text) if text else ""
        exc: BaseException | None = None
        if isinstance(args, list | tuple):
            cls = self._class(name)
            if cls is not None:
                try:
                    exc = cls(*args)
                except Exception:
                    exc = None
        if exc is None:
            exc = RemoteError(name, message, text, node)
        elif not isinstance(exc, RemoteError):  # one passed on keeps the node it came from
            exc.add_note(f"(raised on node {node})")
        if cause is not None:
            exc.__cause__ = self.from_wire(cause, node)
        return exc

    def _class(self, name: str) -> type[BaseException] | None:
        cls = self._classes.get(name)
        if cls is None:
            # A miss walks the Ember error classes loaded now: a layer imported later (Raft,
            # say) brings its errors, and is found at its first error.
            todo: list[type[BaseException]] = [EmberError]
            while todo:
                c = todo.pop()
                todo.extend(c.__subclasses__())
                if _is_ember(c):
                    self._classes.setdefault(type_name(c), c)
            cls = self._classes.get(name)
        return cls


def _is_ember(cls: type) -> bool:
    module = cls.__module__
    return module == "ember" or module.startswith("ember.")
