"""JSON over HTTP for the jobs that call out (YouTube Data API, webhooks), with the retry split.

A job must tell the runner whether trying again can help: 429, 5xx, timeouts and refused
connections raise `TransientHTTPError` (an ordinary exception: the runner retries with
backoff); any other 4xx raises `PermanentError` carrying the server's own error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from .. import PermanentError

DEFAULT_TIMEOUT = 15.0


class TransientHTTPError(Exception):
    """The server is busy, failing or unreachable: a later attempt may succeed."""


def request_json(
    method: str,
    url: str,
    *,
    params: dict | None = None,
    body: object = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> object:
    """Send a request (a JSON body if given) and return the decoded JSON answer (None if empty)."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    shown = _without_query(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        reason = _error_message(exc)
        if exc.code == 429 or exc.code >= 500:
            raise TransientHTTPError(f"{method} {shown}: HTTP {exc.code} {reason}") from None
        raise PermanentError(f"{method} {shown}: HTTP {exc.code} {reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientHTTPError(f"{method} {shown}: {getattr(exc, 'reason', exc)}") from None
    return json.loads(payload) if payload.strip() else None


def _without_query(url: str) -> str:
    # Query strings carry API keys: never put them in an error message.
    return url.split("?", 1)[0]


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The message of a Google-style error body {"error": {"message": ...}}, else the reason."""
    try:
        body = json.loads(exc.read() or b"null")
        return str(body["error"]["message"])
    except (ValueError, TypeError, KeyError):
        return str(exc.reason)
