"""A worker's lease, and fencing.

The lease is a token in the worker's expiring hash (`JOBCTL_LEASE_TTL`, options/liveness.py),
renewed by the control thread's heartbeat. Every script the worker calls checks it, so a worker
presumed dead writes nothing; and the worker ends itself (exit EXIT_FENCED) as soon as it sees it
lost the lease, or could not renew it for its lifetime: a frozen or cut-off worker never finishes
a job that has been given to another. A worker frozen past its lease is killed by the kernel
while still frozen (leasekill.py): on Linux it runs no instruction of a job after its lease
lapsed, whichever thread runs the job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import NoReturn, TypeVar, cast

from .. import logs
from ..errors import LeaseLost
from ..store.connection import REDIS_ERRORS, RedisOutage
from .leasekill import LeaseKill

# The kernel kills the worker (leasekill.py), frozen or not, this long before its lease could
# lapse in Redis: the lease's start is taken before Redis receives the renewal, and this covers
# the two clocks running at slightly different rates (NTP slews a clock by up to 0.05 %). A test
# that woke a frozen worker as soon as Redis showed its lease gone caught it alive with no margin.
KILL_EARLY = 0.25
# The worker fences itself (exit EXIT_FENCED, with a log line) earlier still, when it can.
FENCE_EARLY = 2 * KILL_EARLY

EXIT_FENCED = 101  # the lease was lost: this worker's jobs are (or will be) recovered elsewhere

T = TypeVar("T")

_NEVER = threading.Event()  # call()'s: it waits out any outage


class Lease:
    def __init__(self, worker: str, log: logging.Logger, url: str, ttl: int):
        """`ttl`: the lease's lifetime in seconds (options/liveness.py)."""
        self.worker, self.log, self.ttl = worker, log, ttl
        self.token = uuid.uuid4().hex
        self.outage = RedisOutage(log, f"worker {worker}", url)
        self.kill: LeaseKill | None = None  # the kernel's timer, for a process that is nothing but the worker
        self._renewed = 0.0  # monotonic time of the latest renewal

    def renewed(self, at: float) -> None:
        """The lease was renewed at `at` (monotonic, taken before the renewal was sent)."""
        self._renewed = at
        if self.kill is not None:
            self.kill.arm(at + self.ttl - KILL_EARLY - time.monotonic())

    def check_age(self) -> None:
        """Fence when the lease may have lapsed (renewed too long ago)."""
        if self._renewed and time.monotonic() - self._renewed > self.ttl - FENCE_EARLY:
            self.fence(f"its lease was not renewed for {self.ttl - FENCE_EARLY:g}s (frozen, or cut off from Redis)")

    def fence(self, why: str) -> NoReturn:
        """Another supervisor may already have given this worker's jobs to other workers: end at
        once, without running another instruction of them."""
        logs.event(
            self.log,
            "worker.fenced",
            "worker %s: %s; exiting, its jobs are recovered elsewhere",
            self.worker,
            why,
            level=logging.WARNING,
            worker=self.worker,
        )
        logging.shutdown()
        os._exit(EXIT_FENCED)

    def taken(self) -> NoReturn:
        self.fence("its lease was taken (presumed dead)")

    def call(self, action: Callable[[], T]) -> T:
        """Run a Redis action of the worker's, waiting out an outage (connection.RedisOutage);
        a script that found the lease gone fences the worker.

        Outcomes of finished jobs are written this way too, so a job that ended while Redis was
        briefly away has its result stored once Redis returns (a longer outage ends the lease)."""
        return cast("T", self.call_unless(_NEVER, action))

    def call_unless(self, stopped: threading.Event, action: Callable[[], T]) -> T | None:
        """call(), giving up (None) once `stopped` is set and a try failed: for what a worker asked
        to stop need not wait out an outage for (its next fetch, its last flush, giving its jobs
        back: the supervisor, or a sweep once the lease lapses, gives them back). A stop during an
        outage ends the worker at once, not when Redis returns or the lease ends it
        (test_a_worker_asked_to_stop_during_an_outage_stops_without_redis). Once stopped, a
        worker whose last try failed makes no other: on a Redis Cluster a try can take seconds
        (its client looks for the nodes again)."""
        while True:
            if stopped.is_set() and self.outage.failures:
                return None
            try:
                result = action()
            except LeaseLost:
                self.taken()
            except REDIS_ERRORS as exc:
                if not RedisOutage.covers(exc):
                    raise
                stopped.wait(self.outage.failed(exc))
                if stopped.is_set():
                    return None
                continue
            self.outage.ok()
            return result
