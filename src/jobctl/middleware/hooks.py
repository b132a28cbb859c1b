"""@job's hooks, `on_success(job, result)`, `on_failure(job, exception)` after each failed attempt
and `on_dead(job, exception)` once when no attempt is left, run as a middleware (middleware.py
says when, in which thread, and what becomes of their errors)."""

from __future__ import annotations

from typing import Any

from ..errors import JobStopped
from ..jobs import catalogue
from .base import AfterHooks, JobInfo


class JobHooks(AfterHooks):
    def waits_after(self, job_name: str) -> bool:
        spec = _spec(job_name)
        return spec is not None and bool(spec.on_success or spec.on_failure or spec.on_dead)

    def after_attempt(self, job: JobInfo, result: Any, exception: BaseException | None, run_seconds: float) -> None:
        spec = _spec(job.name)
        if spec is None:
            return
        if exception is None:
            if spec.on_success:
                spec.on_success(job, result)
        elif spec.on_failure and not isinstance(exception, JobStopped):  # stopped by an operator: not a failure
            spec.on_failure(job, exception)

    def on_dead(self, job: JobInfo, exception: BaseException) -> None:
        spec = _spec(job.name)
        if spec is not None and spec.on_dead:
            spec.on_dead(job, exception)


def _spec(name: str) -> catalogue.JobSpec | None:
    return catalogue.get(name) if catalogue.is_registered(name) else None
