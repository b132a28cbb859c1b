"""How long a failed job waits before its next attempt: the queue's backoff, or the job's own
(`@job(backoff=..., retry_delay=...)`), which may be a callable `(attempt, exception) -> seconds`
(Sidekiq's `sidekiq_retry_in`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..jobs import catalogue
from ..options.backoff import backoff_delay

if TYPE_CHECKING:
    from ..config.queues import QueueConfig


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
            return max(0.0, float(backoff(attempt, exception)))
        except Exception:  # a user's callable must not lose the retry
            log.exception("job %s: its backoff callable failed; using the queue's backoff", job_id)
            backoff = queue.backoff
    return backoff_delay(backoff, base, attempt, queue.jitter)
