"""The KEYS transitions.py passes the scripts beyond each one's own: the prefixes a script builds
a key from, and the keys a kind of script touches (taking a job, recovering, an outcome)."""

from __future__ import annotations

from functools import lru_cache

from . import keys

# The prefixes a script builds a key from when the key depends on what it reads (a job id taken
# from a list, a queue read from a record): keys.py's names, without what they end with.
_JOB = keys.job("")
_RESULTS = keys.results("")
_QUEUE = keys.queue("")
_STARTED = keys.started("")
_SCHEDULED = keys.scheduled("")
_DEFERRED = keys.deferred("")
_FINISHED = keys.finished("")
_FAILED = keys.dead("")
_CANCELED = keys.canceled("")
_UNIQUE = keys.unique("")
_SLOTS = keys.slots("")
_JOB_RATE = keys.rate_window(keys.job_rate_limit(""))
_JOB_STATS = keys.job_stats("")
_QUEUE_STATS = keys.queue_stats("")
_WORKER = keys.worker("")
_ACTIVE = keys.active("")
_WORKERS_OF_QUEUE = keys.workers_of_queue("")
_WAKE = keys.wake("")  # channels: given in ARGV
_COMMANDS = keys.commands("")
_BREAKER = keys.breaker("")
_BATCH = keys.batch("")
_BATCHES = (_BATCH, keys.BATCHES_DUE)  # what a job's final outcome touches in its batch


# KEYS after each script's own first ones (see each script's header)
_TAKE = (_JOB, _SLOTS, _JOB_RATE, _WORKER, _ACTIVE, _BREAKER)  # what taking a job touches (fetch, go_on)
_RECOVER = (  # what recovering a worker's jobs touches (recover, sweep)
    _JOB,
    _RESULTS,
    _QUEUE,
    _STARTED,
    _SCHEDULED,
    _DEFERRED,
    _FAILED,
    _CANCELED,
    _UNIQUE,
    _SLOTS,
    _JOB_STATS,
    _QUEUE_STATS,
    _WORKERS_OF_QUEUE,
    keys.QUEUES,
    keys.WORKERS,
    *_BATCHES,
)


@lru_cache(maxsize=256)
def _queue_keys(queues: tuple[str, ...]) -> tuple[str, ...]:
    """A worker's queues' KEYS: for each, its list, started registry, scheduled set and rate
    window (queue_keys in lua/lib.lua)."""
    return tuple(
        key
        for queue in queues
        for key in (
            keys.queue(queue),
            keys.started(queue),
            keys.scheduled(queue),
            keys.rate_window(keys.queue_rate_limit(queue)),
        )
    )


@lru_cache(maxsize=256)
def _outcome_keys(script: str, worker: str, queue: str, keyed: tuple[str, ...]) -> tuple[str, ...]:
    """An outcome script's KEYS (succeed.lua, fail.lua; succeed's, for jobs of any queue, name
    no queue)."""
    if script == "succeed":
        own = (keys.active(worker), _STARTED, _FINISHED)
        prefixes: tuple[str, ...] = (_DEFERRED, _CANCELED, keys.QUEUES)
    else:
        own = (keys.active(worker), keys.started(queue), keys.scheduled(queue))
        prefixes = (_DEFERRED, _FAILED, _CANCELED, keys.QUEUES, _JOB_STATS, _QUEUE_STATS)
    prefixes += _BATCHES
    shared = (_JOB, _RESULTS, _SLOTS, _JOB_RATE, _WORKER, _ACTIVE, _UNIQUE, _QUEUE, _SCHEDULED)
    return (*own, *shared, *prefixes, _BREAKER, *_queue_keys(keyed))
