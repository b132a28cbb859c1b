"""What every request to the dashboard must name, and what every answer carries.

HostCheck refuses a Host header that is neither an IP address, localhost, nor a name the operator
allowed (`jobctl web --allowed-hosts`): a page of another site whose DNS name was rebound to this
address (DNS rebinding, against the 127.0.0.1 default) names its own host. An IP address cannot
be rebound, so browsing by address always works. Starlette's TrustedHostMiddleware takes names
only, not "any IP address".

SecurityHeaders: a Content-Security-Policy allowing only this origin's files (the templates have
no inline script or style), no framing, no sniffing, no Referer, and no caching but of /static.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
CACHED = "/static/"  # the shipped CSS, JS and icon; every other answer may show jobs, so is never stored


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: Sequence[str]):
        self.app = app
        self.any_name = "*" in allowed
        self.names = {name.rstrip(".") for name in allowed if not name.startswith("*")} | {"localhost"}
        self.suffixes = tuple(name[1:].rstrip(".") for name in allowed if name.startswith("*."))

    def allows(self, host_header: str) -> bool:
        try:
            name = urlsplit(f"//{host_header}").hostname  # lower case, without port or [brackets]
        except ValueError:  # "[::1", a port that is not a number...
            return False
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            name = name.rstrip(".")
            return self.any_name or name in self.names or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allows(Headers(scope=scope).get("host", "")):
            refusal = PlainTextResponse(
                "Invalid host header: browse to this dashboard by IP address or localhost, "
                "or start it with --allowed-hosts naming this host",
                status_code=400,
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cached = scope["path"].startswith(CACHED)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(HEADERS)
                if not cached:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
