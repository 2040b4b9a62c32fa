"""Values steps receive that Ember makes: an await's timeout and a collection's outcomes, and
the failure record that travels from a step to its run (plain data, so it can be stored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CollectionResult", "EventTimedOut", "Failure", "ItemOutcome"]


@dataclass(frozen=True, slots=True)
class EventTimedOut:
    """The value of an ``await_event(..., on_timeout="continue")`` step whose event did not
    come within its timeout."""

    event: str
    timeout: float


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item of a ``collection(..., mode="collect")``: its value, or the error it ended with
    (``kind``: the exception's type name)."""

    index: int
    ok: bool
    value: Any = None
    kind: str | None = None
    message: str | None = None
    node: str | None = None
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class CollectionResult:
    """The value of a ``collection(..., mode="collect")`` step: every item's outcome in order."""

    items: tuple[ItemOutcome, ...]

    @property
    def values(self) -> list[Any]:
        """The values of the items that succeeded, in order."""
        return [i.value for i in self.items if i.ok]

    @property
    def failures(self) -> list[ItemOutcome]:
        """The items that failed."""
        return [i for i in self.items if not i.ok]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a step attempt failed: the exception's qualified type name and message, its
    formatted traceback, the node it ran on, and whether it was a timeout."""

    kind: str
    message: str
    traceback: str = ""
    node: str | None = None
    timeout: bool = False

    def as_list(self) -> list[Any]:
        return [self.kind, self.message, self.traceback, self.node, self.timeout]

    @classmethod
    def from_list(cls, data: list[Any]) -> Failure:
        kind, message, tb, node, timeout = data
        return cls(kind, message, tb, node, bool(timeout))

    @classmethod
    def of(cls, exc: BaseException, node: str | None, traceback: str = "") -> Failure:
        t = type(exc)
        kind = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
        return cls(kind, str(exc), traceback, node)
