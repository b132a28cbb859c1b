"""A worker process: fetches jobs from its queues and runs up to `concurrency` of them at once.

The worker is long-lived (no fork per job) and recycled by its supervisor after `max_jobs`
jobs. Each job id moves atomically from its queue into the worker's own in-flight list and
stays there until its outcome is written, so a worker that dies at any moment leaves behind
exactly the jobs it held, for the supervisor (or, if the whole host is gone, any other
supervisor once this worker's lease lapses) to give back.

Threads of a worker process:
- the main thread fetches (the dispatcher) and, with `concurrency: 1`, runs the job itself:
  its outcome and the start of the next job share one round trip;
- with `concurrency` > 1, a pool of that many threads each runs a job and then the next one it
  fetched with the outcome, until its queues are empty;
- the control thread renews the lease (heartbeat), hears wake-ups and stop commands on pub/sub,
  times out pool threads' jobs, and flushes job tracking;
- an event-loop thread, on first use, runs `async def` jobs (see executor.py).

Fencing (issue 11): the lease is a token in the worker's expiring hash. Every script the worker
calls checks it, so a worker presumed dead writes nothing; and the worker ends itself (exit
EXIT_FENCED) as soon as it sees it lost the lease, or could not renew it for its lifetime: a
frozen or cut-off worker never finishes a job that has been given to another. A worker frozen
past its lease is killed by the kernel while still frozen (leasekill.py): on Linux it runs no
instruction of a job after its lease lapsed, whichever thread runs the job.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from types import FrameType
from typing import Any, NoReturn, TypeVar, cast

import redis
from redis.typing import EncodableT, FieldT

from .. import logs
from ..api.client import Client, use_worker_client
from ..api.context import Execution
from ..config import limits
from ..config.queues import QueueConfig, QueuesConfig
from ..config.settings import StatsdTarget
from ..errors import JobStopped, JobTimeout, LeaseLost, PermanentError
from ..jobs import catalogue, signatures
from ..middleware import base, retries, rq_compat, stack
from ..middleware.rq_compat import RqOptions
from ..options.liveness import DEFAULT_LEASE_TTL, heartbeat_interval
from ..store import joboutput, keys
from ..store.connection import RedisOutage
from ..store.jobdata import PayloadError, ResultError, decode_payload, encode_result, rq_time
from ..store.transitions import GoOn, Next, Row, Transitions
from . import tracking
from .executor import Executor, Running
from .leasekill import LeaseKill
from .tracking import Tracker

IDLE_POLL = 1.0  # an idle worker looks again this often without a wake-up (RQ producers send none)
MEMORY_CHECK = 0.1  # seconds between reads of the worker's RSS, when max_memory is set
CONTROL_TICK = 0.1  # how often the control thread checks pool threads' timeouts and memory
CONTROL_JOIN = 1.0  # seconds run() waits for the control thread to end after the last job
# A job reserved behind the running one (concurrency 1: see _finish) goes back to its queue once
# the running job has run this long: another worker may start it sooner.
RESERVATION_HOLD = 0.05

# The kernel kills the worker (leasekill.py), frozen or not, this long before its lease could
# lapse in Redis: the lease's start is taken before Redis receives the renewal, and this covers
# the two clocks running at slightly different rates (NTP slews a clock by up to 0.05 %). A test
# that woke a frozen worker as soon as Redis showed its lease gone caught it alive with no margin.
KILL_EARLY = 0.25
# The worker fences itself (exit EXIT_FENCED, with a log line) earlier still, when it can.
FENCE_EARLY = 2 * KILL_EARLY

EXIT_RECYCLE = 100  # max_jobs or max_memory reached: the supervisor starts a fresh worker
EXIT_FENCED = 101  # the lease was lost: this worker's jobs are (or will be) recovered elsewhere

T = TypeVar("T")


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

    @cached_property
    def info(self) -> base.JobInfo:
        """The job as middlewares and hooks see it."""
        return base.JobInfo(
            self.id, self.name, self.queue, tuple(self.args), dict(self.kwargs), self.attempt, self.created_at
        )


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
    ):
        """`config`: the queues a job's own enqueues go by (None: as jobctl.Client finds them).
        `burst`: return once the queues are empty, instead of waiting for more jobs (the
        in-process worker of jobctl.testing). `capture_output`: route what jobs print into their
        attempts (joboutput.py), which takes over the process's stdout and stderr.
        `kill_past_lease`: the kernel kills this process just before its lease can lapse
        (leasekill.py); only for a process that is nothing but this worker (`jobctl work`'s),
        never one that outlives it, such as a test process with an in-process worker (its timer
        killed pytest's own processes once the worker had returned). `lease_ttl`: the liveness
        window (options/liveness.py). `statsd`: where to send StatsD metrics (None: nowhere)."""
        self.connection = connection
        self.client = Client(url or None, config, connection=connection)
        self.burst, self.capture_output, self.kill_past_lease = burst, capture_output, kill_past_lease
        self.transitions = Transitions(connection)
        self.queues = {q.name: q for q in queues}
        self.name = worker_name()
        self.pid = os.getpid()
        self.token = uuid.uuid4().hex
        self.supervisor = supervisor
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.concurrency = concurrency
        self.executor = Executor()
        self.tracker = Tracker(self.name)
        self.log = logs.get()
        self.lease_ttl = lease_ttl
        self.middleware = stack.for_worker(self.log, statsd)
        self.limits = limits.limits_of(queues)  # the fetch scripts' `limits` (limits.py)
        self.stopping = False  # a stop was asked: finish the jobs in flight, take no new one
        self.recycling = False  # max_jobs or max_memory reached: the same, then exit EXIT_RECYCLE
        self.running: dict[str, Running] = {}
        self._started = 0  # jobs started, towards max_jobs
        self._busy = 0  # jobs in flight
        self._count_lock = threading.Lock()
        self._woken = threading.Event()  # a job may be waiting, or a slot was freed, or a stop asked
        self._lease_renewed = 0.0  # monotonic time of the latest renewal
        self._lease_kill: LeaseKill | None = None  # made in run(): a timer is the process's that makes it
        self._next_memory_check = 0.0
        self.outage = RedisOutage(self.log, f"worker {self.name}", url)
        self.suspended = False  # `rq suspend`: take no new job until `rq resume` (the control thread looks)
        # `jobctl pause`d queues, not fetched from: looked at on start, when pause or resume
        # publishes, and once a second, instead of in every fetch script (issue 12: a command per job)
        self.paused: frozenset[str] = frozenset()
        # concurrency 1 (see _finish): the job reserved to run next, the reply of the outcome sent
        # last (unread), or that reply read early by the control thread when it gave back the
        # reservation; _hold guards them between the main and control threads.
        self._reserved: FetchedJob | None = None
        self._pending: Callable[[], Next] | None = None
        self._early: Next | None = None
        self._hold = threading.Lock()
        self._hooks_since = 0.0  # monotonic: when the hooks of the job that just ended began (0: none run)
        self._stop_early: dict[str, float] = {}  # stop requests for jobs not running (yet): id -> when
        self._starting = threading.Lock()  # a stop request against the start of its job
        self._ended = threading.Event()  # run() has returned: the control thread ends too

    @property
    def started(self) -> int:
        """Jobs this worker started."""
        return self._started

    # --- lifecycle ---------------------------------------------------------------------------

    def handle_stop_signals(self) -> None:
        """SIGTERM/SIGINT: finish the running jobs, take no new one. SIGCONT: a worker that was
        frozen past its lease ends at once, before its job can go on."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGCONT, lambda signum, frame: self._check_lease_age())

    def run(self) -> int:
        """Serve until stopped (handle_stop_signals first: the supervisor installs the handlers
        before it unblocks stop signals in the new process)."""
        if self.capture_output:
            joboutput.install()
        self._lease_kill = LeaseKill() if self.kill_past_lease else None
        self._with_redis(self._register)
        control = threading.Thread(target=self._control_loop, name="jobctl-control", daemon=True)
        control.start()
        pool = ThreadPoolExecutor(self.concurrency, "jobctl-job") if self.concurrency > 1 else None
        use_worker_client(self.client)  # a job's enqueues, also from threads it starts
        try:
            self._dispatch(pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            use_worker_client(None)
            self._ended.set()
            # bounded: a control thread stuck on a Redis that vanished must not hold the shutdown
            control.join(timeout=CONTROL_JOIN)
        # Leave cleanly: flush job tracking, give back anything still in flight and unregister.
        self._with_redis(self._flush)
        self._with_redis(
            lambda: self.transitions.recover(self.name, time.time(), cause="shutdown", crash_limit=1, how="stopped")
        )
        return EXIT_RECYCLE if self.recycling and not self.stopping else 0

    def _dispatch(self, pool: ThreadPoolExecutor | None) -> None:
        """Fetch jobs while there is room, and hand each to the main thread or a pool thread."""
        while not self._finishing():
            free = self.concurrency - self._busy
            self._woken.clear()
            rows = (
                self._with_redis(
                    lambda: self.transitions.fetch(
                        self.name,
                        self.token,
                        self.fetch_order(),
                        time.time(),
                        free,  # noqa: B023 - called at once, in this iteration
                        self.limits,
                    )
                )
                if free > 0 and not self.suspended
                else []
            )
            if not rows:
                if self.burst and free == self.concurrency and not self.suspended:
                    return  # nothing in flight, nothing to fetch
                self._woken.wait(IDLE_POLL)
                continue
            for row in rows:
                job = self._job_from_row(row)
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

    def _finishing(self) -> bool:
        return self.stopping or self.recycling

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self._woken.set()

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
                    # as Redis sees it, as RQ records it; redis-py 5 types every reply as maybe awaitable
                    "ip_address": self.connection.client_info().get("addr", "unknown"),  # type: ignore[union-attr, unused-ignore]
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
            for queue in self.queues:
                pipe.sadd(keys.workers_of_queue(queue), key)
                pipe.sadd(keys.QUEUES, keys.queue(queue))  # so RQ's tools list it while empty
            pipe.sadd(keys.ACTIVE_WORKERS, self.name)
            if paths := catalogue.import_paths():  # views name jobs RQ enqueued by function reference
                # redis-py 8 wants Mapping[FieldT, ...], whose key type is invariant: a dict[str, str] is refused
                pipe.hset(keys.JOB_PATHS, mapping=paths)  # type: ignore[arg-type, unused-ignore]
            # before the first fetch; then the control thread looks
            pipe.exists(keys.SUSPENDED)
            pipe.smembers(keys.PAUSED)
            renewing = time.monotonic()  # before Redis sets the lease's expiry: it lapses here first
            suspended, paused = pipe.execute()[-2:]
        self.suspended, self.paused = bool(suspended), frozenset(q.decode() for q in paused)
        self._renewed(renewing)

    # --- the control thread --------------------------------------------------------------------

    def _control_loop(self) -> None:
        """Heartbeats, wake-ups and stop commands, timeouts of pool threads' jobs, tracking flushes."""
        usage = ResourceUsage()
        pubsub: redis.client.PubSub | None = None
        next_heartbeat = time.monotonic() + heartbeat_interval(self.lease_ttl)
        next_flush = 0.0
        while not self._ended.is_set():
            self._check_lease_age()
            try:
                if pubsub is None:
                    pubsub = self.connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in redis-py 8
                    pubsub.subscribe(keys.commands(self.name), *(keys.wake(q) for q in self.queues))
                    self._woken.set()  # a wake-up may have been missed while unsubscribed
                message = pubsub.get_message(timeout=CONTROL_TICK)
                while message is not None:
                    self._on_message(message)
                    message = pubsub.get_message(timeout=0)
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + heartbeat_interval(self.lease_ttl)
                    self._heartbeat(*usage.sample())
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + tracking.FLUSH_INTERVAL
                    self._flush()
                    self._check_pauses()
                # in the try: a Redis drop while a job runs long must not end the control thread
                # (no more heartbeats, stops or pool timeouts for the rest of the job)
                self._release_if_running_long()
            except redis.RedisError:
                # the dispatcher reports outages; the lease's age decides when to give up
                if pubsub is not None:
                    pubsub.close()
                pubsub = None
                time.sleep(CONTROL_TICK)
            self.executor.interrupt_overdue(list(self.running.values()))
        if pubsub is not None:
            pubsub.close()

    def _check_pauses(self) -> None:
        """`jobctl pause` and RQ's `rq suspend`, looked at about once a second and when pause or
        resume publishes, not once per job."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.exists(keys.SUSPENDED)
            pipe.smembers(keys.PAUSED)
            suspended, paused = pipe.execute()
        self.paused = frozenset(q.decode() for q in paused)
        suspended = bool(suspended)
        if suspended != self.suspended:
            self.log.info(
                "worker %s: %s", self.name, "suspended (rq suspend): taking no new job" if suspended else "resumed"
            )
            self.suspended = suspended
            self._woken.set()

    def _flush(self) -> None:
        """Job tracking and the worker's state, for views and RQ's readers (tracking.py)."""
        tracking.flush(self.tracker, self.transitions, list(self.running), self.suspended)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if channel != keys.commands(self.name):  # a job landed on an empty queue, or pauses changed
            if message["data"] == keys.PAUSES_CHANGED.encode():
                self._check_pauses()
            self._woken.set()
            return
        try:
            command = json.loads(message["data"])
        except ValueError:
            return
        if isinstance(command, dict) and command.get("command") == "stop-job":
            self._stop(str(command.get("job_id")))

    def _heartbeat(self, cpu_percent: float, rss: int) -> None:
        renewing = time.monotonic()
        try:
            to_stop = self.transitions.heartbeat(
                self.name, self.token, rq_time(time.time()), self.lease_ttl, cpu_percent, rss
            )
        except LeaseLost:
            self._fence("its lease was taken (presumed dead)")
        self._renewed(renewing)
        for job_id in to_stop:
            self._stop(job_id)

    def _stop(self, job_id: str) -> None:
        with self._starting:
            running = self.running.get(job_id)
            if running is None:  # reserved and about to start (the cancel raced it): it must not run
                now = time.monotonic()
                self._stop_early = {id_: at for id_, at in self._stop_early.items() if now - at < 60}
                self._stop_early[job_id] = now
                return
        self.log.info("worker %s: stopping job %s at an operator's request", self.name, job_id)
        self.executor.interrupt(running, JobStopped)

    def _release_if_running_long(self) -> None:
        """The main thread's job, or its hooks, run long: give back the job reserved behind it
        (see _finish)."""
        running = next(iter(list(self.running.values())), None) if self.concurrency == 1 else None
        since = running.since if running is not None else self._hooks_since
        if not since or time.monotonic() - since < RESERVATION_HOLD:
            return
        if not self._hold.acquire(blocking=False):  # the main thread is between jobs
            return
        try:
            if self._pending is not None:
                try:
                    reply = self._pending()
                except LeaseLost:
                    self._fence("its lease was taken (presumed dead)")
                self._pending = None
                self._early = reply._replace(reserved=None)
                if reply.reserved:
                    self._reserved = self._job_from_row(reply.reserved)
            if self._reserved is not None:
                reserved = self._reserved
                self.transitions.release(self.name, reserved.id, reserved.queue, time.time())
                self._reserved = None  # only once given back: a failed release is tried again
        finally:
            self._hold.release()

    def _renewed(self, at: float) -> None:
        """The lease was renewed at `at` (monotonic, taken before the renewal was sent)."""
        self._lease_renewed = at
        if self._lease_kill is not None:
            self._lease_kill.arm(at + self.lease_ttl - KILL_EARLY - time.monotonic())

    def _check_lease_age(self) -> None:
        if self._lease_renewed and time.monotonic() - self._lease_renewed > self.lease_ttl - FENCE_EARLY:
            self._fence(
                f"its lease was not renewed for {self.lease_ttl - FENCE_EARLY:g}s (frozen, or cut off from Redis)"
            )

    def _fence(self, why: str) -> NoReturn:
        """Another supervisor may already have given this worker's jobs to other workers: end at
        once, without running another instruction of them."""
        logs.event(
            self.log,
            "worker.fenced",
            "worker %s: %s; exiting, its jobs are recovered elsewhere",
            self.name,
            why,
            level=logging.WARNING,
            worker=self.name,
        )
        logging.shutdown()
        os._exit(EXIT_FENCED)

    # --- Redis outages -------------------------------------------------------------------------

    def _with_redis(self, action: Callable[[], T]) -> T:
        """Run a Redis action, waiting out an outage (connection.RedisOutage).

        Outcomes of finished jobs are written this way too, so a job that ended while Redis was
        briefly away has its result stored once Redis returns (a longer outage ends the lease)."""
        while True:
            try:
                result = action()
            except LeaseLost:
                self._fence("its lease was taken (presumed dead)")
            except redis.RedisError as exc:
                if not RedisOutage.covers(exc):
                    raise
                time.sleep(self.outage.failed(exc))
                continue
            self.outage.ok()
            return result

    # --- fetching ----------------------------------------------------------------------------

    def fetch_order(self) -> list[str]:
        """Strict priority order, or Sidekiq-style weighted random order when weights are set."""
        queues = [q for q in self.queues.values() if q.name not in self.paused]
        if len(queues) <= 1 or not any(q.weight for q in queues):
            return [q.name for q in queues]
        # each queue's chance of being tried first is proportional to its weight
        pool = [q.name for q in queues for _ in range(q.weight or 1)]
        random.shuffle(pool)
        return list(dict.fromkeys(pool))

    @staticmethod
    def _job_from_row(row: Row) -> FetchedJob:
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
        )

    def _next_from(self) -> list[str]:
        """The queues to start this thread's next job from with the outcome (none: stop here)."""
        self._check_memory()
        if self._finishing() or self.suspended:
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
            self._woken.set()

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
            self._woken.set()

    def _execute(self, job: FetchedJob) -> FetchedJob | None:
        """Run the job and record its outcome; returns the next job to run."""
        with self._starting:
            running = self.running[job.id] = Running(job.id, job.timeout)
            stopped_early = self._stop_early.pop(job.id, None) is not None
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
            execution = Execution(job.id, job.name, self._progress_reporter(job.id), self.client)
            # stored() resolves the function: a spec's func is None only while it is merely declared
            func = rq_compat.with_current_job(cast("Callable[..., Any]", spec.func), job.id, self.connection)
            result = self.executor.call(func, job.args, job.kwargs, execution, running, self._output_capture(job))
            self._leave_if_forked()
            result_json = encode_result(result)
            if job.rq.on_success:
                rq_compat.run_callback("on_success", job.rq.on_success, job.id, self.connection, (result,), self.log)
        except (PermanentError, ResultError) as exc:
            return self._record_failure(job, started, exc, verdict="dead")
        except JobStopped:
            stopped = JobStopped("canceled while running")
            return self._record_failure(job, started, stopped, verdict="canceled")
        except JobTimeout:
            return self._record_failure(job, started, JobTimeout(f"timed out after {job.timeout:g}s"))
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - whatever the job raised is its outcome
            self._leave_if_forked()
            if isinstance(exc, TypeError) and spec is not None:
                # Stored arguments that do not fit the signature (changed after enqueue) never will:
                # dead at once. Checked only on a TypeError (a call that does not bind raises one
                # before the job's body runs), so that a job that runs pays nothing for it.
                try:
                    signatures.check_stored(spec, job.args, job.kwargs)
                except PermanentError as mismatch:
                    return self._record_failure(job, started, mismatch, verdict="dead")
            return self._record_failure(job, started, exc)
        finally:
            self.running.pop(job.id, None)
        run_seconds = time.perf_counter() - started
        now = time.time()
        follow = self._finish(
            job,
            lambda go_on, wait: self.transitions.succeed(
                job.id, job.queue, self.name, job.attempt, now, result_json, go_on, wait=wait
            ),
            lambda: self.middleware.after_attempt(job.info, result, None, run_seconds),
        )
        self._track(job, "finished", run_seconds, now)
        if self.log.isEnabledFor(logging.DEBUG):  # one line per job only when asked (--verbose): issue 12
            logs.event(
                self.log,
                "job.finished",
                "%s %s [%s] finished in %.3fs",
                job.name,
                job.id,
                job.queue,
                run_seconds,
                job_id=job.id,
                job=job.name,
                queue=job.queue,
                duration=round(run_seconds, 6),
                outcome="finished",
                level=logging.DEBUG,
            )
        return follow

    # record(go_on, wait): Transitions.succeed or fail, bound to the job; with wait it returns the
    # reply (Next), without a function that reads it: Any, as a lambda's type cannot depend on wait
    def _finish(
        self, job: FetchedJob, record: Callable[[GoOn, bool], Any], after: Callable[[], None]
    ) -> FetchedJob | None:
        """Record the job's outcome with `record(go_on, wait)` (an outcome script), run `after`
        (the middlewares and hooks, once the outcome is stored) and return the next job to run,
        which the same round trip started.

        With concurrency 1, the outcome script also reserves the job after that one (lua/lib.lua,
        go_on): when a job ends, its outcome is sent without waiting and the reserved job starts
        at once; the reply, read when that one ends, marks it started and brings the next
        reservation. A worker running short jobs thus never waits for Redis between them (issue
        12). A reserved job is in the worker's in-flight list but still 'queued': a crash gives it
        back without counting against it, a cancel reaches the worker (cancel.lua), and the
        control thread gives it back when the running job runs long (RESERVATION_HOLD).

        When `after` may take time (a hook, a middleware of the user's), the outcome is recorded
        alone, `after` runs, and only then does the next job start (lua/go_on.lua): the next
        job's deadline never runs while a hook does (a slow hook got the worker killed, the
        crash charged to a job that had not started)."""
        if self.concurrency == 1:
            with self._hold:  # against the control thread giving the reservation back meanwhile
                if not self._settle_previous(job):
                    after()
                    return None
        if self.middleware.waits_after(job.name):
            self._with_redis(lambda: record(GoOn([], self.limits), True))
            self._hooks_since = time.monotonic()
            try:
                after()
            finally:
                self._hooks_since = 0.0
            follow = self._go_on(self._go_on_only)
        else:
            follow = self._go_on(record)
            after()
        return follow

    def _settle_previous(self, job: FetchedJob) -> bool:
        """Read the reply of the outcome that started this job (concurrency 1): the reservation
        it made, and this job's attempt. False when the job was canceled or deleted as it started."""
        reply, pending = self._early, self._pending
        self._early = self._pending = None
        if pending is not None:
            reply = self._with_redis(pending)
        if reply is None:
            return True
        if reply.reserved:
            self._reserved = self._job_from_row(reply.reserved)
        if reply.started is None:
            logs.event(
                self.log,
                "job.gone",
                "%s %s [%s] was canceled or deleted as it started; its outcome is not recorded",
                job.name,
                job.id,
                job.queue,
                level=logging.WARNING,
                job_id=job.id,
                queue=job.queue,
            )
            self._give_back_reservation()
            return False
        job.attempt = reply.started
        return True

    def _go_on_only(self, go_on: GoOn, wait: bool) -> Any:
        """Go on as an outcome script would, with no outcome (see _finish)."""
        if not go_on.queues:  # stopping after this job: nothing to start (a reservation is given back)
            return Next(None, None, None)
        return self.transitions.go_on(self.name, self.token, go_on, time.time(), wait=wait)

    def _go_on(self, record: Callable[[GoOn, bool], Any]) -> FetchedJob | None:
        """Send `record` going on with the next job (see _finish); returns that job."""
        go_on = GoOn(self._next_from(), self.limits)
        if self.concurrency > 1:  # pool threads go one job at a time
            return self._job_of(self._with_redis(lambda: record(go_on, True)).row)
        with self._hold:
            if self._reserved is not None and go_on.queues:
                # The reserved job starts before Redis confirms this outcome (which would fence a
                # worker presumed dead): a lease that may have lapsed (a pause without SIGCONT)
                # ends the worker here instead, before it runs a job perhaps given to another.
                self._check_lease_age()
                reserved, self._reserved = self._reserved, None
                go_on.start, go_on.reserve = (reserved.id, reserved.queue), True
                self._pending = self._with_redis(lambda: record(go_on, False))
                return reserved
            go_on.reserve = bool(go_on.queues) and self._reserved is None
            reply = self._with_redis(lambda: record(go_on, True))
            if reply.reserved:
                self._reserved = self._job_from_row(reply.reserved)
            if not go_on.queues:
                self._give_back_reservation()
            return self._job_of(reply.row)

    def _give_back_reservation(self) -> None:
        reserved, self._reserved = self._reserved, None
        if reserved is not None:
            self._with_redis(lambda: self.transitions.release(self.name, reserved.id, reserved.queue, time.time()))

    def _job_of(self, row: Row | None) -> FetchedJob | None:
        return self._job_from_row(row) if row else None

    def _track(self, job: FetchedJob, outcome: str, run_seconds: float, now: float, error: str | None = None) -> None:
        self.tracker.record(
            tracking.AttemptRecord(
                job.id, job.name, job.queue, job.attempt, outcome, run_seconds, now, error, job.args, job.kwargs
            )
        )

    def _output_capture(self, job: FetchedJob) -> Callable[[], AbstractContextManager[object]]:
        """What the job prints and logs, kept with the attempt (joboutput.py), as long as the job."""
        queue = self.queues.get(job.queue)
        ttl = int(max(queue.result_ttl, queue.failure_ttl)) if queue else joboutput.DEFAULT_TTL
        return functools.partial(joboutput.capture, self.connection, job.id, job.attempt, ttl)

    def _leave_if_forked(self) -> None:
        """A job that forked returns into this code in the child too: the child must not go on as
        a second worker under this one's name (issue 11)."""
        if os.getpid() != self.pid:
            os._exit(0)

    def _record_failure(
        self, job: FetchedJob, started: float, exc: BaseException, verdict: str = ""
    ) -> FetchedJob | None:
        """`verdict`: 'dead' (permanent), 'canceled' (stopped), or '' to retry while retries last."""
        run_seconds = time.perf_counter() - started
        queue = self.queues.get(job.queue)
        max_retries = job.max_retries if job.max_retries is not None else (queue.max_retries if queue else 0)
        error = f"{type(exc).__name__}: {exc}"
        retry_at = None
        self._failure_callback(job, exc, verdict)
        if not verdict and job.rq.retries_left is not None:  # RQ's own Retry wins over the queue's retries
            delay = job.rq.retry_delay()
            verdict, retry_at = ("retry", time.time() + delay) if delay is not None else ("dead", None)
        if not verdict:
            if job.attempt <= max_retries and queue is not None:
                retry_at = time.time() + retries.retry_delay(job.name, queue, job.attempt, exc, self.log, job.id)
                verdict = "retry"
            else:
                verdict = "dead"
        if verdict == "canceled":
            reason = "canceled while running"
        elif retry_at is None and isinstance(exc, (PermanentError, ResultError)):
            reason = f"permanent error: {error}"
        else:
            reason = f"failed {job.attempt} time{'s' if job.attempt > 1 else ''}: {error}"
        now = time.time()
        entry = {"attempt": job.attempt, "at": now, "error": error, "worker": self.name}
        exc_info = zlib.compress("".join(traceback.format_exception(exc)).encode())
        follow = self._finish(
            job,
            lambda go_on, wait: self.transitions.fail(
                job.id,
                job.queue,
                self.name,
                job.attempt,
                now,
                verdict=verdict,
                retry_at=retry_at,
                error_entry=entry,
                exc_info=exc_info,
                reason=reason,
                go_on=go_on,
                wait=wait,
            ),
            functools.partial(self._after_failure, job, exc, retry_at, verdict, run_seconds),
        )
        self._track(job, {"retry": "retried", "dead": "dead", "canceled": "canceled"}[verdict], run_seconds, now, error)
        fields: dict[str, Any] = {
            "job_id": job.id,
            "job": job.name,
            "queue": job.queue,
            "duration": round(run_seconds, 6),
            "attempt": job.attempt,
            "error": error,
        }
        if retry_at is not None:  # verdict 'retry'
            retry_in = retry_at - time.time()
            # the attempts allowed by the rule that chose this retry: RQ's own Retry (the retries
            # it had left at this attempt's start), or the job's or queue's max_retries
            own_retries = job.rq.retries_left
            allowed = job.attempt + own_retries if own_retries is not None else max_retries + 1
            logs.event(
                self.log,
                "job.retry",
                "%s %s [%s] failed (attempt %d of %d), retry in %.1fs: %s",
                job.name,
                job.id,
                job.queue,
                job.attempt,
                allowed,
                retry_in,
                error,
                outcome="retried",
                retry_in=round(retry_in, 3),
                **fields,
            )
        else:
            logs.event(
                self.log,
                f"job.{verdict}",
                "%s %s [%s] %s: %s",
                job.name,
                job.id,
                job.queue,
                verdict,
                error,
                level=logging.WARNING,
                outcome=verdict,
                **fields,
            )
        return follow

    def _after_failure(
        self, job: FetchedJob, exc: BaseException, retry_at: float | None, verdict: str, run_seconds: float
    ) -> None:
        self.middleware.after_attempt(job.info, None, exc, run_seconds)
        if retry_at is not None:  # verdict 'retry'
            self.middleware.on_retry(job.info, exc, max(retry_at - time.time(), 0.0))
        elif verdict == "dead":
            self.middleware.on_dead(job.info, exc)

    def _failure_callback(self, job: FetchedJob, exc: BaseException, verdict: str) -> None:
        """RQ's on_stopped(job, connection) for a stopped job, else on_failure(job, connection, type,
        value, traceback), as RQ calls them on every failed attempt."""
        if verdict == "canceled" and job.rq.on_stopped:
            rq_compat.run_callback("on_stopped", job.rq.on_stopped, job.id, self.connection, (), self.log)
        elif verdict != "canceled" and job.rq.on_failure:
            rq_compat.run_callback(
                "on_failure", job.rq.on_failure, job.id, self.connection, (type(exc), exc, exc.__traceback__), self.log
            )

    def _progress_reporter(self, job_id: str) -> Callable[[float, str | None], None]:
        def report(percent: float, message: str | None) -> None:
            fields: dict[FieldT, EncodableT] = {"jobctl_progress": percent, "jobctl_progress_message": message or ""}
            try:
                # the connection does not decode replies: bytes, which redis-py's types do not know
                raw_meta = self.connection.hget(keys.job(job_id), "meta")
                if meta := rq_compat.meta_with_progress(raw_meta, percent):  # type: ignore[arg-type]
                    fields["meta"] = meta
                self.connection.hset(keys.job(job_id), mapping=fields)
            except redis.RedisError:
                pass  # progress is advisory; never fail a job because it could not be shown

        return report


class ResourceUsage:
    """CPU use since the last sample (percent of one core) and resident memory, of this process."""

    def __init__(self) -> None:
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
