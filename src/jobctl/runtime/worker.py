"""A worker process: fetches jobs from its queues and runs up to `concurrency` of them at once.

The worker is long-lived (no fork per job) and recycled by its supervisor after `max_jobs`
jobs. Each job id moves atomically from its queue into the worker's own in-flight list and
stays there until its outcome is written, so a worker that dies at any moment leaves behind
exactly the jobs it held, for the supervisor (or, if the whole host is gone, any other
supervisor once this worker's lease lapses) to give back.

Threads of a worker process:
- the main thread fetches (the dispatcher) and, with `concurrency: 1`, runs the job itself:
  its outcome and the start of the next job share one round trip (reservation.py);
- with `concurrency` > 1, a pool of that many threads each runs a job and then the next one it
  fetched with the outcome, until its queues are empty;
- the control thread (control.py) renews the lease (lease.py: fencing), hears wake-ups and stop
  commands on pub/sub, times out pool threads' jobs, and flushes job tracking;
- an event-loop thread, on first use, runs `async def` jobs (see executor.py).

This module is the mechanism: what becomes of an attempt (retry, dead, canceled), RQ's
callbacks, the hooks and the log lines are the middlewares' (middleware/stack.py).
"""

from __future__ import annotations

import functools
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any, cast

import redis

from .. import logs, threads
from ..api import breakers
from ..api.client import Client, use_worker_client
from ..api.context import Execution
from ..config import limits
from ..config.queues import QueueConfig, QueuesConfig
from ..config.settings import StatsdTarget
from ..errors import BreakerOpen, JobStopped, JobTimeout, PermanentError
from ..jobs import catalogue, signatures
from ..middleware import rq_compat, stack
from ..middleware.base import Attempt
from ..options.liveness import DEFAULT_LEASE_TTL
from ..store import joboutput, keys, progress
from ..store.jobdata import encode_result, rq_time
from ..store.transitions import Finished, Next, Transitions
from . import tracking
from .control import Control, rss_bytes
from .executor import Executor
from .fetched import FetchedJob, job_from_row
from .lease import Lease
from .leasekill import LeaseKill
from .reservation import Record, Reservation
from .tracking import Tracker

IDLE_POLL = 1.0  # an idle worker looks again this often without a wake-up (RQ producers send none)
MEMORY_CHECK = 0.1  # seconds between reads of the worker's RSS, when max_memory is set
CONTROL_JOIN = 1.0  # seconds run() waits for the control thread to end after the last job

EXIT_RECYCLE = 100  # max_jobs or max_memory reached: the supervisor starts a fresh worker

# what a job's attempt may raise and have recorded as its outcome; anything else is a bug of the
# worker's (see _process)
_JOB_RAISED = (Exception, SystemExit, KeyboardInterrupt, JobStopped, JobTimeout)
_TRACKED = {"retry": "retried", "dead": "dead", "canceled": "canceled"}  # verdict -> tracking's outcome


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


class Worker:
    def __init__(
        self,
        connection: redis.Redis,
        queues: list[QueueConfig],
        *,
        supervisor: str = "",
        max_jobs: int = 1000,
        max_memory: int | None = None,
        concurrency: int = 1,
        url: str = "",
        config: QueuesConfig | None = None,
        burst: bool = False,
        capture_output: bool = True,
        kill_past_lease: bool = False,
        lease_ttl: int = DEFAULT_LEASE_TTL,
        statsd: StatsdTarget | None = None,
        on_leaving: Callable[[], object] | None = None,
    ):
        """`config`: the queues a job's own enqueues go by (None: as jobctl.Client finds them).
        `burst`: return once the queues are empty, instead of waiting for more jobs (the
        in-process worker of jobctl.testing). `capture_output`: route what jobs print into their
        attempts (joboutput.py), which takes over the process's stdout and stderr.
        `kill_past_lease`: the kernel kills this process just before its lease can lapse
        (leasekill.py); only for a process that is nothing but this worker (`jobctl work`'s),
        never one that outlives it, such as a test process with an in-process worker (its timer
        killed pytest's own processes once the worker had returned). `lease_ttl`: the liveness
        window (options/liveness.py). `statsd`: where to send StatsD metrics (None: nowhere).
        `on_leaving()`: called when a recycled worker has stored its last outcome and given back
        its reservations, before it flushes and exits: its supervisor starts the successor then."""
        self.connection = connection
        self.client = Client(url or None, config, connection=connection)
        self.burst, self.capture_output, self.kill_past_lease = burst, capture_output, kill_past_lease
        self.on_leaving = on_leaving
        self.transitions = Transitions(connection)
        self.layout = self.transitions.layout
        self.queues = {q.name: q for q in queues}
        # on a cluster the worker has a hash (its lease), an in-flight list and counters in the
        # slot of each of its queues (keys.Layout); on one Redis one of each ('')
        self.homes = tuple(self.queues) if self.layout.cluster else ("",)
        self.name = worker_name()
        self.pid = os.getpid()
        self.supervisor = supervisor
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.concurrency = concurrency
        self.executor = Executor()
        self.tracker = Tracker(self.name, self.layout, self.homes)
        self.log = logs.get()
        self.lease_ttl = lease_ttl
        self.middleware = stack.for_worker(self.log, statsd, self.queues, connection)
        limits.check_breakers(self.client.config)
        self.limits = limits.limits_of(queues, self.client.config.breakers)  # the scripts' `limits` (limits.py)
        # a stop was asked: finish the jobs in flight, take no new one (an Event: an outage's
        # waits end when it is set, Lease.call_unless)
        self.stop_asked = threading.Event()
        self.recycling = False  # max_jobs or max_memory reached: the same, then exit EXIT_RECYCLE
        self._started = 0  # jobs started, towards max_jobs
        self._busy = 0  # jobs in flight
        self._count_lock = threading.Lock()
        self._next_memory_check = 0.0
        self.lease = Lease(self.name, self.log, url, lease_ttl)
        self.reservation = Reservation(
            self.transitions,
            self.lease,
            self.limits,
            concurrency,
            self._next_from,
            self.log,
            self._logged,
            min((q.prefetch for q in queues), default=1),
        )
        self.control = Control(
            connection,
            self.transitions,
            list(self.queues),
            self.lease,
            self.executor,
            self.tracker,
            self.reservation,
            concurrency,
            self.log,
        )

    @property
    def started(self) -> int:
        """Jobs this worker started."""
        return self._started

    @property
    def token(self) -> str:
        """The worker's lease, which every script it calls checks."""
        return self.lease.token

    # --- lifecycle ---------------------------------------------------------------------------

    def handle_stop_signals(self) -> None:
        """SIGTERM/SIGINT: finish the running jobs, take no new one. SIGCONT: a worker that was
        frozen past its lease ends at once, before its job can go on."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGCONT, lambda signum, frame: self.lease.check_age())

    def run(self) -> int:
        """Serve until stopped (handle_stop_signals first: the supervisor installs the handlers
        before it unblocks stop signals in the new process)."""
        if self.capture_output:
            joboutput.install()
        self.lease.kill = LeaseKill() if self.kill_past_lease else None  # a timer is the process's that makes it
        if not self.lease.call_unless(self.stop_asked, self._register):
            return 0  # stopped before Redis could be reached: nothing was taken
        control = threading.Thread(target=self._control_thread, name="jobctl-control", daemon=True)
        control.start()
        pool = (
            ThreadPoolExecutor(self.concurrency, "jobctl-job", initializer=threads.leave_signals_to_the_main_thread)
            if self.concurrency > 1
            else None
        )
        use_worker_client(self.client)  # a job's enqueues, also from threads it starts
        try:
            self._dispatch(pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            if self.recycling and not self.stopping and self.on_leaving is not None:
                # what is left (the control thread's end, the last flush, the exit) takes ~10 ms,
                # as long again as a new worker's start: the two overlap (bench/throughput.py)
                self.on_leaving()
            use_worker_client(None)
            if control.is_alive() and not self.lease.outage.failures:  # Redis answered the last call
                self.control.wake()
            self.control.ended.set()
            # bounded: a control thread stuck on a Redis that vanished must not hold the shutdown
            control.join(timeout=CONTROL_JOIN)
        # Leave cleanly: flush job tracking, give back anything still in flight and unregister.
        self.lease.call_unless(self.stop_asked, self.control.flush)
        self.lease.call_unless(self.stop_asked, self._give_back)
        return EXIT_RECYCLE if self.recycling and not self.stopping else 0

    def _control_thread(self) -> None:
        threads.leave_signals_to_the_main_thread()
        self.control.run()

    def _give_back(self) -> None:
        """Requeue what is still in flight and unregister (one call per queue on a cluster)."""
        for home in self.homes:
            self.transitions.recover(self.name, time.time(), cause="shutdown", crash_limit=1, how="stopped", queue=home)

    def _dispatch(self, pool: ThreadPoolExecutor | None) -> None:
        """Fetch jobs while there is room, and hand each to the main thread or a pool thread."""
        while not self._finishing():
            free = self.concurrency - self._busy
            self.control.woken.clear()
            suspended = self.control.suspended
            rows = (
                self.lease.call_unless(
                    self.stop_asked,
                    lambda: self.transitions.fetch(
                        self.name,
                        self.token,
                        self.fetch_order(),
                        time.time(),
                        free,  # noqa: B023 - called at once, in this iteration
                        self.limits,
                    ),
                )
                if free > 0 and not suspended
                else []
            )
            if not rows:
                if self.burst and free == self.concurrency and not suspended:
                    return  # nothing in flight, nothing to fetch
                self.control.woken.wait(IDLE_POLL)
                continue
            for row in rows:
                job = job_from_row(row)
                self._took(job)
                if pool is None:
                    self._process(job)
                else:
                    pool.submit(self._process, job)

    def _took(self, job: FetchedJob) -> None:
        with self._count_lock:
            self._busy += 1
            self._started += 1
            if self._started >= self.max_jobs:
                self.recycling = True

    @property
    def stopping(self) -> bool:
        return self.stop_asked.is_set()

    def _finishing(self) -> bool:
        return self.stopping or self.recycling

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_asked.set()
        self.control.woken.set()

    def _register(self) -> bool:
        now = time.time()
        layout = self.layout
        # as Redis sees it, as RQ records it; redis-py 5 types every reply as maybe awaitable
        address = str(self.connection.client_info().get("addr", "unknown"))  # type: ignore[union-attr, unused-ignore]
        # one transaction on one Redis; a cluster's keys are in several slots
        with self.connection.pipeline(transaction=not layout.cluster) as pipe:
            for home in self.homes:
                self._register_in(pipe, home, now, address)
            if paths := catalogue.import_paths():  # views name jobs RQ enqueued by function reference
                # redis-py 8 wants Mapping[FieldT, ...], whose key type is invariant: a dict[str, str] is refused
                pipe.hset(keys.JOB_PATHS, mapping=paths)  # type: ignore[arg-type, unused-ignore]
            # before the first fetch; then the control thread looks
            pipe.exists(keys.SUSPENDED)
            pipe.smembers(keys.PAUSED)
            renewing = time.monotonic()  # before Redis sets the lease's expiry: it lapses here first
            suspended, paused = pipe.execute()[-2:]
        self.control.suspended, self.control.paused = bool(suspended), frozenset(q.decode() for q in paused)
        self.lease.renewed(renewing)
        return True

    def _register_in(self, pipe: redis.client.Pipeline, home: str, now: float, address: str) -> None:
        """The worker's hash (its lease) and registrations: for all its queues on one Redis, for
        `home` in its slot on a cluster."""
        layout = self.layout
        key = layout.worker(self.name, home)
        queues = [home] if home else list(self.queues)
        pipe.delete(key)
        pipe.hset(
            key,
            mapping={
                "birth": rq_time(now),
                "last_heartbeat": rq_time(now),
                "queues": ",".join(queues),
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "state": "idle",
                "ip_address": address,
                "successful_job_count": 0,
                "failed_job_count": 0,
                "total_working_time": 0,
                "python_version": sys.version.split()[0],
                "jobctl_supervisor": self.supervisor,
                "jobctl_concurrency": self.concurrency,
                "jobctl_lease": self.token,
            },
        )
        pipe.expire(key, self.lease_ttl)
        pipe.sadd(keys.WORKERS, key)
        for queue in queues:
            pipe.sadd(layout.workers_of_queue(queue), key)
            pipe.sadd(keys.QUEUES, layout.queue(queue))  # so RQ's tools list it while empty
        pipe.sadd(layout.active_workers(home), self.name)

    # --- fetching ----------------------------------------------------------------------------

    def fetch_order(self) -> list[str]:
        """Strict priority order, or Sidekiq-style weighted random order when weights are set."""
        queues = [q for q in self.queues.values() if q.name not in self.control.paused]
        if len(queues) <= 1 or not any(q.weight for q in queues):
            return [q.name for q in queues]
        # each queue's chance of being tried first is proportional to its weight
        pool = [q.name for q in queues for _ in range(q.weight or 1)]
        random.shuffle(pool)
        return list(dict.fromkeys(pool))

    def _next_from(self) -> list[str]:
        """The queues to start this thread's next job from with the outcome (none: stop here)."""
        self._check_memory()
        if self._finishing() or self.control.suspended:
            return []
        with self._count_lock:
            if self._started >= self.max_jobs:
                return []
        return self.fetch_order()

    def _check_memory(self) -> None:
        """Over max_memory after a job: finish the jobs in flight and be replaced. RSS is read at
        most every MEMORY_CHECK seconds: /proc costs too much to read after every job."""
        if not self.max_memory or self.recycling or time.monotonic() < self._next_memory_check:
            return
        self._next_memory_check = time.monotonic() + MEMORY_CHECK
        rss = rss_bytes()
        if rss > self.max_memory:
            self.log.info("worker %s: recycling after its jobs, RSS %d MB is over max_memory", self.name, rss >> 20)
            self.recycling = True
            self.control.woken.set()

    # --- running -----------------------------------------------------------------------------

    def _process(self, job: FetchedJob | None) -> None:
        """Run the job, then each next job its outcome script started, until there is none."""
        try:
            while job is not None:
                job = self._execute(job)
                if job is not None:
                    self._took(job)
                with self._count_lock:
                    self._busy -= 1
        except BaseException:  # a bug here must not leave the dispatcher waiting for a slot
            self.log.exception("worker %s: job processing failed", self.name)
            os._exit(1)
        finally:
            self.control.woken.set()

    def _execute(self, job: FetchedJob) -> FetchedJob | None:
        """Run the job and store its outcome; returns the next job to run."""
        running, stopped_early = self.control.begin(job.id, job.timeout)
        started = time.perf_counter()
        spec = None
        try:
            if stopped_early:
                raise JobStopped()
            if job.unreadable:
                raise PermanentError(job.unreadable)
            spec = catalogue.stored(job.name)
            if spec is None:
                raise PermanentError(f"job {job.name!r} is not registered in this worker (check --jobs / JOBCTL_JOBS)")
            job.name = spec.name  # an RQ producer may name it by its function's import path
            self.middleware.before_attempt(job.info)
            execution = Execution(
                job.id,
                job.name,
                functools.partial(progress.write, self.connection, job.id, queue=job.queue),
                self.client,
                self.name,
                job.queue,
            )
            # stored() resolves the function: a spec's func is None only while it is merely declared
            func = rq_compat.with_current_job(cast("Callable[..., Any]", spec.func), job.id, self.connection)
            result = self.executor.call(func, job.args, job.kwargs, execution, running, self._output_capture(job))
            self._leave_if_forked()
            result_json = encode_result(result)
        except BreakerOpen as exc:
            self._leave_if_forked()
            return self._defer(job, exc, time.perf_counter() - started)
        except _JOB_RAISED as exc:
            self._leave_if_forked()
            run_seconds = time.perf_counter() - started
            return self._store(job, job.ended(run_seconds, exception=self._failure(job, spec, exc)))
        finally:
            self.control.end(job.id)
        return self._store(job, job.ended(time.perf_counter() - started, result), result_json)

    def _failure(self, job: FetchedJob, spec: catalogue.JobSpec | None, exc: BaseException) -> BaseException:
        """What the attempt's outcome records of what it raised."""
        if isinstance(exc, JobStopped):
            return JobStopped("canceled while running")
        if isinstance(exc, JobTimeout):
            return JobTimeout(f"timed out after {job.timeout:g}s")
        if isinstance(exc, TypeError) and spec is not None:
            # Stored arguments that do not fit the signature (changed after enqueue) never will:
            # dead at once. Checked only on a TypeError (a call that does not bind raises one
            # before the job's body runs), so that a job that runs pays nothing for it.
            try:
                signatures.check_stored(spec, job.args, job.kwargs)
            except PermanentError as mismatch:
                return mismatch
        return exc

    def _store(self, job: FetchedJob, attempt: Attempt, result_json: bytes = b"") -> FetchedJob | None:
        """Store the attempt's outcome, a failed one's verdict decided first, with the middlewares
        around it; returns the next job to run."""
        if attempt.exception is not None:
            attempt.verdict = self.middleware.decide(attempt)
        self.middleware.before_outcome(attempt)
        now = time.time()
        follow = self.reservation.finish(
            job,
            self._record(job, attempt, result_json, now),
            functools.partial(self.middleware.after_outcome, attempt),
            self.middleware.waits_after(job.name),
            Finished(job.id, job.queue, job.attempt, result_json) if attempt.verdict is None else None,
        )
        outcome = _TRACKED[attempt.verdict.outcome] if attempt.verdict else "finished"
        self._track(job, outcome, attempt.run_seconds, now, attempt.error or None)
        return follow

    def _record(self, job: FetchedJob, attempt: Attempt, result_json: bytes, now: float) -> Record:
        """The outcome script's call for the attempt (lua/succeed.lua, lua/fail.lua)."""
        exc, verdict = attempt.exception, attempt.verdict
        if exc is None or verdict is None:
            return lambda go_on, wait: self._heard(
                self.transitions.succeed(job.id, job.queue, self.name, job.attempt, now, result_json, go_on, wait=wait)
            )
        entry = {"attempt": job.attempt, "at": now, "error": attempt.error, "worker": self.name}
        exc_info = zlib.compress("".join(traceback.format_exception(exc)).encode())
        return self._failed(
            job,
            now,
            verdict=verdict.outcome,
            retry_at=verdict.retry_at,
            error_entry=entry,
            exc_info=exc_info,
            reason=verdict.reason,
            breaker=None if verdict.outcome == "canceled" else self._breaker_counts(job, exc),
        )

    def _failed(self, job: FetchedJob, now: float, **outcome: Any) -> Record:
        """Transitions.fail bound to the job and `outcome`'s keyword arguments."""
        return lambda go_on, wait: self._heard(
            self.transitions.fail(job.id, job.queue, self.name, job.attempt, now, go_on=go_on, wait=wait, **outcome)
        )

    def _breaker_counts(self, job: FetchedJob, exc: BaseException) -> bool:
        """Whether the job's breaker counts `exc` as a failure (config/limits.py); not when a
        `with jobctl.breaker(...)` block already counted it."""
        spec = catalogue.stored(job.name)
        settings = self.client.config.breakers.get(spec.breaker) if spec is not None and spec.breaker else None
        return settings is not None and not hasattr(exc, breakers.COUNTED) and settings.counts(exc)

    def _heard(self, reply: Next | Callable[[], Next]) -> Next | Callable[[], Next]:
        """An outcome script's reply (or the function that reads it), logging what the outcome
        did to the job's breaker once the reply is read: one line when it opened or closed."""
        if callable(reply):
            read = reply
            return lambda: self._logged(read())
        return self._logged(reply)

    def _logged(self, reply: Next) -> Next:
        for event in reply.breaker.splitlines():  # a line for each job recorded
            breakers.log_event(self.log, event, f"worker {self.name}")
        return reply

    def _defer(self, job: FetchedJob, exc: BreakerOpen, run_seconds: float) -> FetchedJob | None:
        """The job met an open breaker (BreakerOpen escaped it): back in the scheduled set until
        the breaker may let it run, its attempt unused (lua/fail.lua, verdict 'deferred'); no
        middleware hears an outcome, as there is none."""
        now = time.time()
        record = self._failed(
            job, now, verdict="deferred", retry_at=max(exc.until, now), error_entry={}, exc_info=b"", reason=""
        )
        follow = self.reservation.finish(job, record, lambda: None, False)
        logs.event(
            self.log,
            "job.deferred",
            "%s %s [%s] deferred %.1fs: %s",
            job.name,
            job.id,
            job.queue,
            max(exc.until - now, 0.0),
            exc,
            job_id=job.id,
            job=job.name,
            queue=job.queue,
            duration=round(run_seconds, 6),
            outcome="deferred",
            breaker=exc.name,
        )
        return follow

    def _track(self, job: FetchedJob, outcome: str, run_seconds: float, now: float, error: str | None) -> None:
        self.tracker.record(
            tracking.AttemptRecord(
                job.id, job.name, job.queue, job.attempt, outcome, run_seconds, now, error, job.args, job.kwargs
            )
        )

    def _output_capture(self, job: FetchedJob) -> Callable[[], AbstractContextManager[object]]:
        """What the job prints and logs, kept with the attempt (joboutput.py), as long as the job."""
        queue = self.queues.get(job.queue)
        ttl = int(max(queue.result_ttl, queue.failure_ttl)) if queue else joboutput.DEFAULT_TTL
        return functools.partial(joboutput.capture, self.connection, job.id, job.attempt, ttl, job.queue)

    def _leave_if_forked(self) -> None:
        """A job that forked returns into this code in the child too: the child must not go on as
        a second worker under this one's name (test_a_forked_child_never_returns_into_the_worker)."""
        if os.getpid() != self.pid:
            os._exit(0)
