"""What code written for RQ expects of the worker that runs its jobs (issue 14).

A job RQ's own API enqueued with JSONSerializer may carry RQ's per-job options in its hash:
a `Retry` budget (`retries_left`, `retry_intervals`), callbacks (`success_callback_name`, ...)
and `meta`. jobctl's worker fetches those fields with the job (lua/lib.lua start_next) and
applies them here, the way RQ's worker does, with one difference: a callback runs only when its
name is a registered job or a function registered with `@jobctl.callback`, never an import of a
path read from Redis.

`rq.get_current_job()` works inside a job when the worker's process has imported rq (a job
module that uses RQ's API did): RQ's job stack then holds, around the call, an `rq.job.Job` that
reads its hash from Redis only if the job uses it. Workers whose jobs never touch RQ neither
import it nor pay for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from . import keys, registry

CALLBACK_ERROR_FIELD = "jobctl_callback_error"  # why a callback was refused or what it raised


@dataclass(frozen=True)
class RqOptions:
    """RQ's per-job options, as start_next returns them."""

    retries_left: int | None = None  # None: no Retry of its own (the queue's retries apply)
    retry_intervals: list[int] | None = None
    on_success: str = ""
    on_failure: str = ""
    on_stopped: str = ""

    @classmethod
    def from_row(cls, fields: list[bytes] | bytes) -> RqOptions:
        """From start_next's row: its RQ options, or b'' for a job RQ's Job never wrote."""
        if not isinstance(fields, list):
            return cls()
        retries_left, intervals, on_success, on_failure, on_stopped = (f.decode() for f in fields)
        try:
            parsed = json.loads(intervals) if intervals else None
        except ValueError:
            parsed = None
        return cls(
            int(retries_left) if retries_left else None,
            [int(i) for i in parsed] if isinstance(parsed, list) and parsed else None,
            on_success,
            on_failure,
            on_stopped,
        )

    def retry_delay(self) -> float | None:
        """Seconds until the next attempt under the job's own Retry, or None when its budget is
        used up. The interval is RQ's (Job.get_retry_interval): with fewer intervals than
        retries, the first ones repeat, e.g. Retry(max=3, interval=[1, 2]) waits 1, 1, then 2 s."""
        if not self.retries_left or self.retries_left <= 0:
            return None
        if not self.retry_intervals:
            return 0.0
        return float(self.retry_intervals[max(len(self.retry_intervals) - self.retries_left, 0)])


# --- rq.get_current_job() --------------------------------------------------------------------

_frame: contextvars.ContextVar[object | None] = contextvars.ContextVar("jobctl_rq_frame", default=None)
_routed = False


def with_current_job(func: Callable[..., Any], job_id: str, connection: redis.Redis) -> Callable[..., Any]:
    """`func`, wrapped so that rq.get_current_job() returns the job while it runs, when this process
    has imported rq; `func` itself otherwise (nothing to pay for jobs that do not use RQ)."""
    if "rq.job" not in sys.modules:
        return func
    from rq.job import _job_stack

    _route(_job_stack)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            with _on_stack(_job_stack, job_id, connection):
                return await func(*args, **kwargs)

        return call_async

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _on_stack(_job_stack, job_id, connection):
            return func(*args, **kwargs)

    return call


@contextlib.contextmanager
def _on_stack(stack: Any, job_id: str, connection: redis.Redis) -> Iterator[None]:
    """The job on top of RQ's job stack, in a frame of this execution's own."""
    token = _frame.set(object())
    stack.push(lazy_job(job_id, connection))
    try:
        yield
    finally:
        stack.pop()
        _frame.reset(token)


def _route(stack: Any) -> None:
    """RQ's job stack is per thread; jobctl runs several async jobs on one event-loop thread, so the
    stack is made per execution (a context variable each job's task or thread has its own of)."""
    global _routed
    if _routed:
        return
    per_thread = stack.__ident_func__
    stack.__ident_func__ = lambda: _frame.get() or per_thread()
    _routed = True


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


def run_callback(
    kind: str, name: str, job_id: str, connection: redis.Redis, args: tuple[Any, ...], log: logging.Logger
) -> None:
    """Run the job's on_success/on_failure/on_stopped callback `name` with RQ's arguments (job,
    connection, *args). A callback that is not registered is refused, and one that raises is
    logged: either way the reason is recorded on the job, whose outcome it never changes."""
    func = registry.callback_function(name)
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


def meta_with_progress(raw_meta: bytes | None, percent: float) -> str | None:
    """The job's meta with meta["progress"] set, where RQ's readers look for it; None when meta is
    not a JSON object (jobctl and RQ's JSONSerializer store JSON)."""
    try:
        meta = json.loads(raw_meta) if raw_meta else {}
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    meta["progress"] = percent
    return json.dumps(meta)
