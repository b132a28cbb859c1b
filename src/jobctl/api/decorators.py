"""@job: registers a function in the job catalogue (jobs/catalogue.py) and gives it the enqueue
methods of the Python API (jobfunction.JobFunction's, bound by jobfunction.bind)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from ..errors import ArgumentMismatch
from ..jobs import catalogue
from ..jobs.catalogue import JobSpec
from ..jobs.signatures import check
from ..options.durations import parse_duration
from .jobfunction import AsyncJob, Job, bind

P = ParamSpec("P")
R = TypeVar("R")


class JobDecorator(Protocol):
    """What @job(...) returns: it gives back the function itself, with its enqueue methods
    (jobfunction.bind), typed with the function's parameters and return type (jobfunction.Job)."""

    @overload  # an async def matches both: the first one wins, as intended
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncJob[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, func: Callable[P, R], /) -> Job[P, R]: ...


def job(
    name: str,
    *,
    queue: str = catalogue.DEFAULT_QUEUE,
    max_retries: int | None = None,
    timeout: float | str | None = None,
    backoff: str | list[Any] | Callable[[int, BaseException], float] | None = None,
    retry_delay: float | str | None = None,
    unique: bool | float | str = False,
    keep_dead: bool = True,
    rate_limit: str | None = None,
    max_concurrency: int | None = None,
    breaker: str | None = None,
    on_success: Callable[[Any, Any], Any] | None = None,
    on_failure: Callable[[Any, BaseException], Any] | None = None,
    on_dead: Callable[[Any, BaseException], Any] | None = None,
    cron: str | None = None,
    timezone: str = "UTC",
    catch_up: str = "latest",
) -> JobDecorator:
    """Register a function as a job that `jobctl enqueue NAME ...` can run, and that application
    code enqueues with `func.enqueue(...)` (jobfunction.JobFunction's methods, bound to it).

    `timeout` takes seconds or a duration such as "5m"; `max_retries`, `timeout`, `backoff` and
    `retry_delay` override the queue's settings for this job. The README's "Job options" table
    describes every option. A bad option raises ValueError naming the job and the option.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a job needs a non-empty string name")
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise ValueError(f"job {name!r}: max_retries must be a non-negative integer")
    seconds = parse_duration(timeout) if timeout is not None else None
    try:
        options = catalogue.job_options(
            backoff=backoff,
            retry_delay=retry_delay,
            unique=unique,
            keep_dead=keep_dead,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            breaker=breaker,
            on_success=on_success,
            on_failure=on_failure,
            on_dead=on_dead,
            cron=cron,
            timezone=timezone,
            catch_up=catch_up,
        )
    except ValueError as exc:
        raise ValueError(f"job {name!r}: {exc}") from None

    def register(func: Callable[..., Any]) -> Any:
        spec = JobSpec(name, func, queue, max_retries, seconds, func.__module__, **options)
        if spec.schedule is not None:
            try:
                check(spec, [], {})
            except ArgumentMismatch as exc:
                raise ValueError(f"{exc}; a job with cron= runs without arguments") from None
        catalogue.add(spec)
        bind(name, func)
        return func

    return cast("JobDecorator", register)
