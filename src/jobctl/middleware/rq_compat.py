"""What code written for RQ expects of the worker that runs its jobs (tests/test_rq_compat.py).

A job RQ's own API enqueued with JSONSerializer may carry RQ's per-job options in its hash:
a `Retry` budget (`retries_left`, `retry_intervals`), callbacks (`success_callback_name`, ...)
and `meta`. jobctl's worker fetches those fields with the job (lua/lib.lua start_next,
store/jobdata.py RqOptions) and applies them the way RQ's worker does: the Retry in retries.py,
the callbacks here (RqCallbacks), with one difference: a callback runs only when its name is a
registered job or a function registered with `@jobctl.callback`, never an import of a path read
from Redis. Progress goes to meta["progress"] too (store/progress.py).

`rq.get_current_job()` works inside a job whenever rq is imported (by the job's module, or inside
the job's body): RQ's job stack answers with an `rq.job.Job` of the running job that reads its
hash from Redis only if the job uses it. Workers whose jobs never touch RQ neither import it nor
pay for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from ..errors import JobStopped
from ..jobs import catalogue
from ..store import keys
from .base import Attempt, Middleware

CALLBACK_ERROR_FIELD = "jobctl_callback_error"  # why a callback was refused or what it raised


# --- rq.get_current_job() --------------------------------------------------------------------


@dataclass
class _Running:
    """The job an execution runs, as rq.get_current_job() returns it."""

    job_id: str
    connection: redis.Redis
    rq_job: Any = None  # its rq.job.Job, made on the first call

    def current(self) -> Any:
        if keys.layout_of(self.connection).cluster:
            return None  # RQ's Job reads RQ's key names, which a Redis Cluster's layout does not have
        if self.rq_job is None:
            try:
                self.rq_job = lazy_job(self.job_id, self.connection)
            except ValueError:  # an id RQ's Job refuses: a recurring run stored as cron:<entry>:<due>
                return None
        return self.rq_job


# per execution: each async job's task and each pool thread has its own
_running: contextvars.ContextVar[_Running | None] = contextvars.ContextVar("jobctl_rq_job", default=None)


def with_current_job(func: Callable[..., Any], job_id: str, connection: redis.Redis) -> Callable[..., Any]:
    """`func`, wrapped so that rq.get_current_job() returns the job while it runs, whenever rq is
    imported: before the job runs, or inside its body (tests/test_rq_producers.py). Nothing of RQ is
    imported or read for jobs that do not use it. The wrapper, made for each job, copies nothing
    of `func`: functools.wraps cost more than the rest of that bookkeeping."""
    _watch_rq()
    if inspect.iscoroutinefunction(func):

        async def call_async(*args: Any, **kwargs: Any) -> Any:
            token = _running.set(_Running(job_id, connection))
            try:
                return await func(*args, **kwargs)
            finally:
                _running.reset(token)

        return call_async

    def call(*args: Any, **kwargs: Any) -> Any:
        token = _running.set(_Running(job_id, connection))
        try:
            return func(*args, **kwargs)
        finally:
            _running.reset(token)

    return call


_watching = False


def _watch_rq() -> None:
    """RQ's get_current_job() returns the top of RQ's job stack (rq.job._job_stack): make that stack
    fall back to the running execution's job, now if rq.job is imported, else when it is."""
    global _watching
    if _watching:
        return
    _watching = True
    if "rq.job" in sys.modules:
        _adopt(sys.modules["rq.job"])
    else:
        sys.meta_path.insert(0, _RqJobImport())


def _adopt(rq_job_module: Any) -> None:
    rq_job_module._job_stack.__class__ = _stack_class()


@functools.cache
def _stack_class() -> type:
    from rq.local import LocalStack

    class CurrentJobStack(LocalStack):
        @property
        def top(self) -> Any:
            pushed = super().top  # a job RQ's own Job.perform() runs in this process
            if pushed is not None:
                return pushed
            running = _running.get()
            return running.current() if running is not None else None

    return CurrentJobStack


class _RqJobImport(importlib.abc.MetaPathFinder):
    """Adopts RQ's job stack as soon as rq.job is imported (a job importing rq inside its body)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "rq.job":
            return None
        with contextlib.suppress(ValueError):  # another thread's import got here first
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _AdoptingLoader(spec.loader)
        return spec


class _AdoptingLoader(importlib.abc.Loader):
    """rq.job's own loader, which adopts the module's job stack once the module has run."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        _adopt(module)

    def __getattr__(self, name: str) -> Any:  # get_source and the like: the module's own loader's
        return getattr(self.loader, name)


def lazy_job(job_id: str, connection: redis.Redis) -> Any:
    """An rq.job.Job of `job_id` that reads its hash on first use."""
    from rq.serializers import JSONSerializer

    job = _lazy_job_class()(job_id, connection=connection, serializer=JSONSerializer)
    job._jobctl_unread = True
    return job


@functools.cache
def _lazy_job_class() -> type:
    from rq.job import Job

    class CurrentJob(Job):
        _jobctl_unread = False

        def __getattribute__(self, name: str) -> Any:
            if object.__getattribute__(self, "_jobctl_unread"):
                object.__setattr__(self, "_jobctl_unread", False)
                self.refresh()  # type: ignore[no-untyped-call]  # unannotated in rq
            return object.__getattribute__(self, name)

    return CurrentJob


# --- callbacks -------------------------------------------------------------------------------


class RqCallbacks(Middleware):
    """RQ's per-job callbacks, called as RQ's worker calls them, before the attempt's outcome is
    stored: on_success(job, connection, result); on every failed attempt on_failure(job,
    connection, type, value, traceback), or on_stopped(job, connection) for a job an operator
    stopped."""

    def __init__(self, connection: redis.Redis, log: logging.Logger):
        self.connection, self.log = connection, log

    def before_outcome(self, attempt: Attempt) -> None:
        job_id, rq, exc = attempt.job.id, attempt.rq, attempt.exception
        if exc is None:
            if rq.on_success:
                run_callback("on_success", rq.on_success, job_id, self.connection, (attempt.result,), self.log)
        elif isinstance(exc, JobStopped):
            if rq.on_stopped:
                run_callback("on_stopped", rq.on_stopped, job_id, self.connection, (), self.log)
        elif rq.on_failure:
            run_callback(
                "on_failure", rq.on_failure, job_id, self.connection, (type(exc), exc, exc.__traceback__), self.log
            )


def run_callback(
    kind: str, name: str, job_id: str, connection: redis.Redis, args: tuple[Any, ...], log: logging.Logger
) -> None:
    """Run the job's on_success/on_failure/on_stopped callback `name` with RQ's arguments (job,
    connection, *args). A callback that is not registered is refused, and one that raises is
    logged: either way the reason is recorded on the job, whose outcome it never changes."""
    func = catalogue.callback_function(name)
    if func is None:
        problem = (
            f"{kind} callback {name!r} refused: not a registered job nor a function registered "
            "with @jobctl.callback (a worker never imports a path read from Redis)"
        )
    else:
        try:
            func(lazy_job(job_id, connection), connection, *args)
            return
        except Exception as exc:  # noqa: BLE001 - a callback never changes the job's outcome
            problem = f"{kind} callback {name!r} raised {type(exc).__name__}: {exc}"
    log.warning("job %s: %s", job_id, problem)
    with contextlib.suppress(redis.RedisError):  # the log line has it
        connection.hset(keys.job(job_id), CALLBACK_ERROR_FIELD, problem)
