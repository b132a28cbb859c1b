"""The dashboard's Starlette application: the Host check and security headers (security.py), the
login wall in front of every page and API call, templates and static files shipped in the
package, and the routes of pages.py and actions.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import redis
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..cli import views
from ..config.queues import QueuesConfig
from ..config.settings import Settings
from ..errors import JobctlError, RedisUnavailable, UnknownJob
from ..jobs import catalogue
from ..options.durations import format_duration
from .auth import COOKIE, Auth, client_address
from .security import HostCheck, SecurityHeaders

FLASH_COOKIE = "jobctl_flash"
POLL_MILLISECONDS = 2000


@dataclass
class Dashboard:
    """What every request needs: Redis, the configuration, the login and the mode."""

    settings: Settings
    auth: Auth
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = ()  # Host names besides IP addresses and localhost (security.py)
    templates: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Environment(
            loader=PackageLoader("jobctl.web", "templates"), autoescape=select_autoescape(default=True)
        )
        self.templates.filters.update(
            when=views.when,
            ago=views.ago,
            percent=views.percent,
            size=views.size,
            parameters=views.parameters,
            progress_text=views.progress_text,
            duration=format_duration,
            quote=quote,
        )

    @property
    def connection(self) -> redis.Redis:
        return self.settings.connection

    @property
    def config(self) -> QueuesConfig:
        return self.settings.queues

    @cached_property
    def job_names(self) -> list[str]:
        self.settings.load_jobs()
        return [spec.name for spec in catalogue.all_jobs()]


def dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard  # set by create_app
    return board


class JSONBody(Response):
    """JSON the way the CLI's --json prints it (anything else as its str)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str).encode()


def session_of(request: Request) -> str | None:
    """The browser session's id; None for a Bearer request (or the open login page)."""
    return getattr(request.state, "session", None)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    board = dashboard(request)
    session = session_of(request)
    flash = request.cookies.get(FLASH_COOKIE)
    page = board.templates.get_template(template).render(
        request=request,
        read_only=board.read_only,
        csrf=board.auth.csrf_token(session) if session else "",
        flash=flash,
        poll=POLL_MILLISECONDS,
        here=_here(request),
        nav_current=_nav_current(request),
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    if flash:
        response.delete_cookie(FLASH_COOKIE, httponly=True, samesite="strict")
    return response


def _nav_current(request: Request) -> str:
    """The main navigation's link for this page: job lists by state, the other pages by path."""
    if request.url.path == "/jobs":
        state = request.query_params.get("state")
        return f"/jobs?state={state if state in ('scheduled', 'deferred', 'dead') else 'queued'}"
    return request.url.path


def _here(request: Request) -> str:
    """The current page as a local URL, for a form to come back to."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def error_page(request: Request, status_code: int, message: str) -> Response:
    if request.url.path.startswith("/api/") or session_of(request) is None:
        return JSONBody({"error": message}, status_code=status_code)
    return render(request, "error.html", status_code, title=f"Error {status_code}", message=message)


def csrf_refusal(request: Request, form: FormData) -> Response | None:
    """403 for a browser session's POST without its CSRF token (the `csrf` form field, or the
    X-CSRF-Token header from JavaScript); None when it has it, or for a Bearer call (no cookie,
    nothing a foreign page can make a browser send)."""
    session = session_of(request)
    sent = request.headers.get("x-csrf-token") or form.get("csrf")
    if session is None or dashboard(request).auth.csrf_matches(session, sent):
        return None
    return error_page(request, 403, "missing or wrong CSRF token: reload the page and try again")


def redis_failed(exc: Exception) -> str:
    return f"Redis failed: {type(exc).__name__}; retry in a moment"


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
            return RedirectResponse(f"/login?next={quote(_here(request), safe='')}", status_code=303)
        return _unauthorized("log in first, or send Authorization: Bearer <token>")


def _unauthorized(message: str) -> Response:
    return JSONBody({"error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="jobctl"'})


def create_app(board: Dashboard) -> Starlette:
    from . import actions, pages

    async def known_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, UnknownJob) else 503 if isinstance(exc, RedisUnavailable) else 400
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
