"""The admin API of one node: an aiohttp server on its own port (``node.admin``).

Routes (schemas in ``docs/operability.md``): ``/livez`` and ``/readyz`` (open, for probes),
``/metrics`` (Prometheus text), JSON under ``/api/v1/``, the live ``/api/v1/events`` stream
and the dashboard at ``/``. Everything but the probes and the dashboard's static files needs
the bearer token (constant-time compared); the dashboard trades it once for a cookie that is
good for GETs only, so a mutating route always needs the header.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._errors import EmberError, NoProc, UnknownName, UsageError
from ._config import AdminConfig
from ._metrics import Metric, counter, gauge
from ._routes import AdminRequest, AdminRoute, int_param
from ._views import (
    API_VERSION,
    KNOWN_SECTIONS,
    TOP_BY,
    jsonable,
    node_view,
    section_summary,
    summary_view,
    supervision_view,
    top_processes,
)

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["AdminService"]

log = logging.getLogger("ember.admin")

_SESSION_COOKIE = "ember_admin"
_OPEN = frozenset({"/livez", "/readyz", "/", "/api/v1/session"})
_STATIC = "/static/"
_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
MAX_WATCHERS = 32
"""Live streams served at once; more are refused with a 503 (each builds its own frames)."""

Sections = Callable[[], Mapping[str, Any]]


class AdminService:
    """Serves one node's admin API; the node creates it from an :class:`AdminConfig`.

    ``token`` is the resolved bearer token; ``on_leave`` runs for ``POST /api/v1/leave``
    (``ember node start`` stops the node gracefully; by default the node leaves the mesh).
    """

    def __init__(
        self,
        node: ServiceNode,
        config: AdminConfig,
        token: str,
        *,
        on_leave: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.node = node
        self.config = config
        self._token = token.encode()
        self.on_leave = on_leave
        self._runner: web.AppRunner | None = None
        self._started = time.monotonic()
        self.address: tuple[str, int] | None = None
        """Where the API listens, once started."""
        self.requests: Counter[str] = Counter({"2xx": 0, "4xx": 0, "5xx": 0})
        """Requests answered, by status class (``2xx``, ``4xx``, ``5xx``)."""
        self.unauthorized = 0
        self.watchers = 0
        """Live streams open now."""
        self.frames = 0
        """Live-stream frames built (zero while nobody watches: the dashboard's whole cost)."""

    # -- life cycle ------------------------------------------------------------------------

    def sections(self) -> Mapping[str, Any]:
        """The node's observable sections (transport, mesh, services) by name."""
        return self.node.observables()

    async def start(self) -> None:
        """Build the routes from the node's sections and start serving."""
        host, _, port = self.config.listen.rpartition(":")
        if not port.isdigit():
            raise UsageError(f"admin listen must be 'host:port', not {self.config.listen!r}")
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(f"admin API cannot listen on {self.config.listen}: {exc}") from exc
        self._runner = runner
        bound = runner.addresses
        self.address = (bound[0][0], bound[0][1]) if bound else (host, int(port))
        log.info("node %s: admin API on http://%s:%d/", self.node.name, *self.address)

    async def stop(self) -> None:
        """Stop serving (open live streams are cut)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- metrics of the API itself ---------------------------------------------------------

    def collectors(self) -> Iterator[Callable[[], Iterator[Metric]]]:
        """The admin API's own metrics (requests by status class, watchers)."""
        yield self._collect

    def _collect(self) -> Iterator[Metric]:
        yield counter(
            "ember_admin_requests",
            "Admin API requests answered, by status class.",
            labels=["code"],
            samples=(((k,), float(v)) for k, v in sorted(self.requests.items())),
        )
        yield gauge("ember_admin_watchers", "Live dashboard streams open.", self.watchers)

    # -- routing ---------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/livez", self._livez)
        r.add_get("/readyz", self._readyz)
        r.add_get("/metrics", self._metrics)
        r.add_get("/", self._dashboard)
        r.add_get(_STATIC + "{asset}", self._asset)
        r.add_post("/api/v1/session", self._session)
        r.add_get("/api/v1/events", self._events)
        builtin = [
            AdminRoute("GET", "", self._index, "this list of routes"),
            AdminRoute("GET", "/node", self._node, "the node: name, address, counters"),
            AdminRoute("GET", "/members", self._members, "the members this node sees"),
            AdminRoute(
                "GET", "/processes", self._processes, "top processes (?top=N&by=mailbox|messages)"
            ),
            AdminRoute("GET", "/supervision", self._supervision, "the supervision trees"),
            AdminRoute("GET", "/summary", self._summary, "one screen of the node"),
            AdminRoute("POST", "/leave", self._leave, "leave the cluster", mutating=True),
        ]
        self._routes: list[tuple[str, AdminRoute]] = [("/api/v1" + rt.path, rt) for rt in builtin]
        sections = self.sections()
        for name, section in sections.items():
            routes = getattr(section, "admin_routes", None)
            mine = list(routes()) if routes is not None else []
            if not any(rt.path == "" and rt.method == "GET" for rt in mine):
                mine.insert(0, AdminRoute("GET", "", _summary_of(section), f"{name} summary"))
            for rt in mine:
                self._routes.append((f"/api/v1/{name}{rt.path}", rt))
        for name in KNOWN_SECTIONS:
            if name not in sections:
                self._routes.append((f"/api/v1/{name}", _absent(name, root=True)))
                self._routes.append((f"/api/v1/{name}/{{tail:.*}}", _absent(name, root=False)))
        for path, rt in self._routes:
            r.add_route(rt.method, path, self._wrap(rt))

    def _wrap(self, route: AdminRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if route.mutating:
                if not self.config.allow_mutations:
                    raise _Refused(403, "mutating routes are off (AdminConfig.allow_mutations)")
                if not self._bearer_ok(request):
                    raise _Refused(401, "a mutating route needs the bearer token header")
            body: Any = None
            if request.method == "POST" and request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    raise _Refused(400, "the request body must be JSON") from None
            if route.mutating:
                log.warning(
                    "admin audit: node %s: %s %s from %s body=%s",
                    self.node.name,
                    request.method,
                    request.path,
                    request.remote,
                    json.dumps(body, default=str)[:500],
                )
            req = AdminRequest(query=request.query, params=request.match_info, body=body)
            async with asyncio.timeout(self.config.route_timeout):
                result = await route.handler(req)
            return _json(result)

        return handle

    # -- middleware: auth and errors -------------------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            if not self._open(request.path) and not self._authorized(request):
                self.unauthorized += 1
                raise _Refused(401, "missing or wrong bearer token")
            response = await handler(request)
        except _Refused as exc:
            response = _error(exc.status, exc.message)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="ember"'
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
        except UsageError as exc:
            response = _error(400, str(exc))
        except (NoProc, UnknownName) as exc:
            response = _error(404, str(exc))
        except EmberError as exc:
            response = _error(409, f"{type(exc).__name__}: {exc}")
        except TimeoutError:
            response = _error(504, "the route did not finish within route_timeout")
        except Exception:
            log.exception("admin route %s %s failed", request.method, request.path)
            response = _error(500, "internal error (logged on the node)")
        self.requests[f"{response.status // 100}xx"] += 1
        return response

    def _open(self, path: str) -> bool:
        return path in _OPEN or path.startswith(_STATIC)

    def _bearer_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self._token
        )

    def _authorized(self, request: web.Request) -> bool:
        if self._bearer_ok(request):
            return True
        cookie = request.cookies.get(_SESSION_COOKIE)
        return (
            request.method == "GET"
            and cookie is not None
            and hmac.compare_digest(cookie.encode(), self._token)
        )

    # -- probes and metrics ----------------------------------------------------------------

    async def _livez(self, request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok", "node": self.node.name})

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        checks: dict[str, dict[str, Any]] = {}
        for name, section in self.sections().items():
            ready = getattr(section, "ready", None)
            if ready is not None:
                ok, detail = ready()
                checks[name] = {"ok": bool(ok), "detail": detail}
        ok = all(c["ok"] for c in checks.values())
        body = {"status": "ready" if ok else "not ready", "node": self.node.name, "checks": checks}
        return _json(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self.node.metrics.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    # -- built-in JSON routes --------------------------------------------------------------

    async def _index(self, req: AdminRequest) -> Any:
        return {
            "version": API_VERSION,
            "routes": [
                {
                    "method": rt.method,
                    "path": path,
                    "summary": rt.summary,
                    "mutating": rt.mutating,
                    "enabled": self.config.allow_mutations or not rt.mutating,
                }
                for path, rt in self._routes
                if "{tail" not in path
            ],
        }

    async def _node(self, req: AdminRequest) -> Any:
        return node_view(self.node, self.sections(), self._started)

    async def _members(self, req: AdminRequest) -> Any:
        return {"members": [m.as_dict() for m in self.node.members()]}

    def _top_args(self, req: AdminRequest) -> tuple[int, str]:
        top = int_param(req.query, "top", self.config.top, 1, 1000)
        by = req.query.get("by", "mailbox")
        if by not in TOP_BY:
            raise UsageError(f"by must be one of {', '.join(TOP_BY)}, not {by!r}")
        return top, by

    async def _processes(self, req: AdminRequest) -> Any:
        top, by = self._top_args(req)
        return {"by": by, "processes": top_processes(self.node, top, by)}

    async def _supervision(self, req: AdminRequest) -> Any:
        return {"trees": await supervision_view(self.node, self.config.route_timeout)}

    async def _summary(self, req: AdminRequest) -> Any:
        top, by = self._top_args(req)
        return summary_view(self.node, self.sections(), self._started, top, by)

    async def _leave(self, req: AdminRequest) -> Any:
        if self.on_leave is not None:
            result = self.on_leave()
            if result is not None:
                await result
        elif self.node.mesh is not None:
            await self.node.mesh.leave()
        else:
            raise UsageError(f"node {self.node.name} runs no mesh to leave")
        return {"left": True}

    # -- the dashboard ---------------------------------------------------------------------

    async def _session(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            raise _Refused(400, 'send {"token": "..."} as JSON') from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self._token):
            self.unauthorized += 1
            raise _Refused(401, "wrong token")
        response = _json({"session": True})
        response.set_cookie(
            _SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", max_age=86400
        )
        return response

    async def _dashboard(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_asset("dashboard.html"), content_type="text/html")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["asset"]
        if name not in _ASSETS:
            raise _Refused(404, f"no asset {name!r}")
        return web.Response(body=_asset(name), headers={"Content-Type": _ASSETS[name]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a ``summary`` frame every ``push_interval`` while connected.
        Nothing is computed between connections."""
        top, by = self._top_args(AdminRequest(query=request.query))
        if self.watchers >= MAX_WATCHERS:
            raise _Refused(503, f"at most {MAX_WATCHERS} live streams at once")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.watchers += 1
        try:
            while True:
                frame = summary_view(self.node, self.sections(), self._started, top, by)
                self.frames += 1
                data = json.dumps(frame, default=str)
                await response.write(f"event: summary\ndata: {data}\n\n".encode())
                await asyncio.sleep(self.config.push_interval)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.watchers -= 1
        return response


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(jsonable(body)), status=status, content_type="application/json"
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message, "status": status}, status=status)


def _asset(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _summary_of(section: Any) -> Callable[[AdminRequest], Awaitable[Any]]:
    async def handler(req: AdminRequest) -> Any:
        return section_summary(section)

    return handler


def _absent(name: str, *, root: bool) -> AdminRoute:
    async def handler(req: AdminRequest) -> Any:
        if not root:
            raise _Refused(404, f"{name} is not running on this node")
        return {"service": name, "running": False}

    return AdminRoute("GET", "", handler, f"{name}: not running on this node")
