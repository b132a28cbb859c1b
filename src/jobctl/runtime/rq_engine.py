"""Queues with `engine: rq`: served by RQ's own workers (rq.Worker or rq.SimpleWorker), started
and supervised by `jobctl work` like jobctl's workers.

This is how an existing RQ deployment moves under jobctl without touching its producers: the
jobs are RQ's (pickled unless the queue says `serializer: json`, functions named by import path)
and RQ runs them. jobctl adds what `rq worker` lacks: the queue's `max_retries` and backoff for
jobs that carry no `Retry` of their own, its `timeout` and `result_ttl` and `failure_ttl` as
defaults, restarts, and giving back the job of a worker killed mid-job at once instead of
RQ's ~90 s abandoned-job detection.

Retries delayed by a backoff land in RQ's ScheduledJobRegistry (`rq:scheduled:<queue>`), the
key jobctl's own delayed jobs use: the supervisor's promotion queues them when due, so RQ's
scheduler process is not needed.
"""

from __future__ import annotations

import json
import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import DefaultSerializer, JSONSerializer, Serializer

from .. import logs
from ..config.queues import QueueConfig
from ..errors import ConfigError
from ..middleware import retries
from ..store import keys
from ..store.connection import connect
from .leasekill import die_with_parent
from .worker import EXIT_RECYCLE, worker_name

SERIALIZERS: dict[str, Serializer] = {"pickle": DefaultSerializer, "json": JSONSerializer}
WORKER_CLASSES = {"Worker": Worker, "SimpleWorker": SimpleWorker}
# set on a job whose retries_left came from its queue's max_retries, not from its own Retry:
# `requeue-dead` (which zeroes jobctl_attempts) then gives it a fresh budget from the queue again
QUEUE_RETRIES = "jobctl_queue_retries"


def check_pool(queues: list[QueueConfig]) -> None:
    """One worker process serving several queues runs one engine, one serializer, one class."""
    for setting in ("engine", "serializer", "rq_worker_class"):
        values = {getattr(q, setting) for q in queues}
        if len(values) > 1 and (setting == "engine" or "rq" in {q.engine for q in queues}):
            listed = ", ".join(f"{q.name}={getattr(q, setting)}" for q in queues)
            raise ConfigError(
                f"--queue: the queues one worker pool serves must share their {setting} ({listed}); "
                "start one `jobctl work` per engine"
            )


if TYPE_CHECKING:  # the type checker sees the mixin as the RQ worker it is mixed into
    from rq.worker import BaseWorker as _RqWorker
else:
    _RqWorker = object


class _QueueSettings(_RqWorker):
    """What jobctl adds to RQ's worker classes (mixed in before them)."""

    jobctl_queues: dict[str, QueueConfig]
    jobctl_signal_mask: set[signal.Signals] | None = None  # restored once RQ's handlers are in place
    jobctl_stop_asked = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.jobctl_stop_asked = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # unannotated in rq

    def dequeue_job_and_maintain_ttl(self, *args: Any, **kwargs: Any) -> tuple[Job, Queue] | None:
        # Stop signals stayed blocked from the fork until now, when RQ's work loop has its own
        # handlers and catches the StopRequested a pending SIGTERM raises.
        if self.jobctl_signal_mask is not None:
            mask, self.jobctl_signal_mask = self.jobctl_signal_mask, None
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return super().dequeue_job_and_maintain_ttl(*args, **kwargs)

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._apply_queue_settings(job)
        super().execute_job(job, queue)

    def _apply_queue_settings(self, job: Job) -> None:
        """Count the attempt; give a job without a Retry of its own the queue's retry budget and
        intervals (RQ's Retry fields, so RQ's own failure handling retries it), and the queue's
        failure_ttl where the job has none."""
        settings = self.jobctl_queues.get(job.origin)
        connection = self.connection
        with connection.pipeline() as pipe:
            pipe.hincrby(job.key, "jobctl_attempts", 1)
            pipe.hmget(job.key, [QUEUE_RETRIES, "jobctl_max_retries"])
            attempt, (from_queue, own_limit) = pipe.execute()
        if settings is None:
            return
        fields: dict[str, Any] = {}
        if job.retries_left is None or (from_queue and attempt == 1):
            budget = retries.budget(int(own_limit) if own_limit else None, settings)
            if budget:
                job.retries_left = budget
                # RQ types the intervals as whole seconds; it waits fractional ones as well
                job.retry_intervals = retries.rq_intervals(settings, budget)  # type: ignore[assignment]
                fields.update(
                    retries_left=budget, retry_intervals=json.dumps(job.retry_intervals), **{QUEUE_RETRIES: 1}
                )
        if job.failure_ttl is None:
            job.failure_ttl = int(settings.failure_ttl)
            fields["failure_ttl"] = job.failure_ttl
        if fields:
            # redis-py 8 types the mapping's keys invariantly, refusing str keys (redis-py 5 does not)
            connection.hset(job.key, mapping=fields)  # type: ignore[arg-type, unused-ignore]

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()  # type: ignore[no-untyped-call]  # unannotated in rq
        # The work horse dies with its worker: when the supervisor finds the worker dead and gives
        # its job back, no orphaned horse may still be running it.
        assert self.pid is not None  # the worker's pid, from before the fork (None only for a worker read back)
        die_with_parent(self.pid)


class JobctlWorker(_QueueSettings, Worker):
    """rq.Worker: forks a work horse per job (RQ's production default)."""


class JobctlSimpleWorker(_QueueSettings, SimpleWorker):
    """rq.SimpleWorker: runs jobs in its own process (faster, but a crashing job takes it down)."""


_JOBCTL_CLASSES = {"Worker": JobctlWorker, "SimpleWorker": JobctlSimpleWorker}


def run(url: str, queues: list[QueueConfig], *, max_jobs: int, signal_mask: set[signal.Signals]) -> int:
    """The body of a supervised worker process: an RQ worker on `queues` until a stop signal or
    `max_jobs` jobs. `signal_mask` is restored once RQ handles the stop signals."""
    first = queues[0]
    queue_class = type("JobctlQueue", (Queue,), {"DEFAULT_TIMEOUT": int(max(q.timeout for q in queues))})
    worker = _JOBCTL_CLASSES[first.rq_worker_class](
        [q.name for q in queues],
        name=worker_name(),
        connection=connect(url, check=False),
        serializer=SERIALIZERS[first.serializer],
        queue_class=queue_class,
        default_result_ttl=int(max(q.result_ttl for q in queues)),
    )
    worker.jobctl_queues = {q.name: q for q in queues}
    worker.jobctl_signal_mask = signal_mask
    worker.work(max_jobs=max_jobs, logging_level="INFO")
    return 0 if worker.jobctl_stop_asked else EXIT_RECYCLE  # RQ's loop ends by itself only after max_jobs


def give_back(connection: redis.Redis, worker: str, queues: list[QueueConfig], how: str) -> str | None:
    """After an RQ worker died: its job goes where RQ sends an abandoned job (retried if it has
    retries left, else failed), now rather than after RQ's ~90 s, and the worker is unregistered.
    Returns the id of the job given back."""
    serializer = SERIALIZERS[queues[0].serializer]
    current = cast("bytes | None", connection.hget(keys.worker(worker), "current_job"))
    given_back = None
    if current:
        job_id = current.decode()
        job = (
            Job.fetch(job_id, connection=connection, serializer=serializer)
            if connection.exists(keys.job(job_id))
            else None
        )
        if job is not None and job.get_status() == JobStatus.STARTED and job.worker_name == worker:
            registry = StartedJobRegistry(job.origin, connection=connection, serializer=serializer)
            # its executions expire now: RQ's own cleanup then retries or fails exactly this job
            entries = [
                entry for entry, _ in connection.zscan_iter(registry.key) if entry.decode().startswith(f"{job_id}:")
            ]
            if entries:
                connection.zadd(registry.key, dict.fromkeys(entries, 0), xx=True)
                registry.cleanup(timestamp=0)
                if job.get_status() == JobStatus.FAILED:
                    connection.hset(job.key, "jobctl_reason", f"its worker {worker} died ({how})")
                given_back = job_id
                logs.event(
                    logs.get(),
                    "job.given_back",
                    "RQ worker %s died (%s); its job %s is %s",
                    worker,
                    how,
                    job_id,
                    job.get_status(),
                    level=logging.WARNING,
                    worker=worker,
                    job_id=job_id,
                    how=how,
                )
    found = Worker.find_by_key(keys.worker(worker), connection=connection, serializer=serializer)
    if found is not None:
        found.register_death()  # type: ignore[no-untyped-call]  # unannotated in rq
    return given_back
