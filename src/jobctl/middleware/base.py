"""Middleware: code that runs around every job attempt in the worker, Dramatiq-style.

    from jobctl import Middleware, add_middleware

    class ReportErrors(Middleware):
        def after_attempt(self, job, result, exception, run_seconds):
            if exception is not None:
                sentry_sdk.capture_exception(exception)

    add_middleware(ReportErrors())      # in a module named by --jobs / JOBCTL_JOBS

The worker calls, in the thread that ran the job (for `async def` jobs too, so a slow
middleware never blocks the event loop): `before_attempt` just before the job's function,
then, once the outcome is stored, `after_attempt` (`exception` None on success) and, for a failed
attempt, `on_retry` (another attempt follows in `delay` seconds) or `on_dead` (no more attempts).
A job that an operator stopped while running reaches `after_attempt` with a JobStopped exception.
@job's hooks (on_success, on_failure, on_dead) and StatsD are middlewares too. What a middleware
raises is logged with the job id and changes nothing about the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..store.jobdata import parse_rq_time


@dataclass(frozen=True)
class JobInfo:
    """The job an attempt ran, as middlewares and hooks see it (read-only)."""

    id: str
    name: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int  # 1 for the first attempt
    created_at: bytes = field(default=b"", repr=False)  # as stored: parsed only when asked for

    @property
    def enqueued_at(self) -> float | None:
        """Unix time its producer enqueued it (not when a retry was queued)."""
        try:
            return parse_rq_time(self.created_at)
        except ValueError:
            return None


class Middleware:
    """Override the calls you need; each does nothing by default."""

    def before_attempt(self, job: JobInfo) -> None:
        pass

    def after_attempt(self, job: JobInfo, result: Any, exception: BaseException | None, run_seconds: float) -> None:
        pass

    def on_retry(self, job: JobInfo, exception: BaseException, delay: float) -> None:
        pass

    def on_dead(self, job: JobInfo, exception: BaseException) -> None:
        pass


class Middlewares:
    """The middlewares added to run around every job of a worker, in the order they were added.
    A process has one (`middlewares`, what add_middleware adds to); a test or a second app in
    the same process may give its workers another."""

    def __init__(self) -> None:
        self._added: list[Middleware] = []

    def add(self, middleware: Middleware) -> None:
        if not isinstance(middleware, Middleware):
            raise TypeError(f"add_middleware: expected a jobctl.Middleware, got {middleware!r}")
        self._added.append(middleware)

    def __iter__(self) -> Iterator[Middleware]:
        return iter(list(self._added))


middlewares = Middlewares()  # the process's: the job modules' add_middleware calls add to it


def add_middleware(middleware: Middleware) -> None:
    """Run `middleware` around every job of the workers that import the calling module."""
    middlewares.add(middleware)


_AFTER = ("after_attempt", "on_retry", "on_dead")


class Chain:
    """The worker's middlewares, each called in turn; their own errors are logged and go no further.
    `instant`: those that never wait (StatsD's one datagram), for `waits_after`."""

    def __init__(self, middlewares: list[Middleware], log: logging.Logger, instant: tuple[Middleware, ...] = ()):
        self.middlewares = middlewares
        self.log = log
        # the middlewares that run code of the user's after an attempt (a job's hooks: per job)
        self._after = [
            m
            for m in middlewares
            if m not in instant and any(getattr(type(m), call) is not getattr(Middleware, call) for call in _AFTER)
        ]

    def waits_after(self, job_name: str) -> bool:
        """Whether anything after an attempt of `job_name` may take time: the worker then starts
        the next job only once it has run (worker.py, _finish)."""
        return any(m.waits_after(job_name) if isinstance(m, AfterHooks) else True for m in self._after)

    def _each(self, call: str, job: JobInfo, *args: Any) -> None:
        for middleware in self.middlewares:
            try:
                getattr(middleware, call)(job, *args)
            except Exception:  # a middleware never changes a job's outcome
                self.log.exception(
                    "job %s (%s): %s.%s raised; the job's outcome stands",
                    job.id,
                    job.name,
                    type(middleware).__name__,
                    call,
                )

    def before_attempt(self, job: JobInfo) -> None:
        self._each("before_attempt", job)

    def after_attempt(self, job: JobInfo, result: Any, exception: BaseException | None, run_seconds: float) -> None:
        self._each("after_attempt", job, result, exception, run_seconds)

    def on_retry(self, job: JobInfo, exception: BaseException, delay: float) -> None:
        self._each("on_retry", job, exception, delay)

    def on_dead(self, job: JobInfo, exception: BaseException) -> None:
        self._each("on_dead", job, exception)


class AfterHooks(Middleware):
    """A middleware whose calls after an attempt run only for some job types (@job's hooks)."""

    def waits_after(self, job_name: str) -> bool:
        raise NotImplementedError
