"""`jobctl work`: start the configured worker processes, keep them running, stop them cleanly.

The supervisor forks `worker_count` long-lived worker processes per queue and then, a few
times a second: reaps workers that exited (giving back the job a crashed one held, and starting
a replacement), promotes scheduled and retry-delayed jobs whose time has come, and every few
seconds recovers the in-flight jobs of workers on any host whose heartbeat lapsed.

Elastic queues (`worker_count: 2..10`): once a second the supervisor adds a worker to a queue
whose oldest job waited longer than `scale_up_latency` or whose queued jobs per worker exceed
`scale_up_backlog`, up to the range's top; and retires, one at a time down to the bottom, a
worker idle for `scale_down_idle`. A worker is retired as a stop is asked (SIGTERM): it takes
no new job, finishes any it started meanwhile, gives back the job it had reserved, and exits;
nothing it held counts as a crash. Each supervisor scales only its own workers, within its
own range, from what it reads in Redis (see Pool, in scaling.py).

Shutdown (SIGTERM/SIGINT): workers stop fetching and finish their job; after
`shutdown_timeout` the rest are killed and their jobs go back to the front of their queues.
A second signal means now. Nothing is dropped either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TypeVar, cast

from .. import logs
from ..api import batches
from ..api.client import DefaultQueues
from ..config.queues import QueueConfig, QueuesConfig
from ..config.settings import StatsdTarget
from ..errors import ConfigError
from ..options.liveness import DEFAULT_LEASE_TTL, heartbeat_interval
from ..store import keys, scripts
from ..store.connection import RedisOutage, connect
from ..store.locate import known_queues
from ..store.transitions import Transitions
from .lease import EXIT_FENCED
from .leasekill import die_with_parent
from .scaling import SCALE_EVERY, Pool, Scaler, Slot, _signal
from .worker import EXIT_RECYCLE, Worker

TICK = 0.2  # seconds between supervision passes: bounds how late a scheduled job starts
MAX_SWEEP_EVERY = 5.0  # seconds between looks for workers lost on other hosts, at most
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
QUICK_DEATH = 1.0  # a worker dying this soon after its start, again and again, is restarted ever more slowly
MAX_RESTART_DELAY = 5.0
BURST_HORIZON = 60.0  # in --burst, wait for retries due this soon before exiting
PROMOTER_LEASE_MS = 2000  # a promoter that vanished is replaced within this long

T = TypeVar("T")


@dataclass
class Supervisor:
    """`queues`: the queues to serve. Each gets `worker_count` workers of its own; with `shared`,
    the workers (as many as their worker_counts add up to) serve all the queues together, in
    priority order or, where weights are set, by weighted random choice (Sidekiq-style)."""

    url: str
    queues: list[QueueConfig]
    burst: bool = False
    shared: bool = False
    config: QueuesConfig | None = None  # every queue, for the enqueues of the jobs run (jobctl.Client)
    lease_ttl: int = DEFAULT_LEASE_TTL  # the liveness window (options/liveness.py), its workers' too
    statsd: StatsdTarget | None = None  # where its workers send StatsD metrics
    name: str = field(default_factory=lambda: f"{socket.gethostname()}.{os.getpid()}")

    def __post_init__(self) -> None:
        self.log = logs.get()
        self.pools = [Pool(list(self.queues))] if self.shared else [Pool([q]) for q in self.queues]
        self.slots = [Slot(pool) for pool in self.pools for _ in range(pool.minimum)]
        self.stop_requested = 0.0  # monotonic time of the first stop signal, 0 while running
        self.kill_now = False
        self.outage = RedisOutage(self.log, f"supervisor {self.name}", self.url)
        self._last_trouble = ""
        self._next_promote_try = 0.0

    # --- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        # set here, not in __post_init__: constructing a Supervisor touches no Redis
        self.connection = connect(self.url)
        self.transitions = Transitions(self.connection)
        self.layout = self.transitions.layout
        if self.layout.cluster and any(q.engine == "rq" for q in self.queues):
            raise ConfigError("engine: rq queues cannot run on a Redis Cluster: RQ's workers do not support one")
        scripts.preload()  # once here, not in every forked worker
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        self._wake_on_signals()
        counts = ", ".join(f"{q.name}={q.worker_count}" for q in self.queues)
        if self.shared:
            counts = f"{len(self.slots)} serving {counts}"
        logs.event(
            self.log,
            "supervisor.started",
            "supervisor %s: starting workers (%s)%s",
            self.name,
            counts,
            " in burst mode" if self.burst else "",
            supervisor=self.name,
            burst=self.burst,
        )
        next_sweep = next_overrun_check = next_scale = 0.0
        elastic = any(pool.elastic for pool in self.pools)
        while True:
            self._reap()
            if self.stop_requested:
                if not self._alive():
                    break
                self._enforce_shutdown_deadline()
            else:
                # each duty is _guarded only when due, so that a try that worked has reached Redis
                # (a duty with nothing to do said "Redis is back" during an outage)
                if elastic and time.monotonic() >= next_scale:
                    self._guarded(lambda: Scaler(self.connection, self.pools, self.slots, self.log, self.name).scale())
                    next_scale = time.monotonic() + SCALE_EVERY
                self._start_missing()
                if time.monotonic() >= self._next_promote_try:
                    self._guarded(self._promote)
                if time.monotonic() >= next_sweep:
                    self._guarded(self._sweep)
                    next_sweep = time.monotonic() + min(MAX_SWEEP_EVERY, heartbeat_interval(self.lease_ttl))
                if time.monotonic() >= next_overrun_check and self._alive():
                    self._guarded(self._kill_overruns)
                    next_overrun_check = time.monotonic() + 1
                if self.burst and self._guarded(self._drained):
                    self.log.info("supervisor %s: queues drained, stopping (burst)", self.name)
                    self._begin_stop()
            self._sleep(TICK)
        self._guarded(lambda: self.connection.zrem(keys.SUPERVISORS, self.name))
        self._guarded(lambda: self._promote_each(0))  # hand promotion over at once
        logs.event(self.log, "supervisor.stopped", "supervisor %s: stopped", self.name, supervisor=self.name)
        return 0

    def _wake_on_signals(self) -> None:
        """A worker's exit (SIGCHLD), a stop signal or a recycled worker leaving ends the
        supervisor's sleep at once: a recycled worker is replaced, and a crashed one's jobs go
        back, without waiting for the next tick (with the default max_jobs, waiting for it cost
        ~10% of throughput: bench/throughput.py)."""
        self._wakeup, self._leavers = os.pipe(), os.pipe()
        for fd in (*self._wakeup, *self._leavers):
            os.set_blocking(fd, False)  # a worker never waits on a supervisor that does not read
        signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # a handler, so that it reaches the pipe

    def _sleep(self, seconds: float) -> None:
        ready = select.select([self._wakeup[0], self._leavers[0]], [], [], seconds)[0]
        if self._wakeup[0] in ready:
            _drain(self._wakeup[0])
        if self._leavers[0] in ready:  # pids; anything else (a job may write to any fd) is skipped
            self._hand_over([int(pid) for pid in _drain(self._leavers[0]).split() if pid.isdigit()])

    def _announce_leaving(self) -> None:
        """A worker's on_leaving, run in the worker: its pid on the supervisor's pipe (one write
        of a few bytes, atomic). Pipe full: its successor starts when it exits, as before; closed
        (the supervisor is gone): nothing to tell."""
        with contextlib.suppress(OSError):
            os.write(self._leavers[1], f"{os.getpid()} ".encode())

    def _hand_over(self, pids: list[int]) -> None:
        """A recycled worker has finished its jobs and given back what it reserved: its slot
        starts a successor now, while it flushes and exits (a copy of the slot, retiring, watches
        it until it does: its exit, or a crash, is handled as a retired worker's)."""
        if self.stop_requested:
            return
        for pid in pids:
            slot = next((s for s in self.slots if s.pid == pid and not s.retiring), None)
            if slot is None:  # gone meanwhile, or being retired already
                continue
            self.slots.append(dataclasses.replace(slot, retiring=True, culprits=list(slot.culprits)))
            slot.pid, slot.worker_name, slot.killed_for, slot.culprits = None, "", "", []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            self.log.warning("supervisor %s: second signal, stopping workers now", self.name)
            self.kill_now = True
        else:
            self.log.info("supervisor %s: %s, finishing running jobs", self.name, signal.Signals(signum).name)
            self._begin_stop()

    def _begin_stop(self) -> None:
        self.stop_requested = time.monotonic()
        for slot in self.slots:
            if slot.pid:
                _signal(slot.pid, signal.SIGTERM)

    def _enforce_shutdown_deadline(self) -> None:
        for slot in self.slots:
            if slot.pid and (self.kill_now or time.monotonic() - self.stop_requested > slot.shutdown_timeout):
                self.log.warning(
                    "supervisor %s: killing worker %s, its job goes back to the queue", self.name, slot.worker_name
                )
                _signal(slot.pid, signal.SIGKILL)

    def _alive(self) -> bool:
        return any(slot.pid for slot in self.slots)

    def _guarded(self, action: Callable[[], T]) -> T | None:
        """Supervision goes on whatever a periodic duty meets (Redis away or out of memory, a
        record it cannot handle): workers keep running, jobs wait, one log line per trouble.
        Once stopping, a supervisor that last found Redis away does not try again: a try can
        take seconds on a Redis Cluster (its client looks for the nodes again), and what it
        would do follows anyway (a sweep gives back what its workers held once their leases
        lapse, its promotion lease lapses, readers drop its stale registration)."""
        if self.stop_requested and self.outage.failures:
            return None
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any one failure
            if RedisOutage.covers(exc):
                self.outage.failed(exc)  # the supervisor's tick paces its tries
                return None
            trouble = f"{type(exc).__name__}: {exc}"
            if trouble != self._last_trouble:
                self.log.error(
                    "supervisor %s: %s failed (%s); going on", self.name, getattr(action, "__name__", "a duty"), trouble
                )
                self._last_trouble = trouble
            return None
        self.outage.ok()
        self._last_trouble = ""
        return result

    # --- worker processes --------------------------------------------------------------------

    def _start_missing(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and now >= slot.restart_at:
                self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        # Stop signals wait until the new worker has its own handlers: delivered in between, they
        # would run the supervisor's handler in the child and be lost.
        # Signals members, as rq_engine.run takes them (typeshed also allows ints: signals without a name)
        previous_mask = cast("set[signal.Signals]", signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS))
        supervisor_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN, ENOMEM: try again later, the other workers go on
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            self.log.error("supervisor %s: cannot start a worker for %s (%s); retrying", self.name, slot.label, exc)
            slot.restart_at = time.monotonic() + MAX_RESTART_DELAY
            return
        if pid == 0:  # the worker process
            code = 1
            try:
                die_with_parent(supervisor_pid)
                signal.set_wakeup_fd(-1)
                for fd in (*self._wakeup, self._leavers[0]):
                    os.close(fd)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a job's own children are its business
                if slot.queues[0].engine == "rq":  # RQ's own worker serves the queue (rq_engine.py)
                    # imported only here: jobctl's workers do without rq
                    from . import rq_engine

                    os._exit(rq_engine.run(self.url, slot.queues, max_jobs=slot.max_jobs, signal_mask=previous_mask))
                worker = Worker(
                    connect(self.url, check=False),
                    slot.queues,
                    supervisor=self.name,
                    max_jobs=slot.max_jobs,
                    max_memory=slot.max_memory,
                    concurrency=slot.concurrency,
                    url=self.url,
                    config=self.config,
                    kill_past_lease=True,
                    lease_ttl=self.lease_ttl,
                    statsd=self.statsd,
                    on_leaving=self._announce_leaving,
                )
                worker.handle_stop_signals()
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
                code = worker.run()
            except BaseException as exc:  # noqa: BLE001 - a worker must never return into the supervisor's loop
                logs.get().error("worker %s: stopped by %s: %s", os.getpid(), type(exc).__name__, exc)
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        slot.pid, slot.started = pid, time.monotonic()
        slot.worker_name = f"{socket.gethostname()}.{pid}"
        slot.idle_since, slot.activity = slot.started, ()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._worker_exited(slot, status)

    def _worker_exited(self, slot: Slot, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        # A worker ends by itself only to be recycled, or after a stop the supervisor asked for:
        # any other exit, status 0 included (a job that called os._exit(0)), is a crash.
        clean = code == EXIT_RECYCLE or (code == 0 and (bool(self.stop_requested) or slot.retiring))
        how = slot.killed_for or _describe_exit(code)
        culprits, slot.killed_for, slot.culprits = slot.culprits, "", []
        crashed = not clean and not self.stop_requested
        if not clean and slot.queues[0].engine == "rq":  # its job goes back RQ's way; recover() below unregisters it
            # imported only here: jobctl's workers do without rq
            from . import rq_engine

            self._guarded(lambda: rq_engine.give_back(self.connection, slot.worker_name, slot.queues, how))
        outcome = self._guarded(lambda: self._recover(slot, "crash" if crashed else "shutdown", how, culprits))
        if crashed:
            requeued, buried = outcome or (0, 0)
            logs.event(
                self.log,
                "worker.died",
                "worker %s (%s): %s; requeued %d job(s), %d dead after repeated crashes; %s",
                slot.worker_name,
                slot.label,
                how,
                requeued,
                buried,
                "not restarting it (it was retired or replaced already)" if slot.retiring else "restarting it",
                level=logging.WARNING,
                worker=slot.worker_name,
                queue=slot.label,
                how=how,
                requeued=requeued,
                buried=buried,
            )
        # If Redis was away, the worker's in-flight list stays, and a sweep recovers it once its
        # lease has lapsed.
        if slot.retiring:  # scaled down, or replaced already (_hand_over): its place goes with it
            self.slots.remove(slot)
            return
        lived = time.monotonic() - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if crashed and lived < QUICK_DEATH else 0
        slot.restart_at = (
            time.monotonic() + min(0.1 * 2 ** (slot.quick_deaths - 1), MAX_RESTART_DELAY) if slot.quick_deaths else 0
        )
        slot.pid = None

    # --- periodic duties ---------------------------------------------------------------------

    def _promote(self) -> None:
        """Every tick while this supervisor is the promoter; else a try to take over each second."""
        moved = self._promote_each(PROMOTER_LEASE_MS)
        self._next_promote_try = 0.0 if moved is not None else time.monotonic() + 1.0
        if moved is not None:  # the promoter also stores the callbacks of batches completed
            batches.enqueue_due(
                self.connection, self.config or DefaultQueues("(no queue.yml: the defaults)"), self.name
            )

    def _kill_overruns(self) -> None:
        """A job that ignores its timeout or a stop request (stuck in C code, or in a blocking
        call in a thread) takes its worker with it; the other jobs that worker held go back to
        their queues without it counting against them."""
        by_name = {slot.worker_name: slot for slot in self.slots if slot.pid and slot.worker_name}
        killed: set[str] = set()
        late_jobs = [
            found
            for queue in self._each_queue()
            for found in self.transitions.overdue(
                [name for name, slot in by_name.items() if queue in self._homes(slot.queues)], time.time(), queue
            )
        ]
        for worker, job_id, late in late_jobs:
            slot = by_name[worker]
            slot.culprits.append(job_id)
            if worker not in killed:
                killed.add(worker)
                self.log.warning(
                    "supervisor %s: job %s on worker %s is %.0fs past its deadline; killing the worker",
                    self.name,
                    job_id,
                    worker,
                    late,
                )
                slot.killed_for = "worker killed after the job ignored its timeout"
                assert slot.pid is not None  # by_name holds running workers only
                _signal(slot.pid, signal.SIGKILL)

    def _sweep(self) -> None:
        """Heartbeat; recover the jobs of workers (on any host) whose lease lapsed; delete ended
        jobs past their ttl (lua/sweep.lua, one round trip)."""
        now = time.time()
        self.connection.zadd(keys.SUPERVISORS, {self.name: now})
        own = [slot.worker_name for slot in self.slots if slot.pid]  # alive: reaped, not swept
        swept = [
            self.transitions.sweep(
                own, [queue] if queue else [q.name for q in self.queues], now, crash_limit=QueueConfig.crash_limit
            )
            for queue in self._each_queue()
        ]
        lost, requeued, buried = (sum(counts[i] for counts in swept) for i in range(3))
        if requeued or buried:
            self.log.warning(
                "supervisor %s: %d worker(s) stopped heartbeating (> %ss); requeued %d job(s), %d dead",
                self.name,
                lost,
                self.lease_ttl,
                requeued,
                buried,
            )

    def _drained(self) -> bool:
        horizon = time.time() + BURST_HORIZON
        layout = self.layout
        with self.connection.pipeline(transaction=not layout.cluster) as pipe:
            for queue in self.queues:
                pipe.llen(layout.queue(queue.name))
                pipe.zcount(layout.scheduled(queue.name), "-inf", horizon)
                pipe.zcard(layout.started(queue.name))  # RQ's workers keep no in-flight list
            for slot in self.slots:
                if slot.worker_name:
                    for home in self._homes(slot.queues):
                        pipe.llen(layout.active(slot.worker_name, home))
            return not any(pipe.execute())

    def _recover(self, slot: Slot, cause: str, how: str, culprits: list[str]) -> tuple[int, int]:
        """Give back what a gone worker held (one call per queue on a cluster): (requeued, buried)."""
        requeued = buried = 0
        for home in self._homes(slot.queues):
            back, dead = self.transitions.recover(
                slot.worker_name,
                time.time(),
                cause=cause,
                crash_limit=QueueConfig.crash_limit,
                how=how,
                culprits=culprits,
                queue=home,
            )
            requeued, buried = requeued + back, buried + dead
        return requeued, buried

    def _homes(self, queues: list[QueueConfig]) -> list[str]:
        """The queues whose slots hold a worker's keys on a cluster (worker.py, homes); on one
        Redis one set of keys ('')."""
        return [q.name for q in queues] if self.layout.cluster else [""]

    def _each_queue(self) -> list[str]:
        """The queues the per-queue duties (promotion, sweep, overruns) go over one call each: on
        one Redis, one call covers them all ('')."""
        if not self.layout.cluster:
            return [""]
        return known_queues(self.connection, [q.name for q in self.queues])

    def _promote_each(self, lease_ms: int) -> int | None:
        """Promote every queue (Transitions.promote_queues): the jobs moved, or None when another
        supervisor is the promoter of every one."""
        return self.transitions.promote_queues(self.name, lease_ms, time.time(), self._each_queue())


def _drain(fd: int) -> bytes:
    """All a non-blocking pipe holds."""
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 512):
            chunks.append(chunk)
    return b"".join(chunks)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"worker killed by signal {-code} ({signal.Signals(-code).name})"
    if code == EXIT_FENCED:
        return "worker lost its lease (frozen, or cut off from Redis)"
    return f"worker exited (status {code})"
