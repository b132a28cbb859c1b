"""What every page and action of the dashboard shares: the Dashboard (Redis, the configuration,
the login, the templates), rendering a page or an error, the session and its CSRF check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import redis
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..api import formats
from ..config.queues import QueuesConfig
from ..config.settings import Settings
from ..jobs import catalogue
from ..options.durations import format_duration
from .auth import Auth

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
            when=formats.when,
            ago=formats.ago,
            percent=formats.percent,
            size=formats.size,
            parameters=formats.parameters,
            progress_text=formats.progress_text,
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
        here=here(request),
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


def here(request: Request) -> str:
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
