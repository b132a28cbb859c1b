"""What job tracking recorded (`jobctl stats`, the dashboard's charts), and the last run of each
recurring entry."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.queues import QueuesConfig
from ..errors import UnknownJob
from ..store import keys
from ..store.connection import read_replies
from ..store.jobdata import JobView, number_value
from ..store.locate import known_queues
from .reads import Counters, newest_first, parse_histogram, run_time_percentile, scheduler_status
from .records import counter_value, jobs, text_of

if TYPE_CHECKING:
    import redis

RECENT_EXECUTIONS = 10


@dataclass
class JobTypeStats:
    name: str
    totals: Counters
    histogram: dict[float, int]  # non-cumulative runs per bucket upper bound
    recent: list[dict[str, Any]]  # newest first, keys.history's entries

    def percentile(self, quantile: float) -> float | None:
        return run_time_percentile(self.histogram, quantile, self.totals.max_run_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.totals.to_dict(),
            "p50_run_seconds": self.percentile(0.5),
            "p95_run_seconds": self.percentile(0.95),
            "recent": self.recent,
        }


@dataclass
class QueueStats:
    name: str
    totals: Counters

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.totals.to_dict()}


@dataclass
class Stats:
    queues: list[QueueStats]
    jobs: list[JobTypeStats]

    def to_dict(self) -> dict[str, Any]:
        return {"queues": [q.to_dict() for q in self.queues], "jobs": [j.to_dict() for j in self.jobs]}


def _homes(connection: redis.Redis) -> list[str]:
    """The queues job tracking is kept per: every known queue on a Redis Cluster, where each keeps
    its own (keys.Layout); on one Redis one set of keys for all ('')."""
    return known_queues(connection) if keys.layout_of(connection).cluster else [""]


def tracked_job_names(connection: redis.Redis, registered: list[str]) -> list[str]:
    """The job types to report: those this process registered and every one that ever ran anywhere."""
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        for home in _homes(connection):
            pipe.smembers(layout.job_types(home))
        ran = {text_of(name) for names in read_replies(pipe) for name in names}
    return sorted(set(registered) | ran)


def processed_counts(connection: redis.Redis) -> dict[tuple[str, str, str], int]:
    """Executions by (job, queue, outcome), outcome being finished or failed; a field not of that
    form is left out."""
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        for home in _homes(connection):
            pipe.hgetall(layout.processed(home))
        hashes = read_replies(pipe)
    counts: dict[tuple[str, str, str], int] = {}
    for labels, count in (pair for found in hashes for pair in found.items()):
        parts = text_of(labels).rsplit("|", 2)
        if len(parts) == 3 and parts[2] in ("finished", "failed"):
            job, queue, outcome = parts
            counts[(job, queue, outcome)] = counts.get((job, queue, outcome), 0) + counter_value(count)
    return counts


def job_type_stats(connection: redis.Redis, names: list[str], history: int = keys.HISTORY_LENGTH) -> list[JobTypeStats]:
    """Counters, histogram and the latest `history` executions of each job type, in one round trip
    (on a Redis Cluster, its queues' added up)."""
    layout, homes = keys.layout_of(connection), _homes(connection)
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            for home in homes:
                pipe.hgetall(layout.job_stats(name, home))
                pipe.hgetall(layout.run_time_histogram(name, home))
                if history:
                    pipe.lrange(layout.history(name, home), 0, history - 1)
        replies = iter(read_replies(pipe))
    found = []
    for name in names:
        counters: list[Counters] = []
        histogram = Counter[float]()
        entries: list[bytes] = []
        for _ in homes:
            counters.append(Counters.from_hash(next(replies)))
            histogram.update(parse_histogram(next(replies)))
            entries += next(replies) if history else []
        found.append(JobTypeStats(name, Counters.combined(counters), dict(histogram), newest_first(entries)[:history]))
    return found


def stats(
    connection: redis.Redis,
    config: QueuesConfig,
    job_names: list[str],
    *,
    job: str | None = None,
    queue: str | None = None,
    recent: int = RECENT_EXECUTIONS,
) -> Stats:
    """Job tracking for the registered job types (`job_names`) and the configured queues.

    `job` narrows to one job type; `queue` to one queue and to the job types that ran on it
    lately, with their recent executions on that queue only. Counters, percentiles and last
    error of a job type cover all its queues (they are kept per job type)."""
    queue_names = [config.get(queue, "--queue").name] if queue else [] if job else list(config.queues)
    with connection.pipeline(transaction=False) as pipe:
        for name in queue_names:
            pipe.hgetall(keys.layout_of(connection).queue_stats(name))
        queue_rows = read_replies(pipe)
    # filtering by queue looks through the whole capped history; otherwise the latest are enough
    types = job_type_stats(connection, [job] if job else job_names, keys.HISTORY_LENGTH if queue else recent)
    if job and not types[0].totals.runs and job not in job_names:
        raise UnknownJob(f"--job {job!r}: no executions recorded for it and no job is registered by that name")
    if queue:
        for entry in types:
            entry.recent = [run for run in entry.recent if run.get("queue") == queue]
        if not job:
            types = [t for t in types if t.recent]
    elif not job:
        types = [t for t in types if t.totals.runs]
    for entry in types:
        entry.recent = entry.recent[:recent]
    return Stats([QueueStats(n, Counters.from_hash(raw)) for n, raw in zip(queue_names, queue_rows)], types)


# --- per-minute history: the dashboard's throughput and failure charts --------------------------


@dataclass
class MinuteHistory:
    first_minute: int  # unix time // 60 of the first minute
    finished: list[int]  # executions that succeeded, one per minute, oldest first
    failed: list[int]  # executions that failed (retried or dead)


def minute_history(connection: redis.Redis, queues: list[str], minutes: int, now: float | None = None) -> MinuteHistory:
    """The last `minutes` minutes (up to now) of the queues' executions, summed over the queues."""
    current = int((time.time() if now is None else now) // 60)
    first = current - minutes + 1
    days = range(first // 1440, current // 1440 + 1)
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            for day in days:
                pipe.hgetall(keys.layout_of(connection).minutes(queue, day))
        replies = iter(read_replies(pipe))
    history = MinuteHistory(first, [0] * minutes, [0] * minutes)
    for _queue in queues:
        for day in days:
            for field_name, count in next(replies).items():
                minute_of_day, _, outcome = text_of(field_name).partition(":")
                minute = number_value(minute_of_day, int)
                if minute is None or outcome not in ("finished", "failed"):
                    continue  # not a field keys.minutes names
                index = day * 1440 + minute - first
                if 0 <= index < minutes:
                    (history.finished if outcome == "finished" else history.failed)[index] += counter_value(count)
    return history


# --- recurring entries: their last run as a job ---------------------------------------------------


@dataclass
class RecurringRun:
    entry: str
    next_run: float | None  # the scheduler's next due time; None where no scheduler runs it
    last_due: float | None  # the latest due time a scheduler handled
    last_job: JobView | None  # that run's job, while its record is kept


def recurring_runs(connection: redis.Redis, entries: list[str]) -> dict[str, RecurringRun]:
    status = scheduler_status(connection)
    by_name = {e.entry: e for e in status.entries} if status else {}
    with connection.pipeline(transaction=False) as pipe:
        for name in entries:
            pipe.get(keys.scheduler_last(name))
        last_dues = [number_value(value, int) for value in read_replies(pipe)]
    last_ids = [keys.recurring_job_id(name, due) for name, due in zip(entries, last_dues) if due is not None]
    found = {view.id: view for view in jobs(connection, last_ids)}
    runs = {}
    for name, due in zip(entries, last_dues):
        scheduled = by_name.get(name)
        last_job = found.get(keys.recurring_job_id(name, due)) if due is not None else None
        runs[name] = RecurringRun(name, scheduled.next_run if scheduled else None, due, last_job)
    return runs
