"""The dashboard's login: one shared token, signed session cookies, CSRF tokens, and failed tries
slowed down per client.

A session cookie is `<session id>.<expiry>.<HMAC>`, signed with a key derived from the token:
changing JOBCTL_WEB_TOKEN logs every browser out, restarting with the same token does not. The
CSRF token of a session is another HMAC of its id, so nothing is stored server-side.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "jobctl_session"
SESSION_SECONDS = 12 * 3600
FIRST_DELAY = 0.5  # seconds a client waits after its first failed try; doubled at each further one
MAX_DELAY = 10.0
FORGET_AFTER = 900.0  # seconds without a failed try after which a client starts afresh
MAX_CLIENTS = 10_000  # clients remembered at once: the table of failed tries stays bounded


@dataclass
class Failures:
    count: int
    next_allowed: float  # monotonic time before which this client's next try is held back
    last: float


class Auth:
    def __init__(self, token: str):
        self.token = token
        self._key = hmac.new(token.encode(), b"jobctl web session", hashlib.sha256).digest()
        self._failures: dict[str, Failures] = {}

    # --- the token ---------------------------------------------------------------------------

    def token_matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    @staticmethod
    def bearer(request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    # --- sessions and CSRF -------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        body = f"{secrets.token_urlsafe(18)}.{int(time.time()) + SESSION_SECONDS}"
        return f"{body}.{self._sign(body)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired cookie; None otherwise."""
        if not cookie or cookie.count(".") != 2:
            return None
        session, expiry, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{session}.{expiry}")):
            return None
        return session if expiry.isdigit() and int(expiry) > time.time() else None

    def csrf_token(self, session: str) -> str:
        return self._sign(f"csrf {session}")

    def csrf_matches(self, session: str, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate, self.csrf_token(session))

    # --- failed tries ------------------------------------------------------------------------

    async def hold_back(self, client: str) -> None:
        """Wait until this client may try again: after failed tries, every try is delayed."""
        entry = self._failures.get(client)
        if entry:
            wait = entry.next_allowed - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def failed(self, client: str) -> float:
        """Count a failed try; returns the delay the client's next try will wait."""
        now = time.monotonic()
        entry = self._failures.get(client)
        if entry is None or now - entry.last > FORGET_AFTER:
            if len(self._failures) >= MAX_CLIENTS:
                self._forget_old(now)
            entry = self._failures[client] = Failures(0, now, now)
        entry.count += 1
        entry.last = now
        delay: float = min(MAX_DELAY, FIRST_DELAY * 2 ** (entry.count - 1))  # int ** int is typed Any
        entry.next_allowed = max(entry.next_allowed, now) + delay
        return delay

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _forget_old(self, now: float) -> None:
        # the forgotten ones, or (a flood of clients all failing now) everyone: memory stays bounded
        for client in [c for c, e in self._failures.items() if now - e.last > FORGET_AFTER] or list(self._failures):
            del self._failures[client]
