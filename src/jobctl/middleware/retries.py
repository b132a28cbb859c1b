"""How long a failed job waits before its next attempt: the queue's backoff, or the job's own
(`@job(backoff=..., retry_delay=...)`), which may be a callable `(attempt, exception) -> seconds`
(Sidekiq's `sidekiq_retry_in`)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..options.durations import parse_duration

if TYPE_CHECKING:
    from ..config.queues import QueueConfig

BACKOFFS = ("exponential", "linear", "fixed")
EXPECTED = "exponential, linear, fixed or a list of durations like [10s, 1m, 10m]"

Backoff = str | tuple[float, ...] | Callable[[int, BaseException], float]


def parse_backoff(value: Any) -> str | tuple[float, ...]:
    """A backoff name, or a list of durations (the last one repeats); raises ValueError."""
    if isinstance(value, str) and value in BACKOFFS:
        return value
    if isinstance(value, (list, tuple)) and value:
        return tuple(parse_duration(v) for v in value)
    raise ValueError(f"expected {EXPECTED}, got {value!r}")


def backoff_delay(backoff: str | tuple[float, ...], base: float, retry_number: int, jitter: bool = False) -> float:
    """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
    if isinstance(backoff, tuple):
        delay = backoff[min(retry_number, len(backoff)) - 1]
    elif backoff == "exponential":
        delay = base * 2 ** (retry_number - 1)
    elif backoff == "linear":
        delay = base * retry_number
    else:
        delay = base
    if jitter:
        # up to +25%, so that jobs that failed together do not retry in lockstep
        delay *= 1 + random.random() * 0.25
    return delay


def retry_delay(
    job_name: str, queue: QueueConfig, attempt: int, exception: BaseException, log: logging.Logger, job_id: str
) -> float:
    """The delay before retrying `attempt` (1-based) of a job: the job's backoff where it has one,
    else the queue's. A callable backoff that raises or returns nonsense falls back to the queue's."""
    from ..jobs import catalogue

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
