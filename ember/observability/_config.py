"""``AdminConfig``: the options of a node's admin API (``Node(admin=AdminConfig(...))``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from .._checks import check_int, check_positive
from .._errors import UsageError

__all__ = ["AdminConfig", "derive_token"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminConfig:
    """How a node serves its admin API, metrics and dashboard (see ``docs/operability.md``).

    The token is ``token``, else the contents of ``token_file``, else derived from the
    cluster cookie (:func:`derive_token`: ``ember status --cookie-file`` derives the same).
    ``/livez`` and ``/readyz`` need no token; everything else does.
    """

    listen: str = "127.0.0.1:9100"
    """``host:port`` to serve on (port 0: any free port; see ``node.admin.address``)."""
    token: str | None = None
    """The bearer token clients must present (``Authorization: Bearer ...``)."""
    token_file: Path | None = None
    """A file holding the token (surrounding whitespace ignored), read at start."""
    allow_mutations: bool = False
    """Serve the mutating routes (leave, leadership transfer, fault injection). Off by
    default, as in Akka Management; every mutation is logged at WARNING as an audit line."""
    push_interval: float = 1.0
    """Seconds between the dashboard's live updates (at least 0.1; ``ember top`` asks no
    faster than once a second)."""
    top: int = 20
    """Processes listed by default in the top-N views (``?top=`` overrides, up to 1,000)."""
    route_timeout: float = 10.0
    """Seconds a route may take (walking the supervision tree, a Raft status) before a 504."""

    def __post_init__(self) -> None:
        if not isinstance(self.listen, str) or ":" not in self.listen:
            raise UsageError(f"admin listen must be 'host:port', not {self.listen!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise UsageError("admin token must be a non-empty string")
        if self.token_file is not None and not isinstance(self.token_file, Path):
            object.__setattr__(self, "token_file", Path(self.token_file))
        check_positive("push_interval", self.push_interval)
        if self.push_interval < 0.1:
            raise UsageError(f"push_interval must be at least 0.1 s, not {self.push_interval!r}")
        check_int("top", self.top, 1, 1000)
        check_positive("route_timeout", self.route_timeout)

    def resolve_token(self, cookie: str | bytes | None, cluster: str) -> str:
        """The token this config means: ``token``, ``token_file``'s contents or the one derived
        from ``cookie``. Raises :class:`~ember.UsageError` when there is none."""
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise UsageError(f"cannot read admin token file {self.token_file}: {exc}") from exc
            if not token:
                raise UsageError(f"admin token file {self.token_file} is empty")
            return token
        if cookie:
            return derive_token(cookie, cluster)
        raise UsageError("the admin API needs a token: token=, token_file= or a cluster cookie")


def derive_token(cookie: str | bytes, cluster: str) -> str:
    """The admin token derived from a cluster cookie: hex HMAC-SHA256 of the cluster name
    under the cookie, domain-separated, so the token never reveals the cookie."""
    key = cookie.encode() if isinstance(cookie, str) else cookie
    return hmac.new(key, b"ember-admin-token\0" + cluster.encode(), hashlib.sha256).hexdigest()
