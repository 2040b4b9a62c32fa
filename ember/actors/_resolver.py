"""What the kernel needs from a registry: destinations that are neither a pid nor a local name.

``send``, ``cast``, ``call``, ``link`` and ``monitor`` accept such a destination (for example
``ember.Name("orders", tier="consistent")``) wherever they accept a pid, as OTP's
``{via, Module, Name}``: the kernel asks the :class:`Resolver` installed with
``Node.attach_resolver``, which the registry provides; the kernel never imports it. Methods are
called from the node's event loop, synchronously, and must not block.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._pid import Pid


class Resolver(Protocol):
    """Resolves destinations the kernel does not know itself."""

    def whereis(self, dest: Any) -> Pid | tuple[Any, str] | None:
        """The pid ``dest`` names now, or None when it names none (or is not a destination
        this resolver understands). Used by ``call``, ``link`` and ``monitor``.

        ``(dest', node)`` instead of a pid: only ``node`` can say which process that is (a
        fenced name, checked by its owner's node); the kernel then calls, links or monitors
        ``(dest', node)`` as it does ``(name, node)``, and that node's kernel asks its own
        resolver ``whereis((dest', node))``, which must answer with a local pid or None."""
        ...

    def send(self, dest: Any, msg: Any) -> bool:
        """Deliver ``msg`` to the process ``dest`` names (at most once); False when it names
        none now. May raise as a send to a pid does (``MailboxFull``, ``QueueFull``)."""
        ...
