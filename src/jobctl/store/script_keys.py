"""The KEYS transitions.py passes the scripts beyond each one's own: the prefixes a script builds
a key from, and the keys a kind of script touches (taking a job, recovering, an outcome).

On one Redis they are the same for every queue. On a Redis Cluster (keys.Layout) a call serves
one queue, on its slot: each prefix is that queue's (rq:job:{emails}:), a queue's list or
registry is given whole where one Redis gets its prefix (lua/lib.lua, queue_key), and a
fleet-wide key that only one Redis's scripts write (RQ's sets of queues and of workers) is given
as the queue's list, a key of the slot that the scripts leave alone there (CLUSTER in lib.lua)."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from . import keys
from .keys import Layout

_WAKE = keys.wake("")  # channels: given in ARGV
_COMMANDS = keys.commands("")


class SlotKeys(NamedTuple):
    """The prefixes and shared keys of the scripts' calls for one queue (any queue on one Redis)."""

    job: str
    results: str
    queue: str
    started: str
    scheduled: str
    deferred: str
    finished: str
    failed: str
    canceled: str
    unique: str
    slots: str
    job_rate: str
    job_stats: str
    queue_stats: str
    worker: str
    active: str
    workers_of_queue: str
    breaker: str
    batch: str
    batches_due: str
    outbox: str  # a Redis Cluster's: entries for other queues' slots (lib.lua, outbox)
    queues: str  # RQ's set of known queues (on a cluster: the queue's list, left alone)
    workers: str  # RQ's set of workers (the same)
    active_workers: str
    promoter: str
    enqueue_template: str

    @property
    def batches(self) -> tuple[str, str]:
        """What a job's final outcome touches in its batch."""
        return (self.batch, self.batches_due)

    @property
    def ended(self) -> tuple[str, str, str]:
        """What a job's final outcome touches beyond its queue: its batch, and the outbox its
        dependents on other queues hear of it through (a Redis Cluster's)."""
        return (*self.batches, self.outbox)

    @property
    def take(self) -> tuple[str, ...]:
        """What taking a job touches (fetch, go_on)."""
        return (self.job, self.slots, self.job_rate, self.worker, self.active, self.breaker)

    @property
    def recover(self) -> tuple[str, ...]:
        """What recovering a worker's jobs touches (recover, sweep)."""
        return (
            self.job,
            self.results,
            self.queue,
            self.started,
            self.scheduled,
            self.deferred,
            self.failed,
            self.canceled,
            self.unique,
            self.slots,
            self.job_stats,
            self.queue_stats,
            self.workers_of_queue,
            self.queues,
            self.workers,
            *self.ended,
        )


@lru_cache(maxsize=256)
def slot_keys(layout: Layout, queue: str = "") -> SlotKeys:
    """The prefixes and shared keys for calls on `queue` (ignored on one Redis)."""
    whole = queue if layout.cluster else ""  # a queue's key given whole on a cluster, else its prefix
    fleet = layout.queue(queue) if layout.cluster else ""
    return SlotKeys(
        job=layout.job("", queue),
        results=layout.results("", queue),
        queue=layout.queue(whole),
        started=layout.started(whole),
        scheduled=layout.scheduled(whole),
        deferred=layout.deferred(whole),
        finished=layout.finished(whole),
        failed=layout.dead(whole),
        canceled=layout.canceled(whole),
        unique=layout.unique("", queue),
        slots=layout.slots("", queue),
        job_rate=layout.job_rate_window("", queue),
        job_stats=layout.job_stats("", queue),
        queue_stats=layout.queue_stats(whole),
        worker=layout.worker("", queue),
        active=layout.active("", queue),
        workers_of_queue=layout.workers_of_queue(whole),
        breaker=layout.breaker("", queue),
        # a cluster's batch is in a slot of its own: a queue's scripts leave it (lib.lua, post_batch)
        batch=fleet or layout.batch(""),
        batches_due=fleet or layout.batches_due(),
        outbox=layout.outbox(queue),
        queues=fleet or keys.QUEUES,
        workers=fleet or keys.WORKERS,
        active_workers=layout.active_workers(queue),
        promoter=layout.promoter(queue),
        enqueue_template=layout.enqueue_template(queue),
    )


PLAIN_KEYS = slot_keys(keys.PLAIN)


@lru_cache(maxsize=256)
def _queue_keys(layout: Layout, queues: tuple[str, ...]) -> tuple[str, ...]:
    """A worker's queues' KEYS: for each, its list, started registry, scheduled set and rate
    window (queue_keys in lua/lib.lua)."""
    return tuple(
        key
        for queue in queues
        for key in (
            layout.queue(queue),
            layout.started(queue),
            layout.scheduled(queue),
            layout.queue_rate_window(queue),
        )
    )


@lru_cache(maxsize=256)
def _outcome_keys(layout: Layout, script: str, worker: str, queue: str, keyed: tuple[str, ...]) -> tuple[str, ...]:
    """An outcome script's KEYS (succeed.lua, fail.lua): succeed's started and finished registries
    as the prefixes of every queue's on one Redis (its outcomes may be of several queues), the
    queue's own on a cluster."""
    p = slot_keys(layout, queue)
    if script == "succeed":
        own = (layout.active(worker, queue), p.started, p.finished)
        prefixes: tuple[str, ...] = (p.deferred, p.canceled, p.queues)
    else:
        own = (layout.active(worker, queue), layout.started(queue), layout.scheduled(queue))
        prefixes = (p.deferred, p.failed, p.canceled, p.queues, p.job_stats, p.queue_stats)
    prefixes += p.ended
    shared = (p.job, p.results, p.slots, p.job_rate, p.worker, p.active, p.unique, p.queue, p.scheduled)
    return (*own, *shared, *prefixes, p.breaker, *_queue_keys(layout, keyed))
