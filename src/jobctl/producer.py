"""Putting jobs on queues: the one path used by `jobctl enqueue`, the scheduler, `emit`,
the demo and the Python API."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import redis

from . import keys, registry
from .config import QueuesConfig
from .errors import UsageError
from .jobdata import new_job_fields, new_job_id
from .transitions import Transitions


class DuplicateJob(Exception):
    """The job (same --job-id, or same name and arguments with --unique) is already active."""

    def __init__(self, job_id: str, state: str):
        super().__init__(f"job {job_id} is already {state}")
        self.job_id, self.state = job_id, state


@dataclass(frozen=True)
class Enqueued:
    id: str
    job: str
    queue: str
    state: str
    args: list
    kwargs: dict
    run_at: float | None


def unique_claim(job_name: str, args: list, kwargs: dict) -> str:
    """The uniqueness key of a job without an explicit id: its name and its arguments."""
    canonical = json.dumps([job_name, args, kwargs], sort_keys=True, separators=(",", ":"))
    return keys.unique(hashlib.sha1(canonical.encode()).hexdigest())


def enqueue(
    connection: redis.Redis,
    config: QueuesConfig,
    job_name: str,
    args: list = (),
    kwargs: dict | None = None,
    *,
    queue: str | None = None,
    run_at: float | None = None,
    job_id: str | None = None,
    unique: bool = False,
    depends_on: list[str] = (),
    allow_failure: bool = False,
) -> Enqueued:
    """Store a registered job on a configured queue, now, at `run_at` or after its parents.

    Raises UnknownJob, ConfigError (queue not configured), UsageError (unknown parent) or
    DuplicateJob."""
    spec = registry.get(job_name)
    kwargs = dict(kwargs or {})
    args = list(args)
    try:
        json.dumps([args, kwargs])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"job arguments must be JSON: {exc}") from None
    queue_config = config.get(queue or spec.queue, where="--queue" if queue else f"job {job_name!r}")
    now = time.time()
    explicit_id = job_id
    job_id = job_id or new_job_id()
    fields = new_job_fields(
        job_name,
        args,
        kwargs,
        queue_config.name,
        now=now,
        timeout=spec.timeout or queue_config.timeout,
        result_ttl=queue_config.result_ttl,
        failure_ttl=queue_config.failure_ttl,
        max_retries=spec.max_retries if spec.max_retries is not None else queue_config.max_retries,
        crash_limit=queue_config.crash_limit,
        allow_failure=allow_failure,
    )
    claim = ""
    if unique:
        claim = keys.unique(explicit_id) if explicit_id else unique_claim(job_name, args, kwargs)
    outcome, ident, state = Transitions(connection).enqueue(
        job_id, queue_config.name, fields, now=now, run_at=run_at or 0, unique_claim=claim, parents=list(depends_on)
    )
    if outcome in ("exists", "duplicate"):
        raise DuplicateJob(ident, state)
    if outcome == "unknown_parent":
        raise UsageError(f"--depends-on: no job with id {ident!r}")
    return Enqueued(job_id, job_name, queue_config.name, state, args, kwargs, run_at)
