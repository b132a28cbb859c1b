"""Elastic worker counts: the pools of workers that scale together, each worker's place in its
pool (Slot), and the scaling pass the supervisor makes once a second (Scaler): grow a pool by one
worker while its queues wait, retire its idlest worker once it has been idle long enough."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import logs
from ..api import reads
from ..config.queues import QueueConfig
from ..options.durations import format_exact
from ..store import keys
from ..store.connection import read_replies

if TYPE_CHECKING:
    import redis

# Seconds between scaling passes: a pool grows or shrinks by at most one worker per pass. A
# worker idle this long also shows that its pool's jobs wait for something other than a worker
# (a pause, a rate limit, max_concurrency): the pool does not grow then.
SCALE_EVERY = 1.0


@dataclass(eq=False)
class Pool:
    """The workers that serve the same queues and scale together: one queue's, or with `shared`
    those of all the queues served together, whose ranges add up. Its thresholds are the most
    eager of its queues' to grow, the most patient to shrink.

    Several supervisors (hosts) on one Redis each scale their own pool of a queue: they read the
    same latency and backlog, so each grows its own workers, within its own range, while the
    queue waits; each retires only its own idle workers. A queue's workers thus lie between
    the sum of the ranges' bottoms and the sum of their tops, and no supervisor acts on
    another's workers."""

    queues: list[QueueConfig]

    @property
    def label(self) -> str:
        return ",".join(q.name for q in self.queues)

    @property
    def minimum(self) -> int:
        return sum(q.min_workers for q in self.queues)

    @property
    def maximum(self) -> int:
        return sum(q.max_workers for q in self.queues)

    @property
    def elastic(self) -> bool:
        return self.minimum < self.maximum

    @property
    def scale_up_latency(self) -> float:
        return min(q.scale_up_latency for q in self.queues)

    @property
    def scale_up_backlog(self) -> int:
        return min(q.scale_up_backlog for q in self.queues)

    @property
    def scale_down_idle(self) -> float:
        return max(q.scale_down_idle for q in self.queues)


@dataclass(eq=False)  # one process's place: removed from the list by identity, never by equal fields
class Slot:
    """One worker process the supervisor keeps running, and the pool whose queues it serves."""

    pool: Pool
    pid: int | None = None
    worker_name: str = ""
    started: float = 0.0
    quick_deaths: int = 0  # consecutive deaths soon after start: slows restarts of a crash loop
    restart_at: float = 0.0
    killed_for: str = ""  # why the supervisor killed it, for the job's error
    culprits: list[str] = field(default_factory=list)  # the overdue jobs it was killed for
    retiring: bool = False  # asked to stop by scaling down: not restarted once it exits
    idle_since: float = 0.0  # monotonic: since when its worker is seen idle (0: busy), elastic pools only
    activity: tuple[object, ...] = ()  # its worker's job counts as last read, to see it worked in between

    @property
    def queues(self) -> list[QueueConfig]:
        return self.pool.queues

    @property
    def label(self) -> str:
        return self.pool.label

    # a worker serving several queues takes the strictest of their process settings
    @property
    def shutdown_timeout(self) -> float:
        return max(q.shutdown_timeout for q in self.queues)

    @property
    def max_jobs(self) -> int:
        return min(q.max_jobs for q in self.queues)

    @property
    def max_memory(self) -> int | None:
        return min((q.max_memory for q in self.queues if q.max_memory), default=None)

    @property
    def concurrency(self) -> int:
        return min(q.concurrency for q in self.queues)


@dataclass
class Scaler:
    """One scaling pass over a supervisor's pools: it reads Redis on `connection`, appends new
    places to `slots` (the supervisor's own list) and marks the ones it retires."""

    connection: redis.Redis
    pools: list[Pool]
    slots: list[Slot]
    log: logging.Logger
    name: str  # the supervisor's, in the log lines

    def scale(self) -> None:
        """Read each elastic pool's queues and workers (one round trip, and one more for the
        latencies), then grow or shrink each pool by one worker where its thresholds say so."""
        pools = [pool for pool in self.pools if pool.elastic]
        if not pools:
            return
        watched = [s for s in self.slots if s.pool.elastic and s.pid and s.worker_name and not s.retiring]
        names = [q.name for pool in pools for q in pool.queues]
        layout = keys.layout_of(self.connection)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.PAUSED)
            pipe.exists(keys.SUSPENDED)
            for name in names:
                pipe.llen(layout.queue(name))
                pipe.lindex(layout.queue(name), 0)
            for slot in watched:
                # on a cluster a worker has an in-flight list and a hash in the slot of each of its
                # queues; the first queue's hash tells its state
                homes = [q.name for q in slot.queues] if layout.cluster else [""]
                for home in homes:
                    pipe.llen(layout.active(slot.worker_name, home))  # jobctl's workers: running and reserved jobs
                # RQ's workers keep no in-flight list: their state; and the job counts of both,
                # which change when a worker ran a job between two passes
                pipe.hmget(
                    layout.worker(slot.worker_name, homes[0]), ["state", "successful_job_count", "failed_job_count"]
                )
            replies = iter(read_replies(pipe))
        paused = {name.decode(errors="replace") for name in next(replies)}
        suspended = bool(next(replies))
        queued: dict[str, int] = {}
        heads: dict[str, bytes | None] = {}
        for name in names:
            queued[name], heads[name] = int(next(replies)), next(replies)
        now = time.monotonic()
        for slot in watched:
            in_flight = sum(next(replies) for _ in (slot.queues if layout.cluster else [None]))
            state, *counts = next(replies)
            if in_flight or state == b"busy":
                slot.idle_since = 0.0
            elif not slot.idle_since or tuple(counts) != slot.activity:
                slot.idle_since = now
            slot.activity = tuple(counts)
        waits = reads.head_waits(self.connection, heads, time.time())
        for pool in pools:
            open_queues = [q.name for q in pool.queues if q.name not in paused]
            backlog = sum(queued[name] for name in open_queues)
            oldest = max((w for name in open_queues if (w := waits[name]) is not None), default=None)
            self._scale_pool(pool, backlog, oldest, suspended, now)

    def _scale_pool(self, pool: Pool, backlog: int, oldest: float | None, suspended: bool, now: float) -> None:
        members = [slot for slot in self.slots if slot.pool is pool]
        staying = [slot for slot in members if not slot.retiring]
        count = len(staying)
        idle = sorted((slot for slot in staying if slot.pid and slot.idle_since), key=lambda slot: slot.idle_since)
        reason = ""
        if oldest is not None and oldest > pool.scale_up_latency:
            reason = f"oldest job waited {oldest:.1f}s (scale_up_latency {format_exact(pool.scale_up_latency)})"
        elif backlog > pool.scale_up_backlog * count:
            reason = (
                f"{backlog} jobs queued, {backlog / max(count, 1):.1f} per worker "
                f"(scale_up_backlog {pool.scale_up_backlog})"
            )
        waiting_anyway = bool(idle) and now - idle[0].idle_since >= SCALE_EVERY  # see SCALE_EVERY
        if reason and count < pool.maximum and not suspended and not waiting_anyway:
            self.slots.append(Slot(pool))
            self._scaled(pool, count, count + 1, reason)
            return
        if count <= pool.minimum or len(members) > count or not idle:  # one retirement at a time
            return
        idlest = idle[0]
        idle_for = now - idlest.idle_since
        if idle_for < pool.scale_down_idle:
            return
        assert idlest.pid is not None  # idle holds started workers only
        idlest.retiring = True
        _signal(idlest.pid, signal.SIGTERM)  # graceful: see the module's docstring
        self._scaled(
            pool,
            count,
            count - 1,
            f"worker {idlest.worker_name} idle for {idle_for:.1f}s (scale_down_idle {format_exact(pool.scale_down_idle)})",
        )

    def _scaled(self, pool: Pool, before: int, after: int, reason: str) -> None:
        logs.event(
            self.log,
            "supervisor.scaled",
            "supervisor %s: scaled %s %d → %d %s: %s",
            self.name,
            pool.label,
            before,
            after,
            "worker" if after == 1 else "workers",
            reason,
            supervisor=self.name,
            queue=pool.label,
            workers_before=before,
            workers=after,
            min_workers=pool.minimum,
            max_workers=pool.maximum,
            reason=reason,
        )


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
