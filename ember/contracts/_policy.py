"""Capability policies: what a node or a run refuses to let steps do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import UsageError

__all__ = ["CapabilityPolicy", "offered_capabilities"]


@dataclass(frozen=True, slots=True)
class CapabilityPolicy:
    """A deny list: a step that needs one of ``deny`` does not run (it fails the run with
    :class:`CapabilityDenied` before it starts). Give one to a run with
    ``Contract.start(..., policy=...)``; a node's own list is ``ContractsConfig.deny``."""

    deny: frozenset[str] = frozenset()

    def __init__(self, deny: Iterable[str] = ()) -> None:
        names = frozenset((deny,) if isinstance(deny, str) else deny)
        if not all(isinstance(n, str) and n for n in names):
            raise UsageError(f"a policy denies capability names, not {deny!r}")
        object.__setattr__(self, "deny", names)

    def first_denied(self, needs: Iterable[str]) -> str | None:
        """The first capability (in name order) of ``needs`` this policy denies, if any."""
        if not self.deny:
            return None
        hit = sorted(self.deny.intersection(needs))
        return hit[0] if hit else None


def offered_capabilities(meta_value: object) -> frozenset[str] | None:
    """The capabilities a node offers from its metadata entry ``capabilities`` (a list, or a
    comma-separated string as ``--meta capabilities=a,b`` gives); None (no entry) means the
    node offers every capability."""
    if meta_value is None:
        return None
    if isinstance(meta_value, str):
        return frozenset(c.strip() for c in meta_value.split(",") if c.strip())
    if isinstance(meta_value, (list, tuple, set, frozenset)):
        return frozenset(str(c) for c in meta_value)
    return frozenset()
