"""Errors of the registry and of process groups (see the error tables in ``docs/registry.md``
and ``docs/pg.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import EmberError, UsageError

__all__ = [
    "NameConflict",
    "NameLost",
    "NotLocal",
    "TierUnavailable",
    "UnknownScope",
    "WaitTimeout",
]


class NameConflict(EmberError):
    """The exit reason of a process that lost an eventual name to a concurrent claimant once a
    partition healed (policy ``"kill"``): ``winner`` keeps ``name``."""

    def __init__(self, name: Any, winner: Any) -> None:
        super().__init__(f"name {name!r} was resolved in favour of {winner}")
        self.name = name
        self.winner = winner

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.name, self.winner))


@dataclass(frozen=True, slots=True)
class NameLost:
    """Sent to a process that lost an eventual name to a concurrent claimant (policy
    ``"notify"``): ``winner`` holds ``name`` now; the loser lives on, unregistered."""

    name: Any
    winner: Any


class NotLocal(UsageError):
    """``pg.join`` / ``pg.leave`` of a pid that is not a process of this node (OTP's
    ``nolocal``): join a process on its own node."""

    def __init__(self, pid: Any) -> None:
        super().__init__(f"{pid!r} is not a local process: only local pids may join or leave")
        self.pid = pid


class UnknownScope(EmberError):
    """No pg scope of that name runs on this node (OTP's ``noproc`` for a missing scope):
    start it with ``node.pg.start_scope``."""

    def __init__(self, scope: Any) -> None:
        super().__init__(f"no pg scope {scope!r} runs on this node")
        self.scope = scope


class TierUnavailable(EmberError):
    """A registry tier cannot serve the request now, and nothing was changed: the consistent
    tier's system group is not formed yet or has no quorum, or the node that must perform a
    registration (the pid's node) cannot be reached. Retry later."""

    def __init__(self, tier: str, reason: str) -> None:
        super().__init__(f"the {tier} tier is unavailable: {reason}")
        self.tier = tier
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.tier, self.reason))


class WaitTimeout(EmberError, TimeoutError):
    """``names.wait_for`` saw no registration of ``name`` within ``timeout`` seconds."""

    def __init__(self, name: Any, timeout: float | None) -> None:
        super().__init__(f"no registration of {name!r} within {timeout} s")
        self.name = name
        self.timeout = timeout
