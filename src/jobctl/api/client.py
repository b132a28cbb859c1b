"""Enqueue jobs from application code: the client that talks to Redis, and the methods that
@job adds to a job function (`add.enqueue(1, 2)`, `add.options(queue="bulk").enqueue(...)`).

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
import inspect
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, Self, TypeVar, cast

import redis

from ..config.queues import QueueConfig, QueuesConfig, is_queue_name, load_queues
from ..config.settings import DEFAULT_SOURCE, Settings
from ..errors import BlockingCall, ConfigError, JobNotFound, NotJSON, UnknownJob, UnknownParent
from ..jobs import catalogue
from ..options.durations import parse_duration
from ..options.strictjson import MAX_DEPTH
from ..store import keys
from ..store.connection import async_connect, mask_url, resolve_url, unavailable
from ..store.connection import connect as connect_redis
from ..store.transitions import AsyncTransitions, Transitions
from ..store.wire import adrive_on, drive_on
from . import context, producer
from .handle import Handle
from .records import resolve_job_id

if TYPE_CHECKING:
    import redis.asyncio

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

    @property
    def connection(self) -> redis.Redis:
        """This process's redis-py client (one connection pool per process)."""
        self._check_fork()
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._connection = connect_redis(self.url, check=False, socket_timeout=self.socket_timeout)
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


# --- the job object ---------------------------------------------------------------------------


class Call(NamedTuple):
    """One call's arguments, for enqueue_many: jobctl.call(*args, **kwargs)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def call(*args: Any, **kwargs: Any) -> Call:
    return Call(args, kwargs)


@dataclass(frozen=True)
class CallOptions:
    """What .options(...) binds (see JobFunction.options)."""

    queue: str | None = None
    job_id: str | None = None
    unique: bool | None = None
    depends_on: tuple[str, ...] = ()
    allow_failure: bool = False
    overrides: producer.Overrides = field(default_factory=producer.Overrides)
    client: Client | None = None


@dataclass(frozen=True)
class InlineRunner:
    """How jobctl.testing.inline() runs a job at once in the caller instead of enqueueing it."""

    run: Callable[[str, tuple[Any, ...], dict[str, Any], Client], Handle[Any]]
    arun: Callable[[str, tuple[Any, ...], dict[str, Any], Client], Awaitable[Handle[Any]]]


# set by jobctl.testing.inline(): while set, enqueue runs the job at once in the caller
inline_mode: ContextVar[InlineRunner | None] = ContextVar("jobctl_inline", default=None)


class JobFunction(Generic[P, R]):
    """What `@job` adds to a job function: its enqueue methods. R is what the function returns
    (for an `async def`, what it returns when awaited): what handle.result() gives back.

    `@job` returns the function itself, still a plain function (callable directly, importable
    by RQ), with these methods bound to it; `.options(...)` returns one of these objects."""

    def __init__(self, name: str, func: Callable[..., Any], options: CallOptions | None = None):
        self.name, self.func, self._options = name, func, options or CallOptions()
        self._template: producer.Template | None = None  # see template()

    def __repr__(self) -> str:
        return f"<jobctl job {self.name!r}>"

    def options(
        self,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        unique: bool | None = None,
        depends_on: str | Handle[Any] | Sequence[str | Handle[Any]] | None = None,
        allow_failure: bool | None = None,
        timeout: float | str | timedelta | None = None,
        max_retries: int | None = None,
        result_ttl: float | str | timedelta | None = None,
        client: Client | None = None,
    ) -> Self:
        """The same job with options for the enqueues made through it, apart from the job's own
        arguments (so none of them collides with one): `queue` (another configured queue),
        `job_id` (1-128 letters, digits, '_', '-', '.'), `unique` (refuse a copy while one is
        active), `depends_on` (job ids or handles: run after they finish), `allow_failure`
        (with depends_on: run even if one dies), `timeout`, `max_retries`, `result_ttl` (seconds,
        a timedelta or a duration like "5m"), `client` (another Redis than the default's)."""
        changes: dict[str, Any] = {}
        if queue is not None:
            if not isinstance(queue, str) or not is_queue_name(queue):
                raise ValueError(f"options(queue={queue!r}): expected letters, digits, '_', '-' or '.'")
            changes["queue"] = queue
        if job_id is not None:
            if not isinstance(job_id, str) or not keys.JOB_ID.fullmatch(job_id):
                raise ValueError(f"options(job_id={str(job_id)[:60]!r}): {producer.ID_EXPECTED}")
            if keys.RECURRING_JOB_ID.fullmatch(job_id):  # the scheduler would skip that run
                raise ValueError(f"options(job_id={job_id!r}): cron-<entry>-<due> ids are the scheduler's own")
            changes["job_id"] = job_id
        if unique is not None:
            changes["unique"] = _flag("unique", unique)
        if depends_on is not None:
            changes["depends_on"] = _job_ids(depends_on)
        if allow_failure is not None:
            changes["allow_failure"] = _flag("allow_failure", allow_failure)
        overrides: dict[str, Any] = {}
        if timeout is not None:
            overrides["timeout"] = _seconds("timeout", timeout, minimum=0.001)
        if max_retries is not None:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ValueError(f"options(max_retries={max_retries!r}): expected a whole number >= 0")
            overrides["max_retries"] = max_retries
        if result_ttl is not None:
            overrides["result_ttl"] = _seconds("result_ttl", result_ttl, minimum=0)
        if overrides:
            changes["overrides"] = replace(self._options.overrides, **overrides)
        if client is not None:
            changes["client"] = client
        return type(self)(self.name, self.func, replace(self._options, **changes))

    # --- enqueue ---------------------------------------------------------------------------------

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """Put the job on its queue; returns its handle. Raises TypeError (ArgumentMismatch,
        NotJSON) for arguments that do not fit, before anything is written."""
        return self._enqueue(args, kwargs, None)

    def enqueue_in(self, delay: float | timedelta | str, /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """Run the job after `delay`: seconds, a timedelta or a duration such as "5m"."""
        return self._enqueue(args, kwargs, time.time() + _seconds("enqueue_in delay", delay, minimum=0))

    def enqueue_at(self, when: datetime | float, /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """Run the job at `when`: an aware datetime or a unix time."""
        return self._enqueue(args, kwargs, _moment(when))

    def enqueue_many(self, calls: Iterable[Call | tuple[Any, ...]]) -> list[Handle[R]]:
        """Enqueue one job per call (a tuple of positional arguments, or jobctl.call(*args,
        **kwargs)), a batch of them per round trip; their handles, in order. A call that does not
        fit raises before its batch is written (the batches before it stay stored)."""
        client = self._client()
        client.refuse_in_event_loop("enqueue_many", "aenqueue_many")
        self._many_options()
        if inline_mode.get():
            return [self._enqueue(args, kwargs, None) for args, kwargs in _calls(calls)]
        given = _Calls(calls)
        with client.translated_errors(), self._named_faults(given=given):
            storing = producer.store_many(Transitions.of(client.connection), self._template_of(client), given)
            stored = drive_on(storing, client.connection)
        return [Handle(job_id, client) for job_id in stored.ids]

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """enqueue() for asyncio: the script call does not block the event loop."""
        return await self._aenqueue(args, kwargs, None)

    async def aenqueue_in(self, delay: float | timedelta | str, /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        return await self._aenqueue(args, kwargs, time.time() + _seconds("aenqueue_in delay", delay, minimum=0))

    async def aenqueue_at(self, when: datetime | float, /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        return await self._aenqueue(args, kwargs, _moment(when))

    async def aenqueue_many(self, calls: Iterable[Call | tuple[Any, ...]]) -> list[Handle[R]]:
        """enqueue_many() for asyncio."""
        client = self._client()
        self._many_options()
        if inline_mode.get():
            return [await self._aenqueue(args, kwargs, None) for args, kwargs in _calls(calls)]
        given = _Calls(calls)
        with client.translated_errors(), self._named_faults(given=given):
            connection, transitions = client.async_pair()
            stored = await adrive_on(producer.store_many(transitions, self._template_of(client), given), connection)
        return [Handle(job_id, client) for job_id in stored.ids]

    # --- the one path -------------------------------------------------------------------------

    def _client(self) -> Client:
        return self._options.client or current_client()

    def _template_of(self, client: Client) -> producer.Template:
        """What every enqueue through this job object shares on `client`'s queue settings (its
        queue, the record's shared fields: producer.Template), built once and kept; again only for
        another client's settings or when the job was registered anew."""
        template, config = self._template, client.config
        if template is None or template.config is not config or template.spec is not catalogue.get(self.name):
            options = self._options
            template = self._template = producer.Template(
                config,
                self.name,
                queue=options.queue,
                parents=options.depends_on,
                allow_failure=options.allow_failure,
                overrides=options.overrides,
            )
        return template

    def _enqueue(self, args: tuple[Any, ...], kwargs: dict[str, Any], run_at: float | None) -> Handle[R]:
        client = self._client()
        client.refuse_in_event_loop("enqueue", "aenqueue")
        if inline := inline_mode.get():
            return inline.run(self.name, args, kwargs, client)
        options = self._options
        try:  # not the context managers around the others: this is the hot path (bench/app_enqueue.py)
            request = self._template_of(client).request(
                args, kwargs, job_id=options.job_id, unique=options.unique, run_at=run_at
            )
            job = producer.store(client.connection, request)
        except (redis.ConnectionError, redis.TimeoutError, NotJSON, UnknownParent) as exc:
            with client.translated_errors(), self._named_faults(args, kwargs):
                raise exc from None
        return Handle(job.id, client)

    async def _aenqueue(self, args: tuple[Any, ...], kwargs: dict[str, Any], run_at: float | None) -> Handle[R]:
        client = self._client()
        if inline := inline_mode.get():
            return await inline.arun(self.name, args, kwargs, client)
        options = self._options
        with client.translated_errors(), self._named_faults(args, kwargs):
            request = self._template_of(client).request(
                args, kwargs, job_id=options.job_id, unique=options.unique, run_at=run_at
            )
            with producer.refused_out_of_memory("nothing was enqueued"):
                reply = await client.async_pair()[1].enqueue_call(request.call)
            stored = producer.settle(request, reply)
        return Handle(stored.id, client)

    def _many_options(self) -> None:
        options = self._options
        if options.job_id or options.unique or options.depends_on:
            raise ValueError(
                f"job {self.name!r}: enqueue_many takes no job_id, unique or depends_on option (each "
                "job would share it); enqueue those one by one"
            )

    @contextlib.contextmanager
    def _named_faults(
        self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, given: _Calls | None = None
    ) -> Iterator[None]:
        """The producer's refusals, said in the Python API's words."""
        try:
            yield
        except NotJSON as refused:
            where = ""
            if given is not None:  # the call that failed is the last one the producer took
                where, (args, kwargs) = f"calls[{given.taken - 1}]: ", given.last
            raise not_json(self.name, args, kwargs or {}, refused, where) from None
        except UnknownParent as exc:
            raise JobNotFound(f"depends_on: no job with id {exc.job_id!r}; nothing was enqueued") from None


class _Calls:
    """enqueue_many's calls as the producer takes them, remembering the last one taken."""

    def __init__(self, calls: Iterable[Call | tuple[Any, ...]]):
        self.calls, self.taken = calls, 0
        self.last: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    def __iter__(self) -> Iterator[producer.Call]:
        for args, kwargs in _calls(self.calls):
            self.taken, self.last = self.taken + 1, (args, kwargs)
            yield list(args), kwargs


def _calls(calls: Iterable[Call | tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    for item in calls:
        if isinstance(item, Call):
            yield item.args, item.kwargs
        elif isinstance(item, tuple):
            yield item, {}
        else:
            raise TypeError(f"enqueue_many: expected a tuple of arguments or jobctl.call(...), got {item!r}")


class Job(JobFunction[P, R]):
    """The enqueue methods of a plain job function, which returns R."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast("R", self.func(*args, **kwargs))


class AsyncJob(JobFunction[P, R]):
    """The enqueue methods of an `async def` job function, whose coroutine returns R."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return cast("Coroutine[Any, Any, R]", self.func(*args, **kwargs))


def bind(name: str, func: Callable[..., Any]) -> None:
    """Give `func` the enqueue methods of the job `name`, as attributes: the function stays a
    plain function (RQ, pickle and inspect see one), and a direct call runs it as before."""
    methods: JobFunction[..., Any] = (AsyncJob if inspect.iscoroutinefunction(func) else Job)(name, func)
    for method in _METHODS:
        setattr(func, method, getattr(methods, method))


_METHODS = (
    "options",
    "enqueue",
    "enqueue_in",
    "enqueue_at",
    "enqueue_many",
    "aenqueue",
    "aenqueue_in",
    "aenqueue_at",
    "aenqueue_many",
)


# --- argument checks ---------------------------------------------------------------------------


def not_json(job_name: str, args: Sequence[Any], kwargs: dict[str, Any], refused: NotJSON, where: str = "") -> NotJSON:
    """The producer's NotJSON in the Python API's words: the value's path in the call
    (`kwargs['when']`); the producer's own words where no single value is at fault (nested
    too deep: strictjson.py)."""
    problem = unencodable(args, kwargs)
    if problem is None:
        return refused
    return NotJSON(f"job {job_name!r}: {where}{problem}; nothing was enqueued")


def unencodable(args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    """Where the first value JSON cannot carry is, and what it is: "kwargs['when'] is a datetime"
    (None: each value is JSON data, or the values nest too deep to say: the producer's words).
    A walk down to strictjson.MAX_DEPTH only: a list that contains itself once kept it forever."""
    # a stack of (path, value, depth), the first value on top: paths come in the call's order
    pending: list[tuple[str, Any, int]] = [
        *((f"kwargs[{key!r}]", value, 1) for key, value in reversed(kwargs.items())),
        *((f"args[{i}]", value, 1) for i, value in reversed(list(enumerate(args)))),
    ]
    while pending:
        path, value, depth = pending.pop()
        if value is None or isinstance(value, (str, int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return f"{path} is {value!r}, which JSON cannot carry"
            continue
        if isinstance(value, (list, tuple, dict)) and depth > MAX_DEPTH:
            return None
        if isinstance(value, (list, tuple)):
            pending.extend((f"{path}[{i}]", item, depth + 1) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    return f"{path} has a key of type {type(key).__name__}, which JSON cannot carry"
            pending.extend((f"{path}[{key!r}]", item, depth + 1) for key, item in reversed(value.items()))
        else:
            return (
                f"{path} is a {type(value).__name__}, which JSON cannot carry "
                "(pass plain data: str, int, float, bool, None, lists and dicts)"
            )
    return None


def _flag(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"options({option}={value!r}): expected True or False")
    return value


def _seconds(what: str, value: float | str | timedelta, *, minimum: float) -> float:
    try:
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, str):
            seconds = parse_duration(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{what}: expected seconds, a timedelta or a duration like '5m', got {value!r}") from None
    if not math.isfinite(seconds) or seconds < minimum:
        raise ValueError(f"{what}: expected at least {minimum:g} seconds, got {value!r}")
    return seconds


def _moment(when: datetime | float) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(
                f"enqueue_at({when.isoformat()}): a datetime without a time zone is ambiguous; "
                "give an aware one (datetime.now(timezone.utc) + ...)"
            )
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
        return float(when)
    raise ValueError(f"enqueue_at: expected an aware datetime or a unix time, got {when!r}")


def _job_ids(depends_on: str | Handle[Any] | Sequence[str | Handle[Any]]) -> tuple[str, ...]:
    items = [depends_on] if isinstance(depends_on, (str, Handle)) else list(depends_on)
    ids = []
    for item in items:
        ident = item.id if isinstance(item, Handle) else item
        if not isinstance(ident, str) or not keys.is_job_id(ident):
            raise ValueError(f"options(depends_on=...): {str(ident)[:60]!r}: {producer.ID_EXPECTED}")
        ids.append(ident)
    return tuple(ids)
