"""A job as the worker took it: the row a fetch or outcome script returned (lua/lib.lua job_row),
decoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..middleware.base import Attempt, JobInfo
from ..store.jobdata import PayloadError, RqOptions, decode_payload
from ..store.transitions import Row


@dataclass
class FetchedJob:
    id: str
    queue: str
    attempt: int
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout: float
    max_retries: int | None
    unreadable: str | None = None  # why the payload could not be decoded
    created_at: bytes = b""  # RQ's time text, parsed only when a middleware asks (see info)
    rq: RqOptions = field(
        default_factory=RqOptions
    )  # RQ's per-job options (Retry, callbacks), for jobs RQ's API enqueued
    rq_record: bool = False  # RQ's Job wrote its record (its options came with it, maybe none)

    @cached_property
    def info(self) -> JobInfo:
        """The job as middlewares and hooks see it."""
        return JobInfo(
            self.id, self.name, self.queue, tuple(self.args), dict(self.kwargs), self.attempt, self.created_at
        )

    def ended(self, run_seconds: float, result: Any = None, exception: BaseException | None = None) -> Attempt:
        """This attempt's outcome, as jobctl's own middlewares see it."""
        return Attempt(self.info, self.max_retries, self.rq, result, exception, run_seconds)


def job_from_row(row: Row) -> FetchedJob:
    job_id, queue, attempt, data, timeout, max_retries, created_at, rq_options = row
    try:
        name, args, kwargs = decode_payload(data)
        unreadable = None
    except PayloadError as exc:
        name, args, kwargs, unreadable = "?", [], {}, str(exc)
    try:
        rq = RqOptions.from_row(rq_options)
    except (ValueError, TypeError) as exc:  # RQ's fields hand-edited or another tool's: not its options
        rq, unreadable = RqOptions(), unreadable or f"the job's RQ options cannot be read ({exc})"
    return FetchedJob(
        id=job_id.decode(),
        queue=queue.decode(),
        attempt=int(attempt),
        name=name,
        args=args,
        kwargs=kwargs,
        timeout=float(timeout),
        max_retries=int(max_retries) if max_retries else None,
        unreadable=unreadable,
        created_at=created_at,
        rq=rq,
        rq_record=isinstance(rq_options, list),
    )


def job_of(row: Row | None) -> FetchedJob | None:
    return job_from_row(row) if row else None
