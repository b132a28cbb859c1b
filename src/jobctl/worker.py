"""A worker process: fetches jobs from its queues and runs them in-process, one at a time.

The worker is long-lived (no fork per job) and recycled by its supervisor after `max_jobs`
jobs. Each job id moves atomically from the queue into the worker's own in-flight list and
stays there until its outcome is written, so a worker that dies at any moment leaves behind
exactly the job it held, for the supervisor (or, if the whole host is gone, any other
supervisor once this worker's heartbeat lapses) to give back.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from dataclasses import dataclass

import redis

from . import keys, logs, registry
from .config import QueueConfig
from .context import Execution, executing
from .errors import PermanentError
from .jobdata import decode_payload, encode_result, rq_time
from .transitions import Transitions

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 20  # seconds without a heartbeat after which a worker counts as gone
FETCH_BLOCK_SECONDS = 1  # how long an idle worker blocks before re-checking for a stop request


class _StopWaiting(BaseException):
    """Raised by the stop signal in a worker blocked waiting for a job, so it stops at once."""


class JobTimeout(BaseException):
    """Raised inside a job that ran past its timeout. A BaseException, so that a job's own
    `except Exception` does not swallow it."""


@dataclass
class FetchedJob:
    id: str
    queue: str
    attempt: int
    name: str
    args: list
    kwargs: dict
    timeout: float
    max_retries: int | None


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


class Worker:
    def __init__(
        self, connection: redis.Redis, queues: list[QueueConfig], *, supervisor: str = "", max_jobs: int = 1000,
        max_memory: int | None = None,
    ):
        self.connection = connection
        self.transitions = Transitions(connection)
        self.queues = {q.name: q for q in queues}
        self.name = worker_name()
        self.supervisor = supervisor
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.stopping = False
        self.waiting = False  # blocked in BLMOVE: a stop signal may interrupt it
        self.current_job: str | None = None
        self.log = logs.get()
        self._redis_down_since: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def handle_stop_signals(self) -> None:
        """SIGTERM/SIGINT: finish the running job, take no new one."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)

    def run(self) -> int:
        self.handle_stop_signals()
        self._with_redis(self._register)
        heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        heartbeat.start()
        done = 0
        job = None
        try:
            while not self.stopping and done < self.max_jobs:
                if job is None:
                    job = self._with_redis(self._fetch)
                if job is not None:
                    done += 1
                    # the outcome and the start of the next job share one round trip
                    job = self._execute(job, fetch_next=done < self.max_jobs)
                    if job is None and self._over_memory():
                        self.log.info("worker %s: recycling, RSS %d MB is over max_memory", self.name, rss_bytes() >> 20)
                        break
        except _StopWaiting:
            # The reply of the interrupted BLMOVE was never read: drop that connection. If it
            # did move a job into the in-flight list, the recovery below puts it back.
            self.connection.connection_pool.disconnect()
        # Leave cleanly: give back anything in flight (a job started but not run because a stop
        # was asked meanwhile goes back to the front of its queue) and unregister.
        self._with_redis(lambda: self.transitions.recover(self.name, time.time(), cause="shutdown", crash_limit=1, how="stopped"))
        return 0

    def _over_memory(self) -> bool:
        return bool(self.max_memory) and rss_bytes() > self.max_memory

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True
        if self.waiting:
            raise _StopWaiting()

    def _register(self) -> None:
        now = time.time()
        key = keys.worker(self.name)
        with self.connection.pipeline() as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "birth": rq_time(now),
                    "last_heartbeat": rq_time(now),
                    "queues": ",".join(self.queues),
                    "pid": os.getpid(),
                    "hostname": socket.gethostname(),
                    "state": "idle",
                    "current_job": "",
                    "successful_job_count": 0,
                    "failed_job_count": 0,
                    "total_working_time": 0,
                    "python_version": sys.version.split()[0],
                    "jobctl_supervisor": self.supervisor,
                },
            )
            pipe.expire(key, HEARTBEAT_TTL)
            pipe.sadd(keys.WORKERS, key)
            for queue in self.queues:
                pipe.sadd(keys.workers_of_queue(queue), key)
                pipe.sadd(keys.QUEUES, keys.queue(queue))  # so RQ's tools list it while empty
            pipe.sadd(keys.ACTIVE_WORKERS, self.name)
            pipe.execute()

    def _heartbeat_loop(self) -> None:
        usage = ResourceUsage()
        while True:
            time.sleep(HEARTBEAT_INTERVAL)
            now = rq_time(time.time())
            cpu_percent, rss_bytes = usage.sample()
            try:
                with self.connection.pipeline() as pipe:
                    pipe.hset(
                        keys.worker(self.name),
                        mapping={"last_heartbeat": now, "jobctl_cpu_percent": cpu_percent, "jobctl_rss_bytes": rss_bytes},
                    )
                    pipe.expire(keys.worker(self.name), HEARTBEAT_TTL)
                    if self.current_job:
                        pipe.hset(keys.job(self.current_job), "last_heartbeat", now)
                    pipe.execute()
            except redis.RedisError:
                pass  # the main loop reports outages; heartbeats resume with the connection

    def _with_redis(self, action):
        """Run a Redis action, waiting out an outage: one line when it drops, one when it is back.

        Outcomes of finished jobs are written this way too, so a job that ended while Redis was
        away has its result stored once Redis returns."""
        delay = 0.1
        while True:
            try:
                result = action()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                if not is_outage(exc):
                    raise
                self._on_redis_trouble(exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._redis_down_since is not None:
                down_for = time.monotonic() - self._redis_down_since
                logs.event(self.log, "redis.back", "worker %s: Redis connection back after %.1fs", self.name, down_for,
                           level=logging.WARNING, worker=self.name, down_seconds=round(down_for, 3))
                self._redis_down_since = None
                self._with_redis(self._register)
            return result

    def _on_redis_trouble(self, exc: Exception) -> None:
        if self._redis_down_since is None:
            self._redis_down_since = time.monotonic()
            logs.event(self.log, "redis.lost", "worker %s: Redis connection lost (%s); retrying",
                       self.name, type(exc).__name__, level=logging.WARNING, worker=self.name)

    # --- fetching ----------------------------------------------------------------------------

    def fetch_order(self) -> list[str]:
        """Strict priority order, or Sidekiq-style weighted random order when weights are set."""
        queues = list(self.queues.values())
        if len(queues) == 1 or not any(q.weight for q in queues):
            return [q.name for q in queues]
        # each queue's chance of being tried first is proportional to its weight
        pool = [q.name for q in queues for _ in range(q.weight or 1)]
        random.shuffle(pool)
        return list(dict.fromkeys(pool))

    def _fetch(self) -> FetchedJob | None:
        order = self.fetch_order()
        row = self.transitions.fetch(self.name, order, time.time())
        if row is None:
            # Nothing waiting: block on the first queue not paused, so a new job starts at once.
            paused = {q.decode() for q in self.connection.smembers(keys.PAUSED)}
            serving = [q for q in order if q not in paused]
            self.waiting = True
            try:
                if self.stopping:
                    return None
                if not serving:
                    time.sleep(FETCH_BLOCK_SECONDS)
                    return None
                moved = self.connection.blmove(
                    keys.queue(serving[0]), keys.active(self.name), FETCH_BLOCK_SECONDS, "LEFT", "RIGHT"
                )
            finally:
                self.waiting = False
            if moved is None:
                return None
            row = self.transitions.fetch(self.name, order, time.time(), moved_id=moved.decode())
        return self._fetched(row)

    @staticmethod
    def _fetched(row: list | None) -> FetchedJob | None:
        if row is None:
            return None
        job_id, queue, attempt, data, timeout, max_retries = row
        name, args, kwargs = decode_payload(data)
        return FetchedJob(
            id=job_id.decode(),
            queue=queue.decode(),
            attempt=int(attempt),
            name=name,
            args=args,
            kwargs=kwargs,
            timeout=float(timeout),
            max_retries=int(max_retries) if max_retries else None,
        )

    # --- running -----------------------------------------------------------------------------

    def _execute(self, job: FetchedJob, fetch_next: bool) -> FetchedJob | None:
        """Run the job, record its outcome and (with `fetch_next`, unless a stop was asked) start
        the next job in the same round trip; returns that next job."""
        self.current_job = job.id
        started = time.perf_counter()
        try:
            spec = registry.resolve(job.name) if registry.is_registered(job.name) else None
            if spec is None:
                raise PermanentError(f"job {job.name!r} is not registered in this worker (check --jobs / JOBCTL_JOBS)")
            with executing(Execution(job.id, job.name, self._progress_reporter(job.id))), _time_limit(job.timeout):
                result = spec.func(*job.args, **job.kwargs)
        except PermanentError as exc:
            return self._record_failure(job, started, exc, permanent=True, fetch_next=fetch_next)
        except JobTimeout:
            timeout = JobTimeout(f"timed out after {job.timeout:g}s")
            return self._record_failure(job, started, timeout, permanent=False, fetch_next=fetch_next)
        except (Exception, SystemExit) as exc:
            return self._record_failure(job, started, exc, permanent=False, fetch_next=fetch_next)
        finally:
            self.current_job = None
        run_seconds = time.perf_counter() - started
        result_json = encode_result(result)
        history = self._history_entry(job, "finished", run_seconds)
        next_row = self._with_redis(
            lambda: self.transitions.succeed(
                job.id, job.queue, self.name, job.attempt, time.time(), result_json,
                base64.b64encode(result_json), run_seconds, job.name, history, self._next_from(fetch_next),
            )
        )
        logs.event(
            self.log, "job.finished", "%s %s [%s] finished in %.3fs", job.name, job.id, job.queue, run_seconds,
            job_id=job.id, job=job.name, queue=job.queue, duration=round(run_seconds, 6), outcome="finished",
        )
        return self._fetched(next_row)

    def _next_from(self, fetch_next: bool) -> list[str]:
        return self.fetch_order() if fetch_next and not self.stopping and not self._over_memory() else []

    def _record_failure(
        self, job: FetchedJob, started: float, exc: BaseException, *, permanent: bool, fetch_next: bool
    ) -> FetchedJob | None:
        run_seconds = time.perf_counter() - started
        queue = self.queues.get(job.queue)
        max_retries = job.max_retries if job.max_retries is not None else (queue.max_retries if queue else 0)
        error = f"{type(exc).__name__}: {exc}"
        retry_at = None
        if not permanent and job.attempt <= max_retries and queue is not None:
            retry_at = time.time() + queue.retry_delay_for(job.attempt)
        if permanent:
            reason = f"permanent error: {error}"
        else:
            reason = f"failed {job.attempt} time{'s' if job.attempt > 1 else ''}: {error}"
        entry = {"attempt": job.attempt, "at": time.time(), "error": error, "worker": self.name}
        exc_info = zlib.compress("".join(traceback.format_exception(exc)).encode())
        history = self._history_entry(job, "dead" if retry_at is None else "retried", run_seconds, error)
        next_row = self._with_redis(
            lambda: self.transitions.fail(
                job.id, job.queue, self.name, job.attempt, time.time(), retry_at=retry_at, error_entry=entry,
                exc_info=exc_info, reason=reason, run_seconds=run_seconds, job_name=job.name, history=history,
                next_from=self._next_from(fetch_next),
            )
        )
        fields = dict(job_id=job.id, job=job.name, queue=job.queue, duration=round(run_seconds, 6), attempt=job.attempt,
                      error=error)
        if retry_at is None:
            logs.event(self.log, "job.dead", "%s %s [%s] dead: %s", job.name, job.id, job.queue, error,
                       level=logging.WARNING, outcome="dead", **fields)
        else:
            retry_in = retry_at - time.time()
            logs.event(
                self.log, "job.retry", "%s %s [%s] failed (attempt %d of %d), retry in %.1fs: %s",
                job.name, job.id, job.queue, job.attempt, max_retries + 1, retry_in, error,
                outcome="retried", retry_in=round(retry_in, 3), **fields,
            )
        return self._fetched(next_row)

    def _history_entry(self, job: FetchedJob, outcome: str, run_seconds: float, error: str | None = None) -> dict:
        """One execution, as job tracking keeps it (keys.history)."""
        return {
            "id": job.id, "job": job.name, "queue": job.queue, "args": job.args, "kwargs": job.kwargs,
            "attempt": job.attempt, "outcome": outcome, "run_seconds": round(run_seconds, 6),
            "at": time.time(), "error": error, "worker": self.name,
        }

    def _progress_reporter(self, job_id: str):
        def report(percent: float, message: str | None) -> None:
            fields = {"jobctl_progress": percent, "jobctl_progress_message": message or ""}
            try:
                self.connection.hset(keys.job(job_id), mapping=fields)
            except redis.RedisError:
                pass  # progress is advisory; never fail a job because it could not be shown

        return report


def is_outage(exc: redis.RedisError) -> bool:
    """Lost connection, or a failover that demoted the master (READONLY replies, or UNBLOCKED
    for a command that was blocked on it): wait and retry, as for a lost connection."""
    if isinstance(exc, redis.ResponseError):
        return isinstance(exc, redis.ReadOnlyError) or str(exc).startswith("UNBLOCKED")
    return True


class ResourceUsage:
    """CPU use since the last sample (percent of one core) and resident memory, of this process."""

    def __init__(self):
        self._cpu, self._wall = time.process_time(), time.monotonic()

    def sample(self) -> tuple[float, int]:
        cpu, wall = time.process_time(), time.monotonic()
        percent = 100 * (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return round(percent, 1), rss_bytes()


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best available
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _time_limit:
    """Raise JobTimeout in the job after `seconds` (SIGALRM; the job runs in the main thread)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        if self.seconds > 0:
            signal.signal(signal.SIGALRM, self._expired)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        return False

    @staticmethod
    def _expired(signum, frame):
        raise JobTimeout()
