"""The retry policy: what becomes of a failed attempt, decided here alone, before its outcome is
stored (lua/fail.lua carries the verdict out). Dramatiq's Retries middleware is the model.

- A job an operator stopped while running is canceled; a PermanentError (or a result JSON cannot
  store, or arguments that no longer fit the job) is dead at once.
- A job RQ's API enqueued with its own `Retry` is retried while that budget lasts, at RQ's
  intervals; every other job while its attempts are within its `max_retries` (@job's or the
  enqueue's, else its queue's), after the job's backoff where it has one, else the queue's. A
  callable backoff `(attempt, exception) -> seconds` is Sidekiq's `sidekiq_retry_in`.
- Queues served by RQ's own workers (`engine: rq`, runtime/rq_engine.py) get the same budget and
  the queue's backoff as RQ's Retry fields (`budget`, `rq_intervals`), which RQ's worker spends.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from ..errors import JobStopped, PermanentError, ResultError
from ..jobs import catalogue
from ..options.backoff import backoff_delay
from .base import Attempt, Middleware, Verdict

if TYPE_CHECKING:
    from ..config.queues import QueueConfig
    from ..store.jobdata import RqOptions


class Retries(Middleware):
    """Decides retry, dead or canceled for each failed attempt of the worker's `queues`."""

    def __init__(self, queues: dict[str, QueueConfig], log: logging.Logger):
        self.queues, self.log = queues, log

    def decide(self, attempt: Attempt) -> Verdict:
        exc, job = attempt.exception, attempt.job
        if isinstance(exc, JobStopped):
            return Verdict("canceled", reason="canceled while running")
        if isinstance(exc, (PermanentError, ResultError)):
            return Verdict("dead", reason=f"permanent error: {attempt.error}")
        failed = f"failed {job.attempt} time{'s' if job.attempt > 1 else ''}: {attempt.error}"
        queue = self.queues.get(job.queue)
        if attempt.rq.retries_left is not None:  # RQ's own Retry wins over the queue's retries
            delay = rq_retry_delay(attempt.rq)
            # the attempts it allows: the retries it had left at this attempt's start
            allowed = job.attempt + attempt.rq.retries_left
        else:
            max_retries = budget(attempt.max_retries, queue)
            allowed = max_retries + 1
            if queue is None or job.attempt > max_retries:
                delay = None
            else:
                assert exc is not None  # decide is asked about failed attempts only
                delay = retry_delay(job.name, queue, job.attempt, exc, self.log, job.id)
        if delay is None:
            return Verdict("dead", reason=failed, allowed=allowed)
        return Verdict("retry", retry_at=time.time() + delay, reason=failed, allowed=allowed)


def budget(own: int | None, queue: QueueConfig | None) -> int:
    """The retries a job may have: its own max_retries (@job, enqueue) where it has one, else its
    queue's (none on a queue the worker does not know)."""
    if own is not None:
        return own
    return queue.max_retries if queue is not None else 0


def rq_intervals(queue: QueueConfig, retries: int) -> list[float]:
    """The queue's backoff as RQ's Retry intervals, for `retries` retries."""
    return [queue.retry_delay_for(n) for n in range(1, retries + 1)]


def rq_retry_delay(rq: RqOptions) -> float | None:
    """Seconds until the next attempt under a job's own Retry, or None when its budget is used
    up. The interval is RQ's (Job.get_retry_interval): with fewer intervals than retries, the
    first ones repeat, e.g. Retry(max=3, interval=[1, 2]) waits 1, 1, then 2 s."""
    if not rq.retries_left or rq.retries_left <= 0:
        return None
    if not rq.retry_intervals:
        return 0.0
    return float(rq.retry_intervals[max(len(rq.retry_intervals) - rq.retries_left, 0)])


def retry_delay(
    job_name: str, queue: QueueConfig, attempt: int, exception: BaseException, log: logging.Logger, job_id: str
) -> float:
    """The delay before retrying `attempt` (1-based) of a job: the job's backoff where it has one,
    else the queue's. A callable backoff that raises or returns nonsense falls back to the queue's."""
    spec = catalogue.get(job_name) if catalogue.is_registered(job_name) else None
    backoff = spec.backoff if spec is not None and spec.backoff is not None else queue.backoff
    base = spec.retry_delay if spec is not None and spec.retry_delay is not None else queue.retry_delay
    if callable(backoff):
        try:
            delay = float(backoff(attempt, exception))
            if not math.isfinite(delay):  # inf would hold the job back for ever, NaN retry at once
                raise ValueError(f"the delay it returned is {delay}")
            return max(0.0, delay)
        except Exception:  # a user's callable must not lose the retry
            log.exception("job %s: its backoff callable failed; using the queue's backoff", job_id)
            backoff = queue.backoff
    return backoff_delay(backoff, base, attempt, queue.jitter)
