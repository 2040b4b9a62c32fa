"""The seam through which a layer adds routes to the admin API.

A layer (a service such as ``node.names``, or the transport and mesh through the node) may
offer ``admin_routes()``, returning :class:`AdminRoute` objects; the admin API mounts them under
``/api/v1/<layer>``. A handler gets an :class:`AdminRequest` and returns JSON-able data; it
raises :class:`~ember.UsageError` for bad input (400), :class:`~ember.NoProc` or
:class:`~ember.UnknownName` for a missing thing (404), any other :class:`~ember.EmberError`
for a refusal (409). It must not block the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import UsageError

__all__ = ["AdminRequest", "AdminRoute", "int_param"]


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """What a route handler is given: the query string, the ``{name}`` parts of its path and
    the decoded JSON body (None for a GET)."""

    query: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


Handler = Callable[[AdminRequest], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AdminRoute:
    """One route a layer adds: ``path`` is relative to ``/api/v1/<layer>`` (``""`` for the
    layer's own root, ``"/{group}"`` with a path parameter). A ``mutating`` route is only
    served when ``AdminConfig.allow_mutations`` is on, needs the bearer header (a dashboard
    cookie is not enough) and is logged as an audit line."""

    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    summary: str
    mutating: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("GET", "POST"):
            raise UsageError(f"admin routes are GET or POST, not {self.method!r}")
        if self.path and not self.path.startswith("/"):
            raise UsageError(f"an admin route path starts with '/': {self.path!r}")
        if self.mutating and self.method != "POST":
            raise UsageError("a mutating admin route must be a POST")


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an int in ``low..high`` (``default`` when absent);
    :class:`~ember.UsageError` (a 400) otherwise."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"query parameter {name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"query parameter {name} must be in {low}..{high}, not {value}")
    return value
