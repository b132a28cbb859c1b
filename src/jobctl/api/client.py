"""Enqueue jobs from application code: the client that talks to Redis, on which the methods that
@job adds to a job function (jobfunction.py: `add.enqueue(1, 2)`, `add.options(...)`) enqueue.

Every enqueue goes through producer.py, the path `jobctl enqueue` takes: the same signature
check, the same record, the same script. The asyncio forms build the job the same way and call
the same script with redis-py's asyncio client (transitions.AsyncTransitions).

A process has one default client (connect(), or made from REDIS_URL and JOBCTL_CONFIG /
queue.yml on first use, as the CLI reads them); inside a running job, the worker's own client.
A client is safe across threads (redis-py's pool) and across fork: a child process opens its
own connections on first use, never its parent's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import redis

from ..config.queues import QueueConfig, QueuesConfig, is_queue_name, load_queues
from ..config.settings import DEFAULT_SOURCE, Settings
from ..errors import BlockingCall, ConfigError, JobNotFound, UnknownJob
from ..store import keys
from ..store.connection import async_connect, is_cluster, mask_url, resolve_url, unavailable
from ..store.connection import connect as connect_redis
from ..store.locate import remember_queues
from ..store.transitions import AsyncTransitions
from . import context
from .handle import Handle
from .records import resolve_job_id

if TYPE_CHECKING:
    import redis.asyncio

    # for its type only: Client.enqueue takes a job object, which enqueues on a Client
    from .jobfunction import JobFunction

P = ParamSpec("P")
R = TypeVar("R")

# Seconds a command may wait for Redis before the call raises RedisUnavailable (the connection
# itself gives up after 5 s): long enough for a loaded Redis, short enough that a request
# handler never hangs on one that is gone.
SOCKET_TIMEOUT = 10.0


class DefaultQueues(QueuesConfig):
    """Without a queue.yml: any well-named queue, with the documented defaults (QueueConfig)."""

    def get(self, name: str, where: str = "--queue") -> QueueConfig:
        if name in self.queues:
            return self.queues[name]
        if not isinstance(name, str) or not is_queue_name(name):
            raise ConfigError(f"{where}: queue name {str(name)[:60]!r}: expected letters, digits, '_', '-' or '.'")
        return QueueConfig(name)


class Client:
    """A connection to one Redis with the queue settings to enqueue by.

    `url`: a Redis URL (default: REDIS_URL, else the embedded Redis, as the CLI does). `config`:
    a queue.yml path or a loaded QueuesConfig (default: JOBCTL_CONFIG, else ./queue.yml if there
    is one, else any queue with the defaults). `socket_timeout`: seconds before a call that Redis
    does not answer raises RedisUnavailable. `connection`: an existing redis-py client to use
    instead of a URL (a worker's own)."""

    def __init__(
        self,
        url: str | None = None,
        config: str | os.PathLike[str] | QueuesConfig | None = None,
        *,
        socket_timeout: float = SOCKET_TIMEOUT,
        connection: redis.Redis | None = None,
    ):
        self._url, self._config, self.socket_timeout = url, config, socket_timeout
        self._given = connection
        self._connection = connection
        self._pid = os.getpid()
        # per event loop: an asyncio connection belongs to the loop it was made on
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncTransitions]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:

        return f"<jobctl.Client {mask_url(self._url) if self._url else 'default Redis'}>"

    @cached_property
    def settings(self) -> Settings:
        """This client's settings, built as the CLI builds its own (Settings.build): the url and
        config given, else REDIS_URL and JOBCTL_CONFIG, read from the environment on first use."""
        path = None if self._config is None or isinstance(self._config, QueuesConfig) else os.fspath(self._config)
        return Settings.build(os.environ, redis_url=self._url, config_path=path)

    @cached_property
    def url(self) -> str:
        return resolve_url(self.settings.redis_url)

    @cached_property
    def config(self) -> QueuesConfig:
        if isinstance(self._config, QueuesConfig):
            return self._config
        settings = self.settings
        if self._config or settings.source("config_path") != DEFAULT_SOURCE or Path(settings.config_path).exists():
            return load_queues(settings.config_path)
        return DefaultQueues("(no queue.yml: the defaults)")

    @cached_property
    def layout(self) -> keys.Layout:
        """How the keys of this client's Redis are named: a Redis Cluster's, or RQ's layout."""
        if self._given is not None:
            return keys.layout_of(self._given)
        return keys.CLUSTER if is_cluster(self.url, self.socket_timeout) else keys.PLAIN

    @property
    def connection(self) -> redis.Redis:
        """This process's redis-py client (one connection pool per process)."""
        self._check_fork()
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._connection = connect_redis(self.url, check=False, socket_timeout=self.socket_timeout)
                    if self.layout.cluster:  # where a job's keys name its queue, look on its config's too
                        remember_queues(self._connection, self.config.queues)
        return self._connection

    def async_connection(self) -> redis.asyncio.Redis:
        """This process's asyncio client for the running event loop."""
        return self.async_pair()[0]

    def async_pair(self) -> tuple[redis.asyncio.Redis, AsyncTransitions]:
        """This process's asyncio client for the running event loop, and its scripts."""

        self._check_fork()
        loop = asyncio.get_running_loop()
        with self._lock:  # event loops in several threads
            pair = self._async.get(loop)
            if pair is None:
                if self._given is not None and not self._url:
                    raise ConfigError(
                        "the asyncio forms need the Redis URL of a Client made from a connection: "
                        "Client(url, connection=...)"
                    )
                connection = async_connect(self.url, socket_timeout=self.socket_timeout)
                if self.layout.cluster:
                    remember_queues(connection, self.config.queues)
                pair = self._async[loop] = (connection, AsyncTransitions(connection))
        return pair

    def _check_fork(self) -> None:
        """In a child of a fork (gunicorn's, uwsgi's pre-forked workers), drop the parent's
        connections unused: the child opens its own."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._connection = None if self._given is None else self._given
                    self._async = weakref.WeakKeyDictionary()
                    self._pid = os.getpid()

    @property
    def given_connection(self) -> bool:
        """Whether this client uses a redis-py client it was given (a worker's own)."""
        return self._given is not None

    def trusts_pickle(self, origin: bytes | None) -> bool:
        return bool(origin) and cast("bytes", origin).decode(errors="replace") in self.config.pickle_queues

    @contextlib.contextmanager
    def translated_errors(self) -> Iterator[None]:
        """A Redis that does not answer (within the socket timeouts) as RedisUnavailable."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unavailable(exc, self.settings.redis_url or "the embedded Redis") from None

    @staticmethod
    def refuse_in_event_loop(call: str, async_form: str) -> None:
        """A blocking call from a thread that runs an event loop would stall every task of it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return

        instead = f"await .{async_form}(...)" if async_form else "await asyncio.to_thread(...) around it"
        raise BlockingCall(f"{call}() blocks, and this thread runs an event loop: use {instead} instead")

    # --- what every Job method has a client do -----------------------------------------------------

    def get(self, job_id_or_prefix: str) -> Handle[Any]:
        """A handle on any job (also one the CLI or RQ enqueued), by its id or a unique prefix
        of it (at least 6 characters). Raises JobNotFound."""
        self.refuse_in_event_loop("get", "")
        with self.translated_errors():
            try:
                return Handle(resolve_job_id(self.connection, job_id_or_prefix), self)
            except UnknownJob as exc:
                raise JobNotFound(str(exc)) from None

    async def aget(self, job_id_or_prefix: str) -> Handle[Any]:
        """get() for asyncio (the lookup runs in a thread: a prefix is found with SCAN)."""
        return await asyncio.to_thread(self.get, job_id_or_prefix)

    def enqueue(self, job: JobFunction[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """`job.enqueue(...)` on this client's Redis."""
        return job.options(client=self).enqueue(*args, **kwargs)

    async def aenqueue(self, job: JobFunction[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        return await job.options(client=self).aenqueue(*args, **kwargs)

    def close(self) -> None:
        """Close this process's blocking connections (those of an event loop: aclose())."""
        if self._connection is not None and self._given is None:
            self._connection.close()
            self._connection = None

    async def aclose(self) -> None:
        """Close the running event loop's connections (an ASGI app's shutdown)."""
        with self._lock:
            pair = self._async.pop(asyncio.get_running_loop(), None)
        if pair is not None:
            await pair[0].aclose()


_default: Client | None = None
_default_lock = threading.Lock()
_worker_client: Client | None = None  # in a worker process: the worker's (set by the worker)


def connect(url: str | None = None, config: str | os.PathLike[str] | QueuesConfig | None = None) -> Client:
    """Set (and return) this process's default client: `url` and `config` as Client takes them."""
    client = Client(url, config)
    set_default(client)
    return client


def set_default(client: Client | None) -> Client | None:
    """Make `client` the process's default client (None: one from the environment, made on
    first use); returns the one it replaces."""
    global _default
    with _default_lock:
        previous, _default = _default, client
    return previous


def current_client() -> Client:
    """The client an enqueue without one uses: inside a running job, the worker's; else the
    process's default (connect(), or one from the environment made on first use)."""
    execution = context.current()
    if execution is not None and execution.client is not None:
        return execution.client
    if _worker_client is not None:
        return _worker_client
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def use_worker_client(client: Client | None) -> None:
    """Make `client` the one every enqueue in this worker process uses, also from threads a job
    starts (which do not see the job's context); None: back to the default."""
    global _worker_client
    _worker_client = client


def get(job_id_or_prefix: str) -> Handle[Any]:
    """A handle on any job, from the default client (Client.get)."""
    return current_client().get(job_id_or_prefix)


async def aget(job_id_or_prefix: str) -> Handle[Any]:
    """get() for asyncio."""
    return await current_client().aget(job_id_or_prefix)
