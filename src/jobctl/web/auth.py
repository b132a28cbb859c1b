"""The dashboard's login: one shared token, sessions kept in Redis, CSRF tokens, and wrong tries
answered late.

A session is a random id in an HttpOnly cookie. Redis keeps an HMAC of it, keyed by the token,
for SESSION_SECONDS: logging out deletes it, so a copied cookie dies too; changing
JOBCTL_WEB_TOKEN logs every browser out; restarting with the same token, or a second dashboard on
the same Redis and token, keeps them. The CSRF token of a session is another HMAC of its id.

Wrong tries. The token is compared first, in constant time, and a right token is never held
back: however many wrong tries arrive, from wherever (behind a proxy every client has the proxy's
address), they cannot lock the operator out. (Grafana refuses a user's logins for minutes after
5 failures, so anyone can lock a known user out; Flower and rq-dashboard do not limit tries;
Sidekiq's Web UI leaves login to the application it is mounted in.) Here each wrong try is logged
with the client's address and answered after a delay that grows with that address's recent
failures (FIRST_DELAY, doubling, at most MAX_DELAY; a right token does not reset it): a script
trying tokens one after another is slowed to one try per MAX_DELAY. Tries sent in parallel are
not slowed in total (the delays overlap), and an answer that does not come at once tells a wrong
token anyway: against those the defence is the token's length (tokens.MIN_TOKEN_LENGTH, checked at start).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import redis
from starlette.requests import Request

from .. import logs
from ..store import keys
from .tokens import Token, bearer, utf8

COOKIE = "jobctl_session"
SESSION_SECONDS = 12 * 3600
SESSION_ID_BYTES = 32  # random bytes of a session id: 43 characters in the cookie
FIRST_DELAY = 0.5  # seconds before a client's first wrong try is answered; doubled at each further one
MAX_DELAY = 10.0
FORGET_AFTER = 900.0  # seconds without a wrong try after which a client starts afresh
MAX_CLIENTS = 10_000  # clients remembered at once: the table of wrong tries stays bounded


@dataclass
class Failures:
    count: int
    delay: float  # how long this client's last wrong try waited
    last: float  # monotonic time of that try


def client_address(request: Request) -> str:
    """The peer's address: a proxy's own unless `jobctl web --forwarded-allow-ips` names it."""
    return request.client.host if request.client else "-"


class Auth:
    def __init__(self, token: str):
        self._token = Token(token)
        self._key = hmac.new(token.encode(), b"jobctl web session", hashlib.sha256).digest()
        self._failures: dict[str, Failures] = {}

    # --- the token ---------------------------------------------------------------------------

    def token_matches(self, candidate: str | None) -> bool:
        return self._token.matches(candidate)

    @staticmethod
    def bearer(request: Request) -> str | None:
        return bearer(request.headers.get("authorization", ""))

    # --- sessions and CSRF -------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def _session_key(self, session: str) -> str:
        return keys.web_session(self._sign(f"session {session}"))

    def open_session(self, connection: redis.Redis) -> str:
        session = secrets.token_urlsafe(SESSION_ID_BYTES)
        connection.set(self._session_key(session), 1, ex=SESSION_SECONDS)
        return session

    def session_id(self, connection: redis.Redis, cookie: str | None) -> str | None:
        """The session id of a cookie whose session is open; None otherwise."""
        if not cookie or len(cookie) > 2 * SESSION_ID_BYTES:  # longer than any id handed out
            return None
        return cookie if connection.exists(self._session_key(cookie)) else None

    def close_session(self, connection: redis.Redis, session: str) -> None:
        connection.delete(self._session_key(session))

    def csrf_token(self, session: str) -> str:
        return self._sign(f"csrf {session}")

    def csrf_matches(self, session: str, candidate: object) -> bool:
        return isinstance(candidate, str) and hmac.compare_digest(utf8(candidate), utf8(self.csrf_token(session)))

    # --- wrong tries -------------------------------------------------------------------------

    async def failed(self, client: str) -> None:
        """Count a wrong try from `client`, log it, and return only after its delay."""
        now = time.monotonic()
        entry = self._failures.get(client)
        if entry is None or now - entry.last > FORGET_AFTER:
            if len(self._failures) >= MAX_CLIENTS:
                self._forget_old(now)
            entry = self._failures[client] = Failures(1, FIRST_DELAY, now)
        else:
            entry.count, entry.delay, entry.last = entry.count + 1, min(MAX_DELAY, entry.delay * 2), now
        logs.get().warning(
            "jobctl web: wrong token from %s (%d from there lately; answered after %.1fs)",
            client,
            entry.count,
            entry.delay,
        )
        await asyncio.sleep(entry.delay)

    def _forget_old(self, now: float) -> None:
        # the forgotten ones, or (a flood of clients all failing now) everyone: memory stays bounded
        for client in [c for c, e in self._failures.items() if now - e.last > FORGET_AFTER] or list(self._failures):
            del self._failures[client]
