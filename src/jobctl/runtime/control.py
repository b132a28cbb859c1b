"""A worker's control thread: it renews the lease (heartbeat, lease.py), hears wake-ups, pause
changes and stop commands on pub/sub, interrupts jobs past their timeout in pool threads, gives
back the job reserved behind one that runs long (reservation.py), and flushes job tracking."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any

import redis

from ..errors import JobStopped, LeaseLost
from ..options.liveness import heartbeat_interval
from ..store import keys
from ..store.connection import REDIS_ERRORS
from ..store.jobdata import rq_time
from ..store.transitions import Transitions
from . import tracking
from .executor import Executor, Running
from .lease import Lease
from .reservation import Reservation
from .tracking import Tracker

CONTROL_TICK = 0.1  # how often the control thread checks pool threads' timeouts and memory
_ENDED = json.dumps({"command": "ended"})  # wake()'s message: the worker's run() has returned


class Control:
    def __init__(
        self,
        connection: redis.Redis,
        transitions: Transitions,
        queues: list[str],
        lease: Lease,
        executor: Executor,
        tracker: Tracker,
        reservation: Reservation,
        concurrency: int,
        log: logging.Logger,
    ):
        self.connection, self.transitions, self.queues = connection, transitions, queues
        self.lease, self.executor, self.tracker, self.reservation = lease, executor, tracker, reservation
        self.concurrency, self.log = concurrency, log
        self.worker = lease.worker
        self.running: dict[str, Running] = {}  # the jobs in flight, by id
        self.suspended = False  # `rq suspend`: take no new job until `rq resume`
        # `jobctl pause`d queues, not fetched from: looked at on start, when pause or resume
        # publishes, and once a second, instead of in every fetch script (a command per job)
        self.paused: frozenset[str] = frozenset()
        self.woken = threading.Event()  # a job may be waiting, or a slot was freed, or a stop asked
        self.ended = threading.Event()  # the worker's run() has returned: the control thread ends too
        self._stop_early: dict[str, float] = {}  # stop requests for jobs not running (yet): id -> when
        self._starting = threading.Lock()  # a stop request against the start of its job

    def begin(self, job_id: str, timeout: float) -> tuple[Running, bool]:
        """A job starts in this thread: its Running, and whether it was asked to stop already."""
        with self._starting:
            running = self.running[job_id] = Running(job_id, timeout)
            return running, self._stop_early.pop(job_id, None) is not None

    def end(self, job_id: str) -> None:
        self.running.pop(job_id, None)

    def wake(self) -> None:
        """Set `ended` and cut short the thread's wait on pub/sub, by a message on the worker's own
        channel that it ignores: the worker's run() waits for this thread to end, its slot empty
        meanwhile, and a recycled worker ends every `max_jobs` jobs (the wait up to CONTROL_TICK
        came to about a fifth of its life on bench/throughput.py)."""
        self.ended.set()
        with contextlib.suppress(*REDIS_ERRORS):  # else the thread sees `ended` after its tick
            self.connection.publish(keys.commands(self.worker), _ENDED)

    def run(self) -> None:
        """The thread: until the worker's run() returns."""
        usage = ResourceUsage()
        pubsub: redis.client.PubSub | None = None
        next_heartbeat = time.monotonic() + heartbeat_interval(self.lease.ttl)
        next_flush = 0.0
        while not self.ended.is_set():
            self.lease.check_age()
            try:
                if pubsub is None:
                    pubsub = self.connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in redis-py 8
                    pubsub.subscribe(keys.commands(self.worker), *(keys.wake(q) for q in self.queues))
                    self.woken.set()  # a wake-up may have been missed while unsubscribed
                message = pubsub.get_message(timeout=CONTROL_TICK)
                while message is not None:
                    self._on_message(message)
                    message = pubsub.get_message(timeout=0)
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + heartbeat_interval(self.lease.ttl)
                    self._heartbeat(*usage.sample())
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + tracking.FLUSH_INTERVAL
                    # looked at first: the state flushed (idle or suspended, for RQ's readers) is
                    # the one just seen, not the one of a second before
                    self.check_pauses()
                    self.flush()
                # in the try: a Redis drop while a job runs long must not end the control thread
                # (no more heartbeats, stops or pool timeouts for the rest of the job)
                self._release_if_running_long()
            except REDIS_ERRORS:
                # the dispatcher reports outages; the lease's age decides when to give up
                if pubsub is not None:
                    pubsub.close()
                pubsub = None
                time.sleep(CONTROL_TICK)
            self.executor.interrupt_overdue(list(self.running.values()))
        if pubsub is not None:
            pubsub.close()

    def check_pauses(self) -> None:
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
                "worker %s: %s", self.worker, "suspended (rq suspend): taking no new job" if suspended else "resumed"
            )
            self.suspended = suspended
            self.woken.set()

    def flush(self) -> None:
        """Job tracking and the worker's state, for views and RQ's readers (tracking.py)."""
        tracking.flush(self.tracker, self.transitions, list(self.running), self.suspended)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if channel != keys.commands(self.worker):  # a job landed on an empty queue, or pauses changed
            if message["data"] == keys.PAUSES_CHANGED.encode():
                self.check_pauses()
            self.woken.set()
            return
        try:
            command = json.loads(message["data"])
        except ValueError:
            return
        if isinstance(command, dict) and command.get("command") == "stop-job":  # _ENDED asks nothing
            self._stop(str(command.get("job_id")))

    def _heartbeat(self, cpu_percent: float, rss: int) -> None:
        renewing = time.monotonic()
        try:
            # one lease per queue on a cluster (each in its queue's slot)
            to_stop = [
                job_id
                for home in self.tracker.homes
                for job_id in self.transitions.heartbeat(
                    self.worker, self.lease.token, rq_time(time.time()), self.lease.ttl, cpu_percent, rss, home
                )
            ]
        except LeaseLost:
            self.lease.taken()
        self.lease.renewed(renewing)
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
        self.log.info("worker %s: stopping job %s at an operator's request", self.worker, job_id)
        self.executor.interrupt(running, JobStopped)

    def _release_if_running_long(self) -> None:
        """With concurrency 1, the main thread's job or its hooks run long: give back the job
        reserved behind it (reservation.py)."""
        if self.concurrency != 1:
            return
        running = next(iter(list(self.running.values())), None)
        self.reservation.release_if_running_long(running.since if running is not None else 0.0)


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
