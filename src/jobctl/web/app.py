"""The dashboard's Starlette application: the Host check and security headers (security.py), the
login wall in front of every page and API call, templates and static files shipped in the
package, and the routes of pages.py and actions.py."""

from __future__ import annotations

from urllib.parse import quote

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import JobctlError, RedisUnavailable, UnknownBatch, UnknownJob
from . import actions, pages
from .auth import COOKIE, client_address
from .board import Dashboard, JSONBody, error_page, here, redis_failed
from .security import HostCheck, SecurityHeaders


class LoginWall:
    """Every request but the login page and static files needs the token: a session cookie whose
    session is open in Redis, or `Authorization: Bearer <token>` (request.state.session is then
    None). A wrong token is answered late (auth.py); a right one never waits."""

    OPEN = ("/login", "/static/")

    def __init__(self, app: ASGIApp, board: Dashboard):
        self.app, self.board = app, board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.OPEN):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        auth = self.board.auth
        token = auth.bearer(request)
        if token is not None:
            if auth.token_matches(token):
                state["session"] = None
                await self.app(scope, receive, send)
                return
            await auth.failed(client_address(request))
            response: Response = _unauthorized("wrong token")
        else:
            try:
                session = await self._cookie_session(request)
            except (redis.RedisError, RedisUnavailable) as exc:  # outside the routes' handlers: it would be a 500
                await JSONBody({"error": redis_failed(exc)}, status_code=503)(scope, receive, send)
                return
            if session:
                state["session"] = session
                await self.app(scope, receive, send)
                return
            response = self._not_logged_in(request)
        await response(scope, receive, send)

    async def _cookie_session(self, request: Request) -> str | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        return await run_in_threadpool(self.board.auth.session_id, self.board.connection, cookie)

    @staticmethod
    def _not_logged_in(request: Request) -> Response:
        if request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse(f"/login?next={quote(here(request), safe='')}", status_code=303)
        return _unauthorized("log in first, or send Authorization: Bearer <token>")


def _unauthorized(message: str) -> Response:
    return JSONBody({"error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="jobctl"'})


def create_app(board: Dashboard) -> Starlette:
    async def known_error(request: Request, exc: Exception) -> Response:
        status = (
            404 if isinstance(exc, UnknownJob | UnknownBatch) else 503 if isinstance(exc, RedisUnavailable) else 400
        )
        return error_page(request, status, str(exc))

    async def redis_error(request: Request, exc: Exception) -> Response:
        return error_page(request, 503, redis_failed(exc))

    app = Starlette(
        routes=[*pages.routes, *actions.routes, Mount("/static", StaticFiles(packages=[("jobctl.web", "static")]))],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(HostCheck, allowed=board.allowed_hosts),
            Middleware(LoginWall, board=board),
        ],
        exception_handlers={JobctlError: known_error, redis.RedisError: redis_error},
    )
    app.state.dashboard = board
    return app
