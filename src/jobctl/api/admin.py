"""Queue and job administration: pause and resume queues, requeue dead jobs, cancel jobs, purge
ended jobs, and the health check that probes run. `jobctl pause|resume|requeue-dead|cancel|purge|
health` call these."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from ..config.queues import QueuesConfig, RecurringEntry
from ..errors import RedisUnavailable, UnknownJob
from ..store import keys
from ..store.jobdata import RQ_STATUS, JobView
from ..store.locate import locate
from ..store.transitions import Transitions
from . import joblists, reads, records
from .producer import enqueue

PURGE_BATCH = 1000  # registry entries per script call: each call holds Redis for about a millisecond
REQUEUE_BATCH = 500  # dead jobs read, and requeued by one script call, at a time
CANCEL_REASON = "canceled by an operator"

# the states `purge` deletes -> their RQ status word, which names their registry (keys.Layout.ended)
PURGEABLE = {"finished": "finished", "dead": RQ_STATUS["dead"], "canceled": "canceled"}
_STATE_OF_STATUS = {status: state for state, status in RQ_STATUS.items()}


# --- requeue-dead ------------------------------------------------------------------------------


def requeue_dead(
    connection: redis.Redis,
    queues: list[str],
    job_ids: list[str],
    *,
    older_than: float | None = None,
    dry_run: bool = False,
) -> list[JobView]:
    """Put dead jobs back on their queues with a fresh retry budget: every dead job of `queues`,
    and the `job_ids` that are dead; with `older_than` (seconds), only those dead that long.
    Returns the jobs requeued (with `dry_run`: those that would be). Idempotent: a job requeued
    once is no longer dead. For many jobs, requeue_dead_batches holds one batch at a time."""
    batches = requeue_dead_batches(connection, queues, job_ids, older_than=older_than, dry_run=dry_run)
    return [job for batch in batches for job in batch]


def requeue_dead_batches(
    connection: redis.Redis,
    queues: list[str],
    job_ids: list[str],
    *,
    older_than: float | None = None,
    dry_run: bool = False,
    batch_size: int = REQUEUE_BATCH,
) -> Iterator[list[JobView]]:
    """requeue_dead, a batch at a time: the dead registries are walked with ZSCAN, `batch_size`
    records read and requeued by one script call per batch, so memory stays that of one batch
    however many jobs are dead (100,000 took 687 MB read all at once), and Redis is never held
    for long. Yields each batch's jobs requeued (with `dry_run`: those that would be)."""
    transitions = Transitions(connection)
    layout = transitions.layout
    named = set(job_ids)
    batches = [job_ids[start : start + batch_size] for start in range(0, len(job_ids), batch_size)]
    scanned = (
        [job_id for job_id in batch if job_id not in named]  # each job once
        for queue in queues
        for batch in _batches(connection, layout.dead(queue), batch_size, removing=not dry_run)
    )
    for batch in itertools.chain(batches, scanned):
        dead = _dead_among(connection, batch)
        if older_than is not None:
            cutoff = time.time() - older_than
            dead = [job for job in dead if (job.ended_at or 0) < cutoff]
        if dry_run or not dead:
            yield dead
            continue
        # one call per queue on a cluster (each queue's slot), one in all on one Redis
        by_queue: dict[str, list[str]] = {}
        for job in dead:
            by_queue.setdefault(job.queue if layout.cluster else "", []).append(job.id)
        requeued = {
            job_id for queue, ids in by_queue.items() for job_id in transitions.requeue_dead(ids, time.time(), queue)
        }
        yield [job for job in dead if job.id in requeued]


# what requeue-dead reads of a record jobctl wrote: never its payload, traceback or result,
# which may be megabytes each
_LISTED = ("status", "origin", "ended_at", "jobctl_job")


def _dead_among(connection: redis.Redis, job_ids: list[str]) -> list[JobView]:
    """The dead jobs among `job_ids`, each read as far as requeue-dead shows it (id, job name,
    queue, end; JobView.from_hash reads what there is). A record another tool wrote names its
    job only in its payload: it is read whole."""
    layout, where = keys.layout_of(connection), locate(connection, job_ids)
    job_ids = [job_id for job_id in job_ids if job_id in where]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(layout.job(job_id, where[job_id]), _LISTED)
        rows = pipe.execute()
    dead, foreign = [], []
    for job_id, values in zip(job_ids, rows):
        raw = {name.encode(): value for name, value in zip(_LISTED, values) if value}
        if raw.get(b"status") != RQ_STATUS["dead"].encode():
            continue
        if b"jobctl_job" in raw:
            dead.append(JobView.from_hash(job_id, raw))
        else:
            foreign.append(job_id)
    return dead + [job for job in records.jobs(connection, foreign) if job.state == "dead"]


# --- pause / resume ------------------------------------------------------------------------------


def pause(connection: redis.Redis, queues: list[str]) -> list[str]:
    """Pause the queues (workers stop fetching from them); returns those not already paused."""
    return _change_paused(connection, queues, connection.sadd)


def resume(connection: redis.Redis, queues: list[str]) -> list[str]:
    """Resume paused queues; returns those that were paused."""
    return _change_paused(connection, queues, connection.srem)


def _change_paused(connection: redis.Redis, queues: list[str], change: Callable[[str, str], Any]) -> list[str]:
    """Workers serving a changed queue hear of it at once on its wake channel (a busy worker
    that misses it looks again within a second)."""
    changed = [queue for queue in queues if change(keys.PAUSED, queue)]
    for queue in changed:
        connection.publish(keys.wake(queue), keys.PAUSES_CHANGED)
    return changed


# --- cancel --------------------------------------------------------------------------------------


@dataclass
class Cancellation:
    job_id: str
    state: str | None  # the state the job was in (None: no such job)
    canceled: bool
    dependents: list[str] = field(default_factory=list)  # deferred jobs canceled with it
    now: str = ""  # the state it is in after the cancel (a running job: once it stopped, or still started)
    error: str | None = None  # why the id named no job

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STOP_WAIT = 10.0  # seconds `cancel` waits for a running job's worker to stop it


def cancel(connection: redis.Redis, job_id: str, *, wait: float = STOP_WAIT) -> Cancellation:
    """Cancel a queued, scheduled or deferred job and the deferred jobs that depended on it.

    A started job is stopped: its worker raises an exception inside it (its `finally` blocks
    run) and records it canceled; this waits up to `wait` seconds for that. A job that ignores
    the exception is killed with its worker after a grace period."""
    layout, queue = keys.layout_of(connection), locate(connection, [job_id]).get(job_id)
    status = (
        Transitions(connection).cancel(job_id, time.time(), CANCEL_REASON, queue or "") if queue is not None else ""
    )
    if not status:
        raise UnknownJob(f"no job with id {job_id!r}")
    assert queue is not None  # the job was found
    state = _STATE_OF_STATUS.get(status, status)
    now = "canceled" if state in ("queued", "scheduled", "deferred") else state
    if state == "started":
        deadline = time.monotonic() + wait
        while now == "started" and time.monotonic() < deadline:
            time.sleep(0.05)
            raw = cast("bytes | None", connection.hget(layout.job(job_id, queue), "status"))
            now = _STATE_OF_STATUS.get(raw.decode(), raw.decode()) if raw else "canceled"
    canceled = now == "canceled" and state != "canceled"
    return Cancellation(job_id, state, canceled, _canceled_with(connection, job_id, queue) if canceled else [], now)


def _canceled_with(connection: redis.Redis, job_id: str, queue: str) -> list[str]:
    """The dependents (and theirs) that the cascade canceled because of `job_id` (of `queue`,
    as they are on a cluster)."""
    layout = keys.layout_of(connection)
    found: list[str] = []
    pending = [job_id]
    while pending:
        parent = pending.pop()
        for raw in sorted(cast("set[bytes]", connection.smembers(layout.dependents(parent, queue)))):
            child = raw.decode()
            status, canceled_by = cast(
                "list[bytes | None]", connection.hmget(layout.job(child, queue), ["status", "jobctl_canceled_by"])
            )
            if status == b"canceled" and canceled_by == parent.encode():
                found.append(child)
                pending.append(child)
    return found


# --- purge ---------------------------------------------------------------------------------------


def purge(connection: redis.Redis, queue: str, state: str, cutoff: float, *, dry_run: bool) -> int:
    """Delete the `state` jobs of `queue` that ended at or before `cutoff` (unix time); returns
    how many were (or, with dry_run, would be) deleted.

    A registry's score is a job's expiry time, its end plus its own ttl, and ttls differ from
    job to job, so no score range selects "ended before X": the registry is walked with ZSCAN
    in batches and each batch is checked and deleted by one short script (lua/purge.lua), so a
    registry of millions never blocks Redis for long."""
    transitions = Transitions(connection)
    status = PURGEABLE[state]
    return sum(
        transitions.purge(queue, status, batch, cutoff, dry_run=dry_run)
        for batch in _batches(connection, transitions.layout.ended(status, queue))
    )


def _batches(
    connection: redis.Redis, key: str, size: int = PURGE_BATCH, *, removing: bool = True
) -> Iterator[list[str]]:
    """The members of a sorted set, `size` at a time. A walk `removing` what it reads uses ZSCAN
    (a member present throughout is returned, whatever is added or removed meanwhile; it may
    return one twice, which the walk's own script finds already moved); a walk that removes
    nothing reads by rank, each member once (ZSCAN listed a job twice in a dry run while Redis
    was rehashing the set: tests/test_operations.py's requeue-dead test). A key of another
    type (another tool's) has none; a member that is not UTF-8 is read with replacements,
    naming no job."""
    if connection.type(key) not in (b"zset", b"none"):
        return
    if not removing:
        for start in itertools.count(0, size):
            members = connection.zrange(key, start, start + size - 1)
            if members:
                yield [member.decode(errors="replace") for member in members if isinstance(member, bytes)]
            if len(members) < size:
                return
    batch: dict[str, None] = {}  # a member ZSCAN repeats within a batch is taken once
    for member, _score in connection.zscan_iter(key, count=size):
        batch[member.decode(errors="replace")] = None
        if len(batch) == size:
            yield list(batch)
            batch = {}
    if batch:
        yield list(batch)


# --- delete, enqueue now, run a recurring entry now, act on every match (the dashboard) ------------


def delete(connection: redis.Redis, job_ids: list[str]) -> list[str]:
    """Delete jobs that are not running: a queued, scheduled or deferred job is canceled first
    (its deferred dependents with it), then its record, results and registry entry go, through
    the same script as `purge`. Returns the ids deleted; a started job is left alone."""
    transitions, deleted, now = Transitions(connection), [], time.time()
    for job in records.jobs(connection, job_ids):
        state = job.state
        if state in ("queued", "scheduled", "deferred"):
            transitions.cancel(job.id, now, CANCEL_REASON, job.queue if transitions.layout.cluster else "")
            state = "canceled"
        # a cutoff just past now: whenever the job ended, the cancel above included
        if state in PURGEABLE and transitions.purge(job.queue, PURGEABLE[state], [job.id], now + 60, dry_run=False):
            deleted.append(job.id)
    return deleted


def enqueue_now(connection: redis.Redis, job_id: str) -> bool:
    """Queue a scheduled job (delayed, or waiting for its retry) now; False if it is not scheduled."""
    queue = locate(connection, [job_id]).get(job_id)
    return queue is not None and Transitions(connection).enqueue_now(job_id, time.time(), queue)


def run_recurring_now(connection: redis.Redis, config: QueuesConfig, entry: RecurringEntry) -> str:
    """Enqueue a run of a recurring entry outside its schedule (its own job id: the scheduler's
    next due run is unaffected); returns the job id."""
    return enqueue(connection, config, entry.job, list(entry.args), entry.kwargs, queue=entry.queue).id


def requeue_dead_matching(connection: redis.Redis, queues: list[str], where: joblists.JobFilter) -> int:
    """Requeue every dead job of `queues` that matches; returns how many."""
    return sum(
        len(requeue_dead(connection, [], [job.id for job in batch]))
        for queue in queues
        for batch in joblists.matching_job_batches(connection, "dead", queue, where)
    )


def delete_matching(connection: redis.Redis, state: str, queues: list[str], where: joblists.JobFilter) -> int:
    """Delete every `state` job of `queues` that matches (not started ones); returns how many."""
    return sum(
        len(delete(connection, [job.id for job in batch]))
        for queue in queues
        for batch in joblists.matching_job_batches(connection, state, queue, where)
    )


# --- health --------------------------------------------------------------------------------------


@dataclass
class Health:
    healthy: bool
    reason: str
    host: str
    supervisor: str | None
    workers: int  # alive workers of this host (or of the named supervisor)
    newest_heartbeat_age: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def health(
    get_connection: Callable[[], redis.Redis],
    *,
    lease_ttl: float,
    supervisor: str | None = None,
    redis_only: bool = False,
    now: float | None = None,
) -> Health:
    """Healthy when Redis answers and this host's workers (or the named supervisor's) have sent
    a heartbeat within `lease_ttl` seconds (the liveness window, options/liveness.py)."""
    host = socket.gethostname()
    try:
        connection = get_connection()
        workers = reads.workers(connection)
    except (RedisUnavailable, redis.RedisError) as exc:
        reason = str(exc) if isinstance(exc, RedisUnavailable) else f"Redis failed: {type(exc).__name__}"
        return Health(False, reason, host, supervisor, 0)
    if redis_only:
        return Health(True, "Redis answers", host, supervisor, 0)
    now = time.time() if now is None else now
    whose = f"supervisor {supervisor!r}" if supervisor else f"host {host!r}"
    mine = [w for w in workers if (w.supervisor == supervisor if supervisor else w.host == host) and w.state != "gone"]
    ages = sorted(now - w.last_heartbeat for w in mine if w.last_heartbeat is not None)
    alive = [age for age in ages if age <= lease_ttl]
    if alive:
        return Health(
            True,
            f"Redis answers; {len(alive)} worker(s) of {whose} heartbeating",
            host,
            supervisor,
            len(alive),
            round(alive[0], 1),
        )
    if ages:
        reason = f"no worker of {whose} sent a heartbeat in the last {lease_ttl:g}s (newest {ages[0]:.0f}s ago)"
    else:
        reason = f"no worker of {whose} is registered in Redis (is `jobctl work` running?)"
    return Health(False, reason, host, supervisor, 0, round(ages[0], 1) if ages else None)
