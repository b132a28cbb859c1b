"""`jobctl web`: the dashboard, behind a token, with a JSON API under /api.

Pages read through jobctl.api and act through jobctl.admin, the same functions the CLI calls.
Starlette, Jinja2 and uvicorn are imported here only, never by `jobctl --help` or other commands.
"""

from __future__ import annotations

import ipaddress
import os
import secrets

from ..settings import Settings

TOKEN_ENV = "JOBCTL_WEB_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, host: str, port: int, *, read_only: bool = False) -> None:
    """Run the dashboard until Ctrl-C/SIGTERM. The token comes from JOBCTL_WEB_TOKEN, or is
    generated and printed once, in a login URL whose #fragment never reaches a server or a log."""
    import uvicorn

    from .. import logs
    from .app import Dashboard, create_app
    from .auth import Auth

    given = os.environ.get(TOKEN_ENV, "").strip()
    token = given or secrets.token_urlsafe(24)
    board = Dashboard(settings, Auth(token), read_only=read_only)
    board.job_names  # noqa: B018 - import the job modules now: a broken one fails at start, in one line
    settings.connection  # noqa: B018 - fail now, with one line, if Redis does not answer
    app = create_app(board)
    shown_host = f"[{host}]" if ":" in host else host
    login = f"http://{shown_host}:{port}/login"
    log = logs.get()
    if not is_loopback(host):
        log.warning(
            "jobctl web: listening on %s, beyond this machine: put TLS (a reverse proxy) in front, or the "
            "token and session cookie cross the network in clear",
            host,
        )
    mode = " (read-only)" if read_only else ""
    if given:
        print(f"jobctl web{mode}: {login} (token: ${TOKEN_ENV})", flush=True)
    else:
        print(f"jobctl web{mode}: {login}#token={token} (generated token; set {TOKEN_ENV} to choose one)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True, server_header=False)
