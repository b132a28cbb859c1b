"""The job object: the methods @job adds to a job function (`add.enqueue(1, 2)`,
`add.options(queue="bulk").enqueue(...)`, their asyncio forms, enqueue_many), bound by bind(),
and the checks of their arguments. Each enqueue goes through producer.py on a Client's Redis
(client.py): the running job's, the default one, or the one .options(client=...) names.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, Self, TypeVar, cast

import redis

from ..config.queues import is_queue_name
from ..errors import JobNotFound, NotJSON, UnknownParent
from ..jobs import catalogue
from ..options import replicas
from ..options.durations import parse_duration
from ..options.strictjson import MAX_DEPTH
from ..store import keys
from ..store.wire import adrive_on
from . import producer
from .client import Client, current_client
from .handle import Handle

if TYPE_CHECKING:
    import redis.asyncio

P = ParamSpec("P")
R = TypeVar("R")


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
            stored = producer.store_all(client.connection, self._template_of(client), given)
        return [Handle(job_id, client, stored.queue) for job_id in stored.ids]

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
            dialogue = producer.store_many(transitions, self._template_of(client), given)
            if replicas.wanted().replicas:
                with producer.replicated("the jobs"):
                    stored = await transitions.acknowledged(dialogue)
            else:
                stored = await adrive_on(dialogue, connection)
        return [Handle(job_id, client, stored.queue) for job_id in stored.ids]

    # --- the one path -------------------------------------------------------------------------

    def _client(self) -> Client:
        return self._options.client or current_client()

    def _template_of(self, client: Client) -> producer.Template:
        """What every enqueue through this job object shares on `client`'s queue settings (its
        queue, the record's shared fields: producer.Template), built once and kept; again only for
        another client's settings or when the job was registered anew."""
        template, config, batch = self._template, client.config, producer.current_batch.get() or ""
        if (
            template is None
            or template.config is not config
            or template.spec is not catalogue.get(self.name)
            or template.batch != batch
            or template.layout is not client.layout
        ):
            options = self._options
            template = self._template = producer.Template(
                config,
                self.name,
                queue=options.queue,
                parents=options.depends_on,
                allow_failure=options.allow_failure,
                overrides=options.overrides,
                batch=batch,
                layout=client.layout,
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
        return Handle(job.id, client, job.queue)

    async def _aenqueue(self, args: tuple[Any, ...], kwargs: dict[str, Any], run_at: float | None) -> Handle[R]:
        client = self._client()
        if inline := inline_mode.get():
            return await inline.arun(self.name, args, kwargs, client)
        options = self._options
        with client.translated_errors(), self._named_faults(args, kwargs):
            request = self._template_of(client).request(
                args, kwargs, job_id=options.job_id, unique=options.unique, run_at=run_at
            )
            stored = await producer.astore(*client.async_pair(), request)
        return Handle(stored.id, client, stored.queue)

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
