"""The data API: every number and record the front ends show, read from Redis in one place.

`status`, `show`, the demo (and any other front end) read through here and never talk to Redis
themselves. Counts come from list lengths and sorted-set sizes, never from scanning jobs, so a
refresh costs the same with a million jobs as with ten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from . import keys
from .config import QueuesConfig
from .errors import UnknownJob
from .jobdata import STATES, JobView, parse_rq_time

_COUNTED = {
    "queued": None,  # a list: LLEN
    "scheduled": keys.scheduled,
    "deferred": keys.deferred,
    "started": keys.started,
    "finished": keys.finished,
    "dead": keys.dead,
    "canceled": keys.canceled,
}


@dataclass
class QueueSummary:
    name: str
    priority: int
    weight: int | None
    counts: dict[str, int]
    workers: int = 0
    busy: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "priority": self.priority, "weight": self.weight, **self.counts,
                "workers": self.workers, "busy": self.busy}


@dataclass
class WorkerSummary:
    name: str
    host: str
    pid: int | None
    queues: list[str]
    state: str  # idle | busy | gone (its heartbeat lapsed; its jobs are being recovered)
    current_job: str | None = None
    done: int = 0
    failed: int = 0
    birth: float | None = None
    last_heartbeat: float | None = None
    supervisor: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Overview:
    queues: list[QueueSummary]
    workers: list[WorkerSummary]
    running: list[JobView] = field(default_factory=list)
    taken_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {
            "queues": [q.to_dict() for q in self.queues],
            "workers": [w.to_dict() for w in self.workers],
            "running": [j.to_dict() for j in self.running],
            "taken_at": self.taken_at,
        }


def queue_summaries(connection: redis.Redis, config: QueuesConfig) -> list[QueueSummary]:
    with connection.pipeline(transaction=False) as pipe:
        for name in config.queues:
            for state, registry in _COUNTED.items():
                if registry is None:
                    pipe.llen(keys.queue(name))
                else:
                    pipe.zcard(registry(name))
        replies = iter(pipe.execute())
    return [
        QueueSummary(q.name, q.priority, q.weight, {state: int(next(replies)) for state in STATES})
        for q in config.queues.values()
    ]


def workers(connection: redis.Redis) -> list[WorkerSummary]:
    worker_keys = sorted(k.decode() for k in connection.smembers(keys.WORKERS))
    with connection.pipeline(transaction=False) as pipe:
        for key in worker_keys:
            pipe.hgetall(key)
        rows = pipe.execute()
    summaries = []
    for key, raw in zip(worker_keys, rows):
        name = key.removeprefix(keys.worker(""))
        if not raw:
            summaries.append(WorkerSummary(name, name.rsplit(".", 1)[0], None, [], "gone"))
            continue
        text = {k.decode(): v.decode() for k, v in raw.items()}
        summaries.append(
            WorkerSummary(
                name=name,
                host=text.get("hostname", ""),
                pid=int(text["pid"]) if text.get("pid") else None,
                queues=[q for q in text.get("queues", "").split(",") if q],
                state="busy" if text.get("current_job") else "idle",
                current_job=text.get("current_job") or None,
                done=int(text.get("successful_job_count") or 0),
                failed=int(text.get("failed_job_count") or 0),
                birth=parse_rq_time(text.get("birth")),
                last_heartbeat=parse_rq_time(text.get("last_heartbeat")),
                supervisor=text.get("jobctl_supervisor", ""),
            )
        )
    return summaries


def jobs(connection: redis.Redis, job_ids: list[str]) -> list[JobView]:
    """The jobs that still exist, in the order asked."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        rows = pipe.execute()
    views = []
    for job_id, raw in zip(job_ids, rows):
        if raw and b"data" in raw:
            views.append(JobView.from_hash(job_id, raw))
    return views


def job(connection: redis.Redis, job_id: str) -> JobView:
    found = jobs(connection, [job_id])
    if not found:
        raise UnknownJob(f"no job with id {job_id!r} (finished jobs are kept for their queue's result_ttl)")
    view = found[0]
    view.depends_on = sorted(m.decode() for m in connection.smembers(keys.dependencies(job_id)))
    view.dependents = sorted(m.decode() for m in connection.smembers(keys.dependents(job_id)))
    return view


def overview(connection: redis.Redis, config: QueuesConfig) -> Overview:
    queues = queue_summaries(connection, config)
    all_workers = workers(connection)
    by_name = {q.name: q for q in queues}
    for worker in all_workers:
        for queue in worker.queues:
            if queue in by_name and worker.state != "gone":
                by_name[queue].workers += 1
                by_name[queue].busy += worker.state == "busy"
    running = jobs(connection, [w.current_job for w in all_workers if w.current_job])
    return Overview(queues, all_workers, running)


def dead_job_ids(connection: redis.Redis, queue: str) -> list[str]:
    return [m.decode() for m in connection.zrange(keys.dead(queue), 0, -1)]
