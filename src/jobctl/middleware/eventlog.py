"""The worker's log line for each attempt's outcome: `job.retry` (INFO), `job.dead` and
`job.canceled` (WARNING), and `job.finished` only when asked for (DEBUG, `--verbose`: a line
per job costs a busy worker too much)."""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import logs
from .base import Attempt, Middleware


class EventLog(Middleware):
    instant = True  # a log line

    def __init__(self, log: logging.Logger):
        self.log = log

    def after_outcome(self, attempt: Attempt) -> None:
        job, verdict = attempt.job, attempt.verdict
        if verdict is None:
            if self.log.isEnabledFor(logging.DEBUG):
                logs.event(
                    self.log,
                    "job.finished",
                    "%s %s [%s] finished in %.3fs",
                    job.name,
                    job.id,
                    job.queue,
                    attempt.run_seconds,
                    job_id=job.id,
                    job=job.name,
                    queue=job.queue,
                    duration=round(attempt.run_seconds, 6),
                    outcome="finished",
                    level=logging.DEBUG,
                )
            return
        fields: dict[str, Any] = {
            "job_id": job.id,
            "job": job.name,
            "queue": job.queue,
            "duration": round(attempt.run_seconds, 6),
            "attempt": job.attempt,
            "error": attempt.error,
        }
        if verdict.retry_at is not None:
            retry_in = verdict.retry_at - time.time()
            logs.event(
                self.log,
                "job.retry",
                "%s %s [%s] failed (attempt %d of %d), retry in %.1fs: %s",
                job.name,
                job.id,
                job.queue,
                job.attempt,
                verdict.allowed,
                retry_in,
                attempt.error,
                outcome="retried",
                retry_in=round(retry_in, 3),
                **fields,
            )
        else:
            logs.event(
                self.log,
                f"job.{verdict.outcome}",
                "%s %s [%s] %s: %s",
                job.name,
                job.id,
                job.queue,
                verdict.outcome,
                attempt.error,
                level=logging.WARNING,
                outcome=verdict.outcome,
                **fields,
            )
