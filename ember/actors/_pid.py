"""Process identifiers and unique references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._actor import Actor


class Pid:
    """Identifies one process in the cluster: ``<node.serial.creation>``.

    ``creation`` changes each time a node with the same name starts again, so a pid of a
    process from an earlier incarnation of the node never names a new process. Pids are
    hashable, ordered (by node, creation, serial) and printed like ``<a.17.1>``.
    """

    __slots__ = ("_proc", "creation", "node", "serial")

    node: str
    serial: int
    creation: int
    _proc: Actor | None  # the live local process, set only on the pid made by spawn

    def __init__(self, node: str, serial: int, creation: int) -> None:
        self.node = node
        self.serial = serial
        self.creation = creation
        self._proc = None

    def _key(self) -> tuple[str, int, int]:
        return (self.node, self.creation, self.serial)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Pid:
            return NotImplemented
        o: Pid = other
        return self.serial == o.serial and self.node == o.node and self.creation == o.creation

    def __hash__(self) -> int:
        return hash((self.node, self.serial, self.creation))

    def __lt__(self, other: Pid) -> bool:
        if other.__class__ is not Pid:
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: Pid) -> bool:
        if other.__class__ is not Pid:
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: Pid) -> bool:
        if other.__class__ is not Pid:
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: Pid) -> bool:
        if other.__class__ is not Pid:
            return NotImplemented
        return self._key() >= other._key()

    def __repr__(self) -> str:
        return f"<{self.node}.{self.serial}.{self.creation}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pid, (self.node, self.serial, self.creation))


class Ref:
    """A reference unique across the cluster: used for monitors, calls and timers.

    Refs are hashable and ordered like pids (by node, creation, serial).
    """

    __slots__ = ("creation", "node", "serial")

    def __init__(self, node: str, serial: int, creation: int) -> None:
        self.node = node
        self.serial = serial
        self.creation = creation

    def _key(self) -> tuple[str, int, int]:
        return (self.node, self.creation, self.serial)

    def __lt__(self, other: Ref) -> bool:
        if other.__class__ is not Ref:
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: Ref) -> bool:
        if other.__class__ is not Ref:
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: Ref) -> bool:
        if other.__class__ is not Ref:
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: Ref) -> bool:
        if other.__class__ is not Ref:
            return NotImplemented
        return self._key() >= other._key()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Ref:
            return NotImplemented
        o: Ref = other
        return self.serial == o.serial and self.node == o.node and self.creation == o.creation

    def __hash__(self) -> int:
        return hash((self.serial, self.node, self.creation))

    def __repr__(self) -> str:
        return f"#Ref<{self.node}.{self.serial}.{self.creation}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.node, self.serial, self.creation))
