"""``ember.Name``: a destination that names a process through the registry, and the rules for
the names themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from .._errors import UsageError

__all__ = ["GLOBAL_TIERS", "TIERS", "Name", "Tier", "check_global_name", "check_tier"]

Tier = Literal["local", "eventual", "consistent"]
"""``local``: this node only; ``eventual``: a CRDT replicated on every node (AP, fast);
``consistent``: a Raft group (CP, linearizable, fenced)."""
TIERS: Final[tuple[Tier, ...]] = get_args(Tier)
GLOBAL_TIERS: Final[tuple[Tier, ...]] = ("eventual", "consistent")
LOOKUP_ORDER: Final[tuple[Tier, ...]] = ("local", "consistent", "eventual")
"""Where ``whereis(name)`` without a tier looks, in order."""

_MAX_NAME_BYTES = 1024
_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Name:
    """A registered name as a destination: ``ember.send(ember.Name("orders"), msg)``.

    ``tier`` None looks in every tier (local, then consistent, then eventual). ``fence`` is a
    fencing token returned by a consistent registration: the owner's node drops (and counts) a
    message whose token is older than the name's current registration, so a message meant
    for a previous holder never reaches a new one.
    """

    name: Any
    tier: Tier | None = None
    fence: int | None = None

    def __post_init__(self) -> None:
        if self.tier is not None:
            check_tier(self.tier)
        if self.fence is not None:
            if not isinstance(self.fence, int) or isinstance(self.fence, bool) or self.fence < 1:
                raise UsageError(f"a fence is a positive fencing token, not {self.fence!r}")
            if self.tier not in (None, "consistent"):
                raise UsageError("a fence applies to consistent names only")
            object.__setattr__(self, "tier", "consistent")
        if self.name is None:
            raise UsageError("a name must not be None")

    def __repr__(self) -> str:
        extra = "" if self.tier is None else f", tier={self.tier!r}"
        extra += "" if self.fence is None else f", fence={self.fence}"
        return f"Name({self.name!r}{extra})"


def check_tier(tier: Any) -> Tier:
    if tier not in TIERS:
        raise UsageError(f"tier must be one of {', '.join(TIERS)}, not {tier!r}")
    return tier  # type: ignore[no-any-return]


def check_global_name(name: Any, depth: int = 0) -> Any:
    """``name`` if it can name a process cluster-wide: a str, bytes or int, or a tuple of such
    (they travel and compare the same on every node); else :class:`UsageError`."""
    if isinstance(name, str | bytes):
        if len(name) > _MAX_NAME_BYTES:
            raise UsageError(f"a global name is at most {_MAX_NAME_BYTES} long")
        return name
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    if name.__class__ is tuple and depth < _MAX_DEPTH:
        for part in name:
            cls = part.__class__
            if cls is int or (cls is str and len(part) <= _MAX_NAME_BYTES):
                continue  # the common parts, checked without a call
            check_global_name(part, depth + 1)
        return name
    raise UsageError(
        f"a global name is a str, bytes, int or a tuple of those, not {type(name).__name__}"
    )
