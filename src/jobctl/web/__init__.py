"""`jobctl web`: the dashboard, behind a token, with a JSON API under /api.

Pages read through jobctl.api.reads and act through jobctl.api.admin, the same functions the CLI calls.
Starlette, Jinja2 and uvicorn are imported here only, never by `jobctl --help` or other commands.
The login and its limits are in auth.py, the Host check and security headers in security.py.
"""

from __future__ import annotations

import ipaddress
import re
import secrets

from .. import logs
from ..config.settings import Settings
from ..errors import UsageError
from .tokens import check_length

TOKEN_ENV = "JOBCTL_WEB_TOKEN"
HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")  # name.example, *.example


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"  # an IPv6 address in brackets


def parse_host_names(text: str | None) -> tuple[str, ...]:
    """Comma-separated host names the Host header may carry besides IP addresses and localhost:
    `name.example`, `*.example` (any name under it), or `*` (any name at all)."""
    names = tuple(name.strip().lower() for name in (text or "").split(",") if name.strip())
    for name in names:
        if name != "*" and not HOST_PATTERN.fullmatch(name):
            raise UsageError(
                f"--allowed-hosts / JOBCTL_WEB_ALLOWED_HOSTS: {name!r} is not a host name "
                "(expected name.example, *.example or *)"
            )
    return names


def parse_proxy_addresses(text: str | None) -> list[str]:
    """Comma-separated addresses or networks of the proxies whose X-Forwarded-For/-Proto are
    believed, or `*` for any: the list uvicorn takes. Empty: forwarded headers are ignored."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if items == ["*"]:
        return items
    for item in items:
        parse = ipaddress.ip_network if "/" in item else ipaddress.ip_address
        try:
            parse(item)
        except ValueError:
            raise UsageError(
                f"--forwarded-allow-ips / JOBCTL_WEB_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or "
                "network (e.g. 127.0.0.1,10.0.0.0/8; or * alone, for any)"
            ) from None
    return items


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    read_only: bool = False,
    hosts: tuple[str, ...] = (),
    proxies: list[str] | None = None,
    token: str = "",
) -> None:
    """Run the dashboard until Ctrl-C/SIGTERM. The token is `token` (JOBCTL_WEB_TOKEN, as the
    command read it), or when empty one generated and printed once, in a login URL whose #fragment never reaches a server or a log.
    `hosts`: names the Host header may carry (parse_host_names()); `proxies`: whose forwarded
    headers to believe (parse_proxy_addresses()), none by default."""
    # Starlette, Jinja2 and uvicorn: loaded when the dashboard starts, not with the CLI
    import uvicorn

    from .app import create_app
    from .auth import Auth
    from .board import Dashboard

    given = token.strip()
    if given:
        check_length(given, TOKEN_ENV, "or leave it unset for a generated one")
    token = given or secrets.token_urlsafe(24)
    log = logs.setup(settings.verbose)
    # the name it was told to listen on is a name browsers may use (an address passes anyway)
    board = Dashboard(settings, Auth(token), read_only=read_only, allowed_hosts=(*hosts, host.lower()))
    board.job_names  # noqa: B018 - import the job modules now: a broken one fails at start, in one line
    settings.connection  # noqa: B018 - fail now, with one line, if Redis does not answer
    app = create_app(board)
    login = http_url(host, port, "/login")
    if not is_loopback(host):
        log.warning(
            "jobctl web: listening on %s, beyond this machine: put TLS (a reverse proxy) in front, or the "
            "token and session cookie cross the network in clear%s",
            host,
            "" if hosts else "; browse to it by IP address, or name its host names with --allowed-hosts",
        )
    mode = " (read-only)" if read_only else ""
    if given:
        print(f"jobctl web{mode}: {login} (token: ${TOKEN_ENV})", flush=True)
    else:
        print(f"jobctl web{mode}: {login}#token={token} (generated token; set {TOKEN_ENV} to choose one)", flush=True)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: every client of a local
    # proxy, or any process on this host, could then claim any address (test_web.py pins it)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
    )
