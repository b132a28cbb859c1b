"""How a job's outcome is stored and the worker's next job started, in one round trip; with
concurrency 1, the reservation protocol; with more, outcomes recorded together (Together).

An outcome script (lua/succeed.lua, lua/fail.lua) also starts the job the thread runs next (lua/
lib.lua, go_on). With concurrency 1 it also keeps up to `prefetch` jobs reserved behind that one
(queue.yml): when a job ends, its outcome is sent without waiting and the first reserved job
starts at once; the reply, read when that one ends, marks it started and brings the next
reservations. A worker running short jobs thus never waits for Redis between them
(bench/throughput.py). A reserved job is in the worker's in-flight list but still 'queued': a
crash gives it back without counting against it, a stop gives it back, a cancel reaches the worker
(cancel.lua), and the control thread gives the reservations back (lua/release.lua) once the running
job, or the hooks after it, have run RESERVATION_HOLD: another worker may start them sooner. A
reserved job holds none of its limits (a concurrency slot, a rate window entry, a breaker's trial)
and has no deadline: both begin when it starts. So a reserved job with limits is started waiting
for the reply, which says whether its limits let it (else it waits in the scheduled set and the
worker goes on without it); one without any starts before the reply, as above.

When what runs after an outcome may take time (a hook, a middleware of the user's:
middleware.base.Chain.waits_after), the outcome is stored alone, the hooks run, and only then
does the next job start (lua/go_on.lua): the next job's deadline never runs while a hook does (a
slow hook got the worker killed, the crash charged to a job that had not started).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from .. import logs
from ..config.limits import may_hold_back
from ..errors import LeaseLost
from ..store.transitions import Finished, GoOn, Next, Row, Transitions
from .fetched import FetchedJob, job_from_row, job_of
from .lease import Lease

RESERVATION_HOLD = 0.05

# record(go_on, wait): Transitions.succeed or fail, bound to the job; with wait it returns the
# reply (Next), without a function that reads it: Any, as a lambda's type cannot depend on wait
Record = Callable[[GoOn, bool], Any]


class Reservation:
    def __init__(
        self,
        transitions: Transitions,
        lease: Lease,
        limits: dict[str, str],
        concurrency: int,
        next_from: Callable[[], list[str]],
        log: logging.Logger,
        heard: Callable[[Next], Next] = lambda reply: reply,
        prefetch: int = 1,
    ):
        """`next_from()`: the queues to start the thread's next job from (none: stop after this one);
        `heard(reply)`: what the worker does with an outcome's reply read (logs its breaker lines);
        `prefetch`: with concurrency 1, how many jobs to keep reserved."""
        self.transitions, self.lease, self.limits, self.log = transitions, lease, limits, log
        self.worker = lease.worker
        self.concurrency, self.next_from = concurrency, next_from
        self.prefetch = prefetch if concurrency == 1 else 0
        # concurrency 1: the jobs reserved to run next, in order, the reply of the outcome sent
        # last (unread), or that reply read early by the control thread when it gave back the
        # reservations; _hold guards them between the main and control threads.
        self._reserved: deque[FetchedJob] = deque()
        self._pending: Callable[[], Next] | None = None
        self._early: Next | None = None
        self._hold = threading.Lock()
        self._hooks_since = 0.0  # monotonic: when the hooks of the job that just ended began (0: none run)
        self._together = Together(transitions, lease, limits, heard)

    def finish(
        self,
        job: FetchedJob,
        record: Record,
        after: Callable[[], None],
        waits: bool,
        finished: Finished | None = None,
    ) -> FetchedJob | None:
        """Store the job's outcome with `record`, run `after` (the middlewares, once the outcome
        is stored; `waits`: they may take time) and return the next job to run, which the same
        round trip started. `finished`: the job succeeded, which a pool thread may record
        together with other threads' successes (Together)."""
        if self.concurrency == 1:
            with self._hold:  # against the control thread giving the reservation back meanwhile
                if not self._settle_previous(job):
                    after()
                    return None
        if not waits:
            if finished is not None and self.concurrency > 1:
                follow = self._together.finish(finished, self.next_from())
            else:
                follow = self._go_on(record)
            after()
            return follow
        self.lease.call(lambda: record(GoOn([], self.limits), True))
        self._hooks_since = time.monotonic()
        try:
            after()
        finally:
            self._hooks_since = 0.0
        return self._go_on(self._go_on_only)

    def _settle_previous(self, job: FetchedJob) -> bool:
        """Read the reply of the outcome that started this job (concurrency 1): the reservation
        it made, and this job's attempt. False when the job was canceled or deleted as it started."""
        reply, pending = self._early, self._pending
        self._early = self._pending = None
        if pending is not None:
            reply = self.lease.call(pending)
        if reply is None:
            return True
        self._reserved.extend(map(job_from_row, reply.reserved))
        if not reply.started:  # its limits cannot hold back a job started before the reply (_limited)
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
            self.give_back()
            return False
        job.attempt = reply.started
        return True

    def _go_on_only(self, go_on: GoOn, wait: bool) -> Any:
        """Go on as an outcome script would, with no outcome (the hooks ran in between)."""
        if not go_on.queues:  # stopping after this job: nothing to start (the reservations are given back)
            return Next(None, None, ())
        return self.transitions.go_on(self.worker, self.lease.token, go_on, time.time(), wait=wait)

    def _go_on(self, record: Record) -> FetchedJob | None:
        """Send `record` going on with the next job; returns that job."""
        queues = self.next_from()
        if self.concurrency > 1:  # pool threads go one job at a time
            return job_of(self.lease.call(lambda: record(GoOn(queues, self.limits), True)).row)
        with self._hold:
            while True:
                go_on = GoOn(queues, self.limits, reserve=self.prefetch if queues else 0)
                if not (self._reserved and queues):
                    reply = self.lease.call(lambda: record(go_on, True))  # noqa: B023 - called at once
                    self._reserved.extend(map(job_from_row, reply.reserved))
                    if not queues:
                        self.give_back()
                    return job_of(reply.row)
                reserved = self._reserved.popleft()
                go_on.start, go_on.reserve = (reserved.id, reserved.queue), self.prefetch - len(self._reserved)
                if not self._limited(reserved):
                    # it runs with its reservation's attempt and timeout, which its start then
                    # writes; RQ's record is read again (starting it writes RQ's options)
                    go_on.started_with = None if reserved.rq_record else (reserved.attempt, reserved.timeout)
                    # The reserved job starts before Redis confirms this outcome (which would fence
                    # a worker presumed dead): a lease that may have lapsed (a pause without
                    # SIGCONT) ends the worker here instead, before it runs a job perhaps given to
                    # another.
                    self.lease.check_age()
                    self._pending = self.lease.call(lambda: record(go_on, False))  # noqa: B023
                    return reserved
                reply = self.lease.call(lambda: record(go_on, True))  # noqa: B023 - called at once
                self._reserved.extend(map(job_from_row, reply.reserved))
                if reply.started:
                    reserved.attempt = reply.started
                    return reserved
                # canceled or deleted meanwhile, or held back by its limits: the outcome is
                # stored, go on from the next reservation or the queues
                record = self._go_on_only

    def _limited(self, job: FetchedJob) -> bool:
        """Whether a limit of the worker's may hold the job back as it starts."""
        return may_hold_back(self.limits, job.name, job.queue)

    def give_back(self) -> None:
        """Give the reserved jobs back to the front of their queues, in their order."""
        while self._reserved:
            reserved = self._reserved.pop()
            self.lease.call(lambda: self.transitions.release(self.worker, reserved.id, reserved.queue, time.time()))  # noqa: B023

    def release_if_running_long(self, running_since: float) -> None:
        """The control thread: the main thread's job (running since `running_since`, monotonic;
        0: none), or its hooks, ran long: give back the job reserved behind it."""
        since = running_since or self._hooks_since
        if not since or time.monotonic() - since < RESERVATION_HOLD:
            return
        if not self._hold.acquire(blocking=False):  # the main thread is between jobs
            return
        try:
            if self._pending is not None:
                try:
                    reply = self._pending()
                except LeaseLost:
                    self.lease.taken()
                self._pending = None
                self._early = reply._replace(reserved=())
                self._reserved.extend(map(job_from_row, reply.reserved))
            while self._reserved:  # the last first, each to the front: they keep their order
                reserved = self._reserved[-1]
                self.transitions.release(self.worker, reserved.id, reserved.queue, time.time())
                self._reserved.pop()  # only once given back: a failed release is tried again
        finally:
            self._hold.release()


class Together:
    """A pool's successes, recorded together (group commit): a thread whose job succeeded queues
    its outcome; when no call is in flight it sends every outcome queued in one call
    (Transitions.succeed_many), which also starts a next job for each thread that asked, and hands
    each thread its own; else it waits for the call that carries its outcome. Threads that finish
    while a call is in flight thus share the next one: a pool of short jobs makes fewer calls
    than jobs, and no thread waits longer than one call more than it would alone."""

    def __init__(self, transitions: Transitions, lease: Lease, limits: dict[str, str], heard: Callable[[Next], Next]):
        self.transitions, self.lease, self.limits, self.heard = transitions, lease, limits, heard
        self._turn = threading.Condition()
        self._queued: list[_Waiting] = []
        self._sending = False

    def finish(self, finished: Finished, queues: list[str]) -> FetchedJob | None:
        """Record `finished` and return the job the thread runs next (none when `queues` is
        empty, or they hold nothing it may start)."""
        own = _Waiting(finished, queues)
        with self._turn:
            self._queued.append(own)
            while not own.done and self._sending:
                self._turn.wait()
            if own.done:
                return own.answer()
            self._sending = True
            batch, self._queued = self._queued, []
        try:
            self._send(batch)
        except BaseException as exc:
            for waiting in batch:
                waiting.error = exc
            raise
        finally:
            with self._turn:
                self._sending = False
                for waiting in batch:
                    waiting.done = True
                self._turn.notify_all()
        return own.answer()

    def _send(self, batch: list[_Waiting]) -> None:
        asking = [waiting for waiting in batch if waiting.queues]
        # the threads ask for the same queues (a weighted order differs: the first one's is taken)
        go_on = GoOn(asking[0].queues if asking else [], self.limits)
        worker = self.lease.worker
        reply: Next = self.lease.call(
            lambda: cast(
                Next,
                self.transitions.succeed_many(
                    worker, time.time(), [waiting.finished for waiting in batch], go_on, len(asking)
                ),
            )
        )
        for waiting, row in zip(asking, self.heard(reply).rows):
            waiting.row = row


class _Waiting:
    """A thread's success queued in Together, and what the call brought it."""

    def __init__(self, finished: Finished, queues: list[str]):
        self.finished, self.queues = finished, queues
        self.done = False
        self.row: Row | None = None
        self.error: BaseException | None = None

    def answer(self) -> FetchedJob | None:
        if self.error is not None:
            raise self.error
        return job_of(self.row)
