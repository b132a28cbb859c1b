"""`jobctl show` and the dashboard's job page: one job, its attempts and its dependency graph."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config.queues import QueuesConfig
from ..store import joboutput, keys
from ..store.connection import read_replies
from ..store.jobdata import JobView
from ..store.joboutput import AttemptOutput
from ..store.locate import locate
from .records import job, jobs, text_of

if TYPE_CHECKING:
    import redis

GRAPH_LIMIT = 200  # dependents shown by `show`: a fan-out of thousands is summarized, not listed


@dataclass
class Relative:
    """A parent or child of a job in its dependency graph."""

    id: str
    job: str | None  # None: the record expired (a parent that finished long ago)
    state: str | None
    reason: str | None = None
    canceled_by: str | None = None  # the parent whose end canceled it
    children: list[Relative] = field(default_factory=list)

    @property
    def canceled_by_parent(self) -> bool:
        """Canceled because a parent died (or was canceled): the failure cascade."""
        return self.state == "canceled" and self.canceled_by is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "state": self.state,
            "reason": self.reason,
            "canceled_by_parent": self.canceled_by_parent,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class JobDetail:
    job: JobView
    parents: list[Relative]
    children: list[Relative]  # each with its own children: the whole cascade below this job
    more_children: int = 0  # descendants not listed beyond GRAPH_LIMIT
    attempts: list[AttemptOutput] = field(default_factory=list)  # what each attempt printed, its times and traceback

    @property
    def waited_seconds(self) -> float | None:
        if self.job.started_at and self.job.enqueued_at:
            return max(0.0, self.job.started_at - self.job.enqueued_at)
        return None

    @property
    def ran_seconds(self) -> float | None:
        if self.job.started_at and self.job.ended_at:
            return max(0.0, self.job.ended_at - self.job.started_at)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.job.to_dict(),
            "waited_seconds": self.waited_seconds,
            "ran_seconds": self.ran_seconds,
            "parents": [p.to_dict() for p in self.parents],
            "children": [c.to_dict() for c in self.children],
            "more_children": self.more_children,
            **attempt_timings(self.job, self.attempts),
            "attempt_outputs": [a.to_dict() for a in self.attempts],
        }


def attempt_timings(job: JobView, attempts: list[AttemptOutput]) -> dict[str, Any]:
    """Timings across retries: first enqueued, total time waited in queues (before each
    attempt, from the attempts' start and end times), and from first enqueued to the end. The
    total wait is None when an attempt's times are missing (expired, or from before capture)."""
    waited: float | None = 0.0
    ready = job.created_at
    by_number = {a.attempt: a for a in attempts}
    for number in range(1, job.attempts + 1):
        attempt = by_number.get(number)
        started = job.started_at if number == job.attempts else attempt.started if attempt else None
        if waited is None or ready is None or started is None:
            waited = None
            break
        waited += max(0.0, started - ready)
        ready = attempt.ended if attempt else None
    if not job.attempts:
        waited = None
    end = job.ended_at if job.state in ("finished", "dead", "canceled") else None
    return {
        "first_enqueued_at": job.created_at,
        "total_waited_seconds": waited,
        "total_seconds": max(0.0, end - job.created_at) if end and job.created_at else None,
    }


def _relatives(connection: redis.Redis, ids: list[str]) -> list[Relative]:
    found = {view.id: view for view in jobs(connection, ids)}  # names and states only: no payload needed
    return [
        Relative(i, found[i].job, found[i].state, found[i].reason, found[i].canceled_by)
        if i in found
        else Relative(i, None, None)
        for i in ids
    ]


def job_detail(
    connection: redis.Redis, job_id: str, pickle_queues: Collection[str] = (), config: QueuesConfig | None = None
) -> JobDetail:
    """A job with its parents and every job below it, level by level (one round trip a level).
    `config`: for the max retries of a job whose record does not carry them (RQ's API enqueued it
    without a Retry), its queue's, as the worker applies them."""
    view = job(connection, job_id, pickle_queues)
    home = locate(connection, [job_id]).get(job_id, "")  # its keys' queue on a cluster (parents and children share it)
    layout = keys.layout_of(connection)
    if view.max_retries is None and config is not None and view.queue in config.queues:
        view.max_retries = config.queues[view.queue].max_retries
    detail = JobDetail(
        view,
        _relatives(connection, view.depends_on),
        _relatives(connection, view.dependents),
        attempts=joboutput.read(connection, view.id, list(range(1, view.attempts + 1)), home),
    )
    level, listed = detail.children, {job_id, *view.dependents}
    while level:
        with connection.pipeline(transaction=False) as pipe:
            for node in level:
                pipe.smembers(layout.dependents(node.id, home))
            below = [sorted(map(text_of, members)) for members in read_replies(pipe)]
        next_level = []
        for node, child_ids in zip(level, below):
            fresh = [c for c in child_ids if c not in listed]
            room = max(0, GRAPH_LIMIT - len(listed))
            detail.more_children += len(fresh) - min(room, len(fresh))
            listed.update(fresh[:room])
            node.children = _relatives(connection, fresh[:room])
            next_level += node.children
        level = next_level
    return detail
