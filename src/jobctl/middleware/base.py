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

A middleware whose calls after an attempt never wait (no network round trip, no lock another
process holds: StatsD's one UDP datagram, a counter in memory) says so with `instant = True`:
the worker then sends a job's outcome and starts the next job in one round trip to Redis.
Otherwise the outcome is stored first, the middleware runs, and only then does the next job
start, so that its time never counts against the next job's timeout (two round trips a job).

jobctl's own policies are middlewares on the same chain (stack.py), with calls of their own
that see the whole attempt (`Attempt`): `decide` (retries.py: retry, dead or canceled, before
the outcome is stored), `before_outcome` (RQ's callbacks, as RQ calls them) and `after_outcome`
(the worker's log lines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..store.jobdata import RqOptions, parse_rq_time


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


@dataclass(frozen=True)
class Verdict:
    """What becomes of a failed attempt (the retry policy's decision): `outcome` 'retry' at
    `retry_at` (unix time), 'dead' (no attempt follows) or 'canceled' (an operator stopped it)."""

    outcome: Literal["retry", "dead", "canceled"]
    retry_at: float | None = None
    reason: str = ""  # as the dead set and `jobctl show` tell it
    allowed: int = 0  # the attempts the rule that decided allows (the retry's log line)


@dataclass
class Attempt:
    """One attempt of a job as jobctl's own middlewares see it: the job, what its retries depend
    on, and once it ended, its outcome."""

    job: JobInfo
    max_retries: int | None = None  # the job's own limit (@job, enqueue); None: its queue's
    rq: RqOptions = field(default_factory=RqOptions)  # RQ's per-job options (a Retry, callbacks)
    result: Any = None
    exception: BaseException | None = None  # None: the attempt succeeded
    run_seconds: float = 0.0
    verdict: Verdict | None = None  # of a failed attempt, once decided

    @property
    def error(self) -> str:
        """The exception as one line: its type and message."""
        return f"{type(self.exception).__name__}: {self.exception}" if self.exception is not None else ""


class Middleware:
    """Override the calls you need; each does nothing by default. `instant`: see the module's
    docstring."""

    instant = False

    def before_attempt(self, job: JobInfo) -> None:
        pass

    def after_attempt(self, job: JobInfo, result: Any, exception: BaseException | None, run_seconds: float) -> None:
        pass

    def on_retry(self, job: JobInfo, exception: BaseException, delay: float) -> None:
        pass

    def on_dead(self, job: JobInfo, exception: BaseException) -> None:
        pass

    # jobctl's own calls (see the module's docstring)

    def decide(self, attempt: Attempt) -> Verdict | None:
        """The verdict on a failed attempt, or None to leave it to the middlewares after this one."""
        return None

    def before_outcome(self, attempt: Attempt) -> None:
        """Just before the attempt's outcome is stored (a failed one's verdict decided)."""

    def after_outcome(self, attempt: Attempt) -> None:
        """Once the outcome is stored, after every middleware's after_attempt, on_retry or on_dead."""


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


_CALLS = ("before_attempt", "after_attempt", "on_retry", "on_dead", "decide", "before_outcome", "after_outcome")
_AFTER = ("after_attempt", "on_retry", "on_dead", "after_outcome")


def _overrides(middleware: Middleware, call: str) -> bool:
    return getattr(type(middleware), call) is not getattr(Middleware, call)


class Chain:
    """The worker's middlewares, each called in turn; their own errors are logged and go no further."""

    def __init__(self, middlewares: list[Middleware], log: logging.Logger):
        self.middlewares = middlewares
        self.log = log
        # per call, the middlewares that make it (a call nobody overrides costs nothing)
        self._makers = {call: [m for m in middlewares if _overrides(m, call)] for call in _CALLS}
        # the middlewares that may take time after an attempt (a job's hooks: per job)
        self._after = [m for m in middlewares if not m.instant and any(_overrides(m, call) for call in _AFTER)]

    def waits_after(self, job_name: str) -> bool:
        """Whether anything after an attempt of `job_name` may take time: the worker then starts
        the next job only once it has run (runtime/reservation.py)."""
        return any(m.waits_after(job_name) if isinstance(m, AfterHooks) else True for m in self._after)

    def _each(self, call: str, job: JobInfo, *args: Any) -> None:
        for middleware in self._makers[call]:
            try:
                getattr(middleware, call)(*args)
            except Exception:  # a middleware never changes a job's outcome
                self.log.exception(
                    "job %s (%s): %s.%s raised; the job's outcome stands",
                    job.id,
                    job.name,
                    type(middleware).__name__,
                    call,
                )

    def before_attempt(self, job: JobInfo) -> None:
        self._each("before_attempt", job, job)

    def decide(self, attempt: Attempt) -> Verdict:
        """The first verdict of a middleware on a failed attempt; without any (no retry policy on
        the chain), the job is dead."""
        for middleware in self._makers["decide"]:
            verdict = middleware.decide(attempt)
            if verdict is not None:
                return verdict
        return Verdict("dead", reason=attempt.error)

    def before_outcome(self, attempt: Attempt) -> None:
        self._each("before_outcome", attempt.job, attempt)

    def after_outcome(self, attempt: Attempt) -> None:
        """after_attempt, then on_retry or on_dead, then after_outcome, each on every middleware."""
        job, exc, verdict = attempt.job, attempt.exception, attempt.verdict
        self._each("after_attempt", job, job, attempt.result, exc, attempt.run_seconds)
        if exc is not None and verdict is not None and verdict.retry_at is not None:  # retried
            self._each("on_retry", job, job, exc, max(verdict.retry_at - time.time(), 0.0))
        elif exc is not None and verdict is not None and verdict.outcome == "dead":
            self._each("on_dead", job, job, exc)
        self._each("after_outcome", job, attempt)


class AfterHooks(Middleware):
    """A middleware whose calls after an attempt run only for some job types (@job's hooks)."""

    def waits_after(self, job_name: str) -> bool:
        raise NotImplementedError
