"""The shared tokens of what jobctl serves over HTTP: the dashboard's (JOBCTL_WEB_TOKEN) and the
Prometheus exporter's (JOBCTL_METRICS_TOKEN). Their minimum length, how an Authorization header
carries one, and their comparison in constant time.

Nothing of Starlette here: the exporter runs on the standard library's WSGI server.
"""

from __future__ import annotations

import hashlib
import hmac

from ..errors import UsageError

# The token is what stops guessing (wrong tries sent in parallel are not slowed: see auth.py), so a
# short one is refused at start. A generated token has 32 characters.
MIN_TOKEN_LENGTH = 16


def check_length(token: str, env: str, otherwise: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(
            f"${env} has {len(token)} characters: it needs at least {MIN_TOKEN_LENGTH} "
            f"(e.g. $(openssl rand -hex 16)), {otherwise}"
        )


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate in a form field is not a 500


def _digest(text: str) -> bytes:
    return hashlib.sha256(utf8(text)).digest()


class Token:
    def __init__(self, token: str):
        self._digest = _digest(token)

    def matches(self, candidate: str | None) -> bool:
        # digests of equal length: the time taken tells neither the token nor its length
        return candidate is not None and hmac.compare_digest(_digest(candidate), self._digest)


def bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value; None for another scheme."""
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
