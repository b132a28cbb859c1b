"""The data API: every number and record the front ends show, read from Redis in one place.

`status` (one-shot and `--live`), `stats`, `show`, the demo and the Prometheus exporter read
through here and never talk to Redis themselves. Counts come from list lengths, sorted-set
sizes and the job-tracking counters, never from scanning jobs, so a refresh costs the same with
a million jobs as with ten (bench/status_scale.py measures it). Each read is one or two
pipelined round trips.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import joboutput, keys
from .config import QueueConfig, QueuesConfig
from .connection import read_one, read_replies
from .errors import UnknownJob, UsageError
from .jobdata import STATES, JobView, number_value, parse_rq_time, stream_outcome, text_value
from .joboutput import AttemptOutput

if TYPE_CHECKING:
    import redis

_COUNTED = {
    "queued": None,  # a list: LLEN
    "scheduled": keys.scheduled,
    "deferred": keys.deferred,
    "started": keys.started,
    "finished": keys.finished,
    "dead": keys.dead,
    "canceled": keys.canceled,
}
THROUGHPUT_WINDOWS = 60 // keys.THROUGHPUT_WINDOW  # "the last minute", in throughput windows
RECENT_FAILURES = 10
RECENT_EXECUTIONS = 10
GRAPH_LIMIT = 200  # dependents shown by `show`: a fan-out of thousands is summarized, not listed


def _count(value: bytes | str | None) -> int:
    """A counter's value: 0 when missing or not a number (written by another tool, or a hand)."""
    return number_value(value, int) or 0


def _name(value: bytes) -> str:
    """A name or id read from Redis (a key, a member, a field name), shown whatever its bytes."""
    return value.decode(errors="replace")


# --- job tracking counters -----------------------------------------------------------------------


@dataclass
class Counters:
    """A job type's or a queue's execution counters (keys.job_stats / keys.queue_stats)."""

    runs: int = 0
    successes: int = 0
    failures: int = 0  # failed executions, retried or not
    retries: int = 0
    dead: int = 0
    crashes: int = 0
    run_seconds: float = 0.0
    max_run_seconds: float | None = None
    last_run_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Counters:
        text = {_name(k): v for k, v in raw.items()}
        return cls(
            **{
                name: _count(text.get(name)) for name in ("runs", "successes", "failures", "retries", "dead", "crashes")
            },
            run_seconds=number_value(text.get("run_seconds")) or 0.0,
            max_run_seconds=number_value(text.get("max_run_seconds")),
            last_run_at=number_value(text.get("last_run_at")),
            last_error=text_value(text.get("last_error")),
            last_error_at=number_value(text.get("last_error_at")),
        )

    @property
    def error_rate(self) -> float | None:
        """Failed executions / executions, since tracking began."""
        return self.failures / self.runs if self.runs else None

    @property
    def avg_run_seconds(self) -> float | None:
        return self.run_seconds / self.runs if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "error_rate": self.error_rate, "avg_run_seconds": self.avg_run_seconds}


def parse_histogram(raw: dict[bytes, bytes]) -> dict[float, int]:
    """keys.run_time_histogram's hash -> {upper bound (math.inf last): runs in that bucket}; a
    field that is not a bucket's bound is left out."""
    buckets = {number_value(bound) or (math.inf if bound == b"+Inf" else None): count for bound, count in raw.items()}
    return {bound: _count(count) for bound, count in buckets.items() if bound is not None}


def run_time_percentile(histogram: dict[float, int], quantile: float, max_seconds: float | None) -> float | None:
    """The run time below which `quantile` of the runs fall, interpolated linearly inside its
    bucket (the way Prometheus' histogram_quantile does); never above the longest run seen."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen, lower = quantile * total, 0, 0.0
    for upper in (*keys.RUN_TIME_BUCKETS, math.inf):
        count = histogram.get(float(upper), 0)
        if count and seen + count >= rank:
            top = (
                max_seconds if upper == math.inf and max_seconds is not None else upper
            )  # the open bucket ends at the max
            value = lower + (top - lower) * (rank - seen) / count
            return min(value, max_seconds) if max_seconds is not None else value
        seen += count
        lower = upper
    return max_seconds


# --- status: queues, workers, running jobs, failures, scheduler ---------------------------------


@dataclass
class QueueSummary:
    name: str
    priority: int
    weight: int | None
    counts: dict[str, int]
    workers: int = 0
    busy: int = 0
    # the range queue.yml gives `jobctl work` for it (each supervisor's: see Pool in supervisor.py)
    min_workers: int | None = None
    max_workers: int | None = None
    paused: bool = False
    processed_last_minute: int = 0
    failed_last_minute: int = 0
    latency_seconds: float | None = None  # age of the oldest queued job
    totals: Counters = field(default_factory=Counters)

    @property
    def worker_range(self) -> str:
        """`2..10` for an elastic queue, '' for a fixed count."""
        if self.min_workers is None or self.min_workers == self.max_workers:
            return ""
        return f"{self.min_workers}..{self.max_workers}"

    @property
    def waiting(self) -> int:
        """Jobs that have not started yet."""
        return sum(self.counts[state] for state in ("queued", "scheduled", "deferred"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "priority": self.priority,
            "weight": self.weight,
            **self.counts,
            "workers": self.workers,
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "busy": self.busy,
            "paused": self.paused,
            "processed_last_minute": self.processed_last_minute,
            "failed_last_minute": self.failed_last_minute,
            "error_rate": self.totals.error_rate,
            "avg_run_seconds": self.totals.avg_run_seconds,
            "latency_seconds": self.latency_seconds,
        }


@dataclass
class WorkerSummary:
    name: str
    host: str
    pid: int | None
    queues: list[str]
    state: str  # idle | busy | gone (its heartbeat lapsed; its jobs are being recovered)
    current_job: str | None = None
    jobs: list[str] = field(default_factory=list)  # every job in flight (up to `concurrency`)
    concurrency: int = 1
    done: int = 0
    failed: int = 0
    birth: float | None = None
    last_heartbeat: float | None = None
    supervisor: str = ""
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SchedulerEntry:
    entry: str
    next_run: float | None  # None: not a time (written by another tool)
    last_run: float | None = None  # the due time of the latest run a scheduler enqueued (None: never ran)


@dataclass
class SchedulerStatus:
    heartbeat: float | None  # the scheduler's last tick, unix time
    entries: list[SchedulerEntry]  # soonest first

    def to_dict(self) -> dict[str, Any]:
        return {"heartbeat": self.heartbeat, "entries": [e.__dict__ for e in self.entries]}


@dataclass
class Overview:
    queues: list[QueueSummary]
    workers: list[WorkerSummary]
    running: list[JobView] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # newest first, keys.history's entries
    scheduler: SchedulerStatus | None = None  # None until a scheduler has written its keys
    unserved: list[QueueSummary] = field(default_factory=list)  # see unserved_queues
    taken_at: float = field(default_factory=time.time)
    suspended: bool = False  # RQ's `rq suspend`: workers take no new job

    def to_dict(self) -> dict[str, Any]:
        return {
            "queues": [q.to_dict() for q in self.queues],
            "workers": [w.to_dict() for w in self.workers],
            "running": [j.to_dict() for j in self.running],
            "failures": self.failures,
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "unserved": [{"name": q.name, **q.counts, "latency_seconds": q.latency_seconds} for q in self.unserved],
            "taken_at": self.taken_at,
            "suspended": self.suspended,
        }


def queue_summaries(connection: redis.Redis, config: QueuesConfig, now: float | None = None) -> list[QueueSummary]:
    summaries = _summaries(connection, list(config.queues.values()), time.time() if now is None else now)
    for summary, queue in zip(summaries, config.queues.values()):
        summary.min_workers, summary.max_workers = queue.min_workers, queue.max_workers
    return summaries


def unserved_queues(connection: redis.Redis, config: QueuesConfig, now: float | None = None) -> list[QueueSummary]:
    """Queues that hold waiting jobs (queued, scheduled or deferred) but are not in queue.yml, so
    no worker jobctl starts serves them: RQ code enqueuing on `Queue("reports")`, or a queue
    removed from queue.yml with jobs left on it."""
    prefix = keys.queue("")
    known = cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(keys.QUEUES)))
    names = sorted({_name(key).removeprefix(prefix) for key in known} - set(config.queues))
    summaries = _summaries(connection, [QueueConfig(name) for name in names], time.time() if now is None else now)
    return [summary for summary in summaries if summary.waiting]


def _summaries(connection: redis.Redis, queues: list[QueueConfig], now: float) -> list[QueueSummary]:
    current = int(now // keys.THROUGHPUT_WINDOW)
    windows = range(current - THROUGHPUT_WINDOWS + 1, current + 1)
    with connection.pipeline(transaction=False) as pipe:
        for name in (q.name for q in queues):
            for registry in _COUNTED.values():
                if registry is None:
                    pipe.llen(keys.queue(name))
                else:
                    pipe.zcard(registry(name))
            pipe.sismember(keys.PAUSED, name)
            pipe.lindex(keys.queue(name), 0)
            pipe.hgetall(keys.queue_stats(name))
            for window in windows:
                pipe.hmget(keys.throughput(name, window), ["finished", "failed"])
        replies = iter(read_replies(pipe))
    summaries, heads = [], []
    for q in queues:
        summary = QueueSummary(q.name, q.priority, q.weight, {state: int(next(replies)) for state in STATES})
        summary.paused = bool(next(replies))
        heads.append(next(replies))
        summary.totals = Counters.from_hash(next(replies))
        for _ in windows:
            finished, failed = next(replies)
            summary.processed_last_minute += _count(finished) + _count(failed)
            summary.failed_last_minute += _count(failed)
        summaries.append(summary)
    latencies = head_waits(connection, {summary.name: head for summary, head in zip(summaries, heads)}, now)
    for summary in summaries:
        summary.latency_seconds = latencies[summary.name]
    return summaries


def head_waits(connection: redis.Redis, heads: dict[str, bytes | None], now: float) -> dict[str, float | None]:
    """Each queue's latency: how long the job at the head of its list (LINDEX 0, the oldest
    queued) has waited since its enqueued_at; None for an empty queue or a time that does not
    read. `heads`: queue name -> the head's id. One round trip (the supervisor's autoscaling and
    the status read it)."""
    waiting = [(queue, _name(head)) for queue, head in heads.items() if head]
    with connection.pipeline(transaction=False) as pipe:
        for _, head in waiting:
            pipe.hget(keys.job(head), "enqueued_at")
        enqueued = read_replies(pipe)
    waits: dict[str, float | None] = dict.fromkeys(heads)
    for (queue, _), enqueued_at in zip(waiting, enqueued):
        moment = parse_rq_time(enqueued_at)
        waits[queue] = max(0.0, now - moment) if moment is not None else None
    return waits


def workers(connection: redis.Redis) -> list[WorkerSummary]:
    worker_keys = sorted(
        _name(k) for k in cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(keys.WORKERS)))
    )
    names = [key.removeprefix(keys.worker("")) for key in worker_keys]
    with connection.pipeline(transaction=False) as pipe:
        for key, name in zip(worker_keys, names):
            pipe.hgetall(key)
            pipe.lrange(keys.active(name), 0, -1)
        replies = read_replies(pipe)
    summaries = []
    for name, raw, in_flight in zip(names, replies[::2], replies[1::2]):
        if not raw:
            summaries.append(WorkerSummary(name, name.rsplit(".", 1)[0], None, [], "gone"))
            continue
        text = {_name(k): _name(v) for k, v in raw.items()}
        held = [_name(job_id) for job_id in in_flight]
        if "jobctl_lease" not in text and text.get("current_job"):
            # RQ's workers (engine: rq) keep no in-flight list, only their current_job; a jobctl
            # worker's current_job lags up to a second behind its in-flight list (tracking.py)
            held = [text["current_job"]]
        summaries.append(
            WorkerSummary(
                name=name,
                host=text.get("hostname", ""),
                pid=number_value(text.get("pid"), int),
                queues=[q for q in text.get("queues", "").split(",") if q],
                state="busy" if held else "idle",
                current_job=held[0] if held else None,
                jobs=held,
                concurrency=number_value(text.get("jobctl_concurrency"), int) or 1,
                done=_count(text.get("successful_job_count")),
                failed=_count(text.get("failed_job_count")),
                birth=parse_rq_time(text.get("birth")),
                last_heartbeat=parse_rq_time(text.get("last_heartbeat")),
                supervisor=text.get("jobctl_supervisor", ""),
                cpu_percent=number_value(text.get("jobctl_cpu_percent")),
                rss_bytes=number_value(text.get("jobctl_rss_bytes"), int),
            )
        )
    return summaries


_HISTORY_TYPES: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(("id", "job", "queue", "outcome", "error", "worker"), str),
    **dict.fromkeys(("at", "run_seconds"), (int, float)),
    "attempt": int,
    "args": (list, str),  # a string: tracking.py's note that they were too long to keep
    "kwargs": dict,
}


def _history_entry(raw: bytes) -> dict[str, Any] | None:
    """One execution as tracking.py records it, keeping only the values of the expected type
    (another tool's or a hand's entry shows what it can); None for what is not a JSON object."""
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict):
        return None
    kept: dict[str, Any] = {
        name: value
        for name, value in entry.items()
        if name in _HISTORY_TYPES and isinstance(value, _HISTORY_TYPES[name]) and not isinstance(value, bool)
    }
    for name in ("at", "run_seconds"):  # JSON has no NaN or infinity, but Python's json reads them
        if name in kept and not math.isfinite(kept[name]):
            del kept[name]
    return kept


def newest_first(entries: list[bytes]) -> list[dict[str, Any]]:
    """History entries in the order they ran: each worker pushes its own in batches (tracking.py),
    so the list's order is the order of the flushes."""
    found = [entry for entry in map(_history_entry, entries) if entry is not None]
    return sorted(found, key=lambda entry: entry.get("at") or 0, reverse=True)


def recent_failures(connection: redis.Redis, limit: int = RECENT_FAILURES) -> list[dict[str, Any]]:
    """The latest failed executions, newest first: {id, job, queue, args, kwargs, attempt,
    outcome ('retried' | 'dead'), run_seconds, at, error, worker}."""
    return newest_first(
        cast("list[bytes]", read_one(connection, lambda pipe: pipe.lrange(keys.RECENT_FAILURES, 0, limit - 1)))
    )


def scheduler_status(connection: redis.Redis) -> SchedulerStatus | None:
    """The scheduler's next runs and last tick, or None where no scheduler ever ran."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.SCHEDULER_NEXT_RUNS)
        pipe.get(keys.SCHEDULER_HEARTBEAT)
        next_runs, heartbeat = read_replies(pipe)
    if not next_runs and heartbeat is None:
        return None
    fields = list(next_runs)
    last_runs = (
        cast("list[bytes | None]", read_one(connection, lambda pipe: pipe.hmget(keys.SCHEDULER_LAST_RUNS, fields)))
        if fields
        else []
    )
    entries = [
        SchedulerEntry(_name(field), number_value(next_runs[field]), number_value(last))
        for field, last in zip(fields, last_runs)
    ]
    # an entry whose next run is not a time (another tool's) is listed last
    entries.sort(key=lambda e: (e.next_run is None, e.next_run or 0.0))
    return SchedulerStatus(number_value(heartbeat), entries)


def jobs(connection: redis.Redis, job_ids: list[str], pickle_queues: Collection[str] = ()) -> list[JobView]:
    """The jobs that still exist, in the order asked. Pickled payloads are decoded only for jobs
    of `pickle_queues` (QueuesConfig.pickle_queues)."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.JOB_PATHS)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        job_paths, *rows = read_replies(pipe)
    import_paths = {_name(path): _name(name) for path, name in job_paths.items()}
    views = []
    for job_id, raw in zip(job_ids, rows):
        if raw and (b"data" in raw or b"status" in raw):  # not a stub a late progress report left
            views.append(
                JobView.from_hash(
                    job_id, raw, trust_pickle=text_value(raw.get(b"origin")) in pickle_queues, import_paths=import_paths
                )
            )
    return views


MIN_PREFIX = 6  # characters of a job id that `show`, `cancel` ... accept in its place
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,160}")
_SCAN_BATCH = 1000
_AMBIGUOUS_LISTED = 10


def resolve_job_id(connection: redis.Redis, text: str, option: str = "") -> str:
    """The id of the one job whose id is `text` or starts with it (at least MIN_PREFIX
    characters). UnknownJob when none matches; UsageError, listing them, when several do.

    A prefix is looked up with SCAN MATCH rq:job:<prefix>*: no index to keep up to date, and
    Redis walks its keyspace in bounded steps without blocking. `option` (e.g. --depends-on)
    starts the error messages."""
    where = f"{option}: " if option else ""
    if not _PREFIX.fullmatch(text):
        raise UsageError(
            f"{where}job id {text[:60]!r}: expected letters, digits, '_', '-', '.' (and ':' in cron:... ids)"
        )
    if keys.is_job_id(text) and connection.type(keys.job(text)) == b"hash":
        return text
    if len(text) < MIN_PREFIX:
        raise UnknownJob(f"{where}no job with id {text!r} (an id prefix needs at least {MIN_PREFIX} characters)")
    found: set[str] = set()
    for key in connection.scan_iter(match=keys.job(text) + "*", count=_SCAN_BATCH):
        ident = _name(key).removeprefix(keys.job(""))
        if keys.is_job_id(ident):  # not rq:job:<id>:dependents and the like
            found.add(ident)
            if len(found) > _AMBIGUOUS_LISTED:
                break
    if not found:
        raise UnknownJob(f"{where}no job with id {text!r}")
    if len(found) > 1:
        listed = sorted(found)[:_AMBIGUOUS_LISTED]
        more = " ..." if len(found) > _AMBIGUOUS_LISTED else ""
        raise UsageError(f"{where}job id prefix {text!r} is ambiguous: it matches {', '.join(listed)}{more}")
    return found.pop()


def job(connection: redis.Redis, job_id: str, pickle_queues: Collection[str] = ()) -> JobView:
    found = jobs(connection, [job_id], pickle_queues)
    if not found:
        raise UnknownJob(f"no job with id {job_id!r} (finished jobs are kept for their queue's result_ttl)")
    view = found[0]
    if view.state in ("finished", "dead") and view.result is None and view.error is None:
        # an RQ worker's job: its outcome is only in the results stream
        latest = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            read_one(connection, lambda pipe: pipe.xrevrange(keys.results(job_id), count=1)),
        )
        if latest:
            view.result, view.error = stream_outcome(latest[0][1], view.queue in pickle_queues)
    parents = read_one(connection, lambda pipe: pipe.sunion([keys.dependencies(job_id), keys.old_dependencies(job_id)]))
    view.depends_on = sorted(map(_name, cast("set[bytes]", parents)))
    view.dependents = sorted(
        map(_name, cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(keys.dependents(job_id)))))
    )
    return view


def count_workers(queues: list[QueueSummary], found: list[WorkerSummary]) -> None:
    """Set each queue's live workers and how many of them are busy."""
    by_name = {q.name: q for q in queues}
    for worker in found:
        for queue in worker.queues:
            if queue in by_name and worker.state != "gone":
                by_name[queue].workers += 1
                by_name[queue].busy += worker.state == "busy"


def queues_with_workers(connection: redis.Redis, config: QueuesConfig) -> list[QueueSummary]:
    """The configured queues' summaries, their workers counted (the dashboard's Queues page)."""
    queues = queue_summaries(connection, config)
    count_workers(queues, workers(connection))
    return queues


def overview(connection: redis.Redis, config: QueuesConfig, *, running_in_full: bool = True) -> Overview:
    """`running_in_full=False`: the running jobs read as a list reads them (listed_jobs: no
    arguments beyond LIST_FIELD_BYTES), for a view that shows none (the dashboard's overview,
    the metrics) and is read every few seconds."""
    now = time.time()
    queues = queue_summaries(connection, config, now)
    all_workers = workers(connection)
    count_workers(queues, all_workers)
    in_flight = [job_id for w in all_workers for job_id in w.jobs]
    running = (
        jobs(connection, in_flight, config.pickle_queues)
        if running_in_full
        else listed_jobs(connection, in_flight).views
    )
    return Overview(
        queues,
        all_workers,
        running,
        recent_failures(connection),
        scheduler_status(connection),
        unserved_queues(connection, config, now),
        now,
        bool(connection.exists(keys.SUSPENDED)),
    )


def dead_job_ids(connection: redis.Redis, queue: str) -> list[str]:
    return [
        _name(m) for m in cast("list[bytes]", read_one(connection, lambda pipe: pipe.zrange(keys.dead(queue), 0, -1)))
    ]


# --- show: one job and its dependency graph -------------------------------------------------------


@dataclass
class Relative:
    """A parent or child of a job in its dependency graph."""

    id: str
    job: str | None  # None: the record expired (a parent that finished long ago)
    state: str | None
    reason: str | None = None
    canceled_by: str | None = None  # the parent whose end canceled it
    children: list[Relative] = field(default_factory=list)

    @property
    def canceled_by_parent(self) -> bool:
        """Canceled because a parent died (or was canceled): the failure cascade."""
        return self.state == "canceled" and self.canceled_by is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "state": self.state,
            "reason": self.reason,
            "canceled_by_parent": self.canceled_by_parent,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class JobDetail:
    job: JobView
    parents: list[Relative]
    children: list[Relative]  # each with its own children: the whole cascade below this job
    more_children: int = 0  # descendants not listed beyond GRAPH_LIMIT
    attempts: list[AttemptOutput] = field(default_factory=list)  # what each attempt printed, its times and traceback

    @property
    def waited_seconds(self) -> float | None:
        if self.job.started_at and self.job.enqueued_at:
            return max(0.0, self.job.started_at - self.job.enqueued_at)
        return None

    @property
    def ran_seconds(self) -> float | None:
        if self.job.started_at and self.job.ended_at:
            return max(0.0, self.job.ended_at - self.job.started_at)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.job.to_dict(),
            "waited_seconds": self.waited_seconds,
            "ran_seconds": self.ran_seconds,
            "parents": [p.to_dict() for p in self.parents],
            "children": [c.to_dict() for c in self.children],
            "more_children": self.more_children,
            **attempt_timings(self.job, self.attempts),
            "attempt_outputs": [a.to_dict() for a in self.attempts],
        }


def attempt_timings(job: JobView, attempts: list[AttemptOutput]) -> dict[str, Any]:
    """Timings across retries: first enqueued, total time waited in queues (before each
    attempt, from the attempts' start and end times), and from first enqueued to the end. The
    total wait is None when an attempt's times are missing (expired, or from before capture)."""
    waited: float | None = 0.0
    ready = job.created_at
    by_number = {a.attempt: a for a in attempts}
    for number in range(1, job.attempts + 1):
        attempt = by_number.get(number)
        started = job.started_at if number == job.attempts else attempt.started if attempt else None
        if waited is None or ready is None or started is None:
            waited = None
            break
        waited += max(0.0, started - ready)
        ready = attempt.ended if attempt else None
    if not job.attempts:
        waited = None
    end = job.ended_at if job.state in ("finished", "dead", "canceled") else None
    return {
        "first_enqueued_at": job.created_at,
        "total_waited_seconds": waited,
        "total_seconds": max(0.0, end - job.created_at) if end and job.created_at else None,
    }


def _relatives(connection: redis.Redis, ids: list[str]) -> list[Relative]:
    found = {view.id: view for view in jobs(connection, ids)}  # names and states only: no payload needed
    return [
        Relative(i, found[i].job, found[i].state, found[i].reason, found[i].canceled_by)
        if i in found
        else Relative(i, None, None)
        for i in ids
    ]


def job_detail(
    connection: redis.Redis, job_id: str, pickle_queues: Collection[str] = (), config: QueuesConfig | None = None
) -> JobDetail:
    """A job with its parents and every job below it, level by level (one round trip a level).
    `config`: for the max retries of a job whose record does not carry them (RQ's API enqueued it
    without a Retry), its queue's, as the worker applies them."""
    view = job(connection, job_id, pickle_queues)
    if view.max_retries is None and config is not None and view.queue in config.queues:
        view.max_retries = config.queues[view.queue].max_retries
    detail = JobDetail(
        view,
        _relatives(connection, view.depends_on),
        _relatives(connection, view.dependents),
        attempts=joboutput.read(connection, view.id, list(range(1, view.attempts + 1))),
    )
    level, listed = detail.children, {job_id, *view.dependents}
    while level:
        with connection.pipeline(transaction=False) as pipe:
            for node in level:
                pipe.smembers(keys.dependents(node.id))
            below = [sorted(map(_name, members)) for members in read_replies(pipe)]
        next_level = []
        for node, child_ids in zip(level, below):
            fresh = [c for c in child_ids if c not in listed]
            room = max(0, GRAPH_LIMIT - len(listed))
            detail.more_children += len(fresh) - min(room, len(fresh))
            listed.update(fresh[:room])
            node.children = _relatives(connection, fresh[:room])
            next_level += node.children
        level = next_level
    return detail


# --- stats: what job tracking recorded ------------------------------------------------------------


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


def tracked_job_names(connection: redis.Redis, registered: list[str]) -> list[str]:
    """The job types to report: those this process registered and every one that ever ran anywhere."""
    ran = {_name(name) for name in cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(keys.JOB_TYPES)))}
    return sorted(set(registered) | ran)


def processed_counts(connection: redis.Redis) -> dict[tuple[str, str, str], int]:
    """Executions by (job, queue, outcome), outcome being finished or failed; a field not of that
    form is left out."""
    counts = {}
    for labels, count in cast(
        "dict[bytes, bytes]", read_one(connection, lambda pipe: pipe.hgetall(keys.PROCESSED))
    ).items():
        parts = _name(labels).rsplit("|", 2)
        if len(parts) == 3 and parts[2] in ("finished", "failed"):
            job, queue, outcome = parts
            counts[(job, queue, outcome)] = _count(count)
    return counts


def job_type_stats(connection: redis.Redis, names: list[str], history: int = keys.HISTORY_LENGTH) -> list[JobTypeStats]:
    """Counters, histogram and the latest `history` executions of each job type, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.job_stats(name))
            pipe.hgetall(keys.run_time_histogram(name))
            if history:
                pipe.lrange(keys.history(name), 0, history - 1)
        replies = iter(read_replies(pipe))
    return [
        JobTypeStats(
            name,
            Counters.from_hash(next(replies)),
            parse_histogram(next(replies)),
            newest_first(next(replies)) if history else [],
        )
        for name in names
    ]


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
            pipe.hgetall(keys.queue_stats(name))
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


# --- job lists: one state of some queues, a page at a time (the dashboard) -----------------------

PAGE_SIZE = 50
FILTER_WINDOW = 1000  # registry entries a filtered page looks through at most: a page stays fast
# newest first where a registry's score grows with the end time; soonest first where it is a due time
_NEWEST_FIRST = {"finished", "dead", "canceled"}
_REGISTRIES = {state: registry for state, registry in _COUNTED.items() if registry is not None}  # all but queued


LIST_FIELD_BYTES = 16 * 1024  # of each field of a job record a list reads at most
# Run inside Redis: each record's fields, each value cut to ARGV[1] bytes and followed by its full
# length, so that a list of jobs costs the same whether their arguments are 20 bytes or 20 MB.
# A key that is not a hash (another tool's) reads as no record.
_CAPPED_RECORDS = """
local cap = tonumber(ARGV[1])
local records = {}
for i, key in ipairs(KEYS) do
  local record = {}
  if redis.call('TYPE', key).ok == 'hash' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local value = redis.call('HGET', key, field)
      table.insert(record, field)
      table.insert(record, string.sub(value, 1, cap))
      table.insert(record, #value)
    end
  end
  records[i] = record
end
return records
"""
# the start of a payload's JSON, [name, null, [args...], {kwargs}], up to its arguments
_PAYLOAD_HEAD = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*,\s*null\s*,\s*\[')


@dataclass
class ListedJobs:
    """Jobs as a list shows them. A job whose arguments are longer than a list reads has none in
    its view (args and kwargs empty); `previews` has the start of them, as JSON text, by id."""

    views: list[JobView]
    previews: dict[str, str] = field(default_factory=dict)


def _arguments_start(data: bytes) -> tuple[bool, str]:
    """(whether `data`, as read, is a whole payload of at most LIST_FIELD_BYTES once
    decompressed; the start of its arguments as text). Decompresses no more than that."""
    inflate = zlib.decompressobj()
    try:
        text, whole = inflate.decompress(data, LIST_FIELD_BYTES), inflate.eof
    except zlib.error:  # RQ also accepts an uncompressed payload
        text, whole = data[:LIST_FIELD_BYTES], len(data) <= LIST_FIELD_BYTES
    if text[:1] == b"\x80":
        return whole, "(pickled arguments)"
    shown = text.decode(errors="replace")
    head = _PAYLOAD_HEAD.match(shown)
    return whole, shown[head.end() :] if head else shown


def listed_jobs(connection: redis.Redis, job_ids: list[str]) -> ListedJobs:
    """The jobs that still exist, in the order asked, read in bounded memory: at most
    LIST_FIELD_BYTES of each field of each record (a field longer than that reads as missing,
    the arguments as a preview). Pickled payloads are not decoded: a list shows no unpickled value."""
    if not job_ids:
        return ListedJobs([])
    read_capped = connection.register_script(_CAPPED_RECORDS)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.JOB_PATHS)
        read_capped(keys=[keys.job(job_id) for job_id in job_ids], args=[LIST_FIELD_BYTES], client=pipe)
        job_paths, records = read_replies(pipe)
    import_paths = {_name(path): _name(name) for path, name in job_paths.items()}
    listed = ListedJobs([])
    for job_id, record in zip(job_ids, records):
        triples = [record[n : n + 3] for n in range(0, len(record), 3)]
        raw = {name: value for name, value, length in triples if length == len(value)}
        if not (b"data" in raw or b"status" in raw or any(name == b"data" for name, *_ in triples)):
            continue  # no record, or a stub a late progress report left
        data = next((value for name, value, _ in triples if name == b"data"), None)
        whole, preview = _arguments_start(data) if data is not None else (True, "")
        if whole:
            listed.views.append(JobView.from_hash(job_id, raw, import_paths=import_paths))
            continue
        raw.pop(b"data", None)
        view = JobView.from_hash(job_id, raw, import_paths=import_paths)
        view.unreadable = None  # not read, rather than unreadable: the job's own page reads it
        head = _PAYLOAD_HEAD.match(preview) if b"jobctl_job" not in raw else None
        if head:  # enqueued by RQ's API: the name is the payload's
            with contextlib.suppress(ValueError):
                view.job = import_paths.get(json.loads(head.group(1)), json.loads(head.group(1)))
        listed.views.append(view)
        listed.previews[job_id] = preview
    return listed


@dataclass
class JobFilter:
    """What a job list is narrowed to: a job name, and text found in the id or the arguments."""

    job: str | None = None
    text: str | None = None

    def __bool__(self) -> bool:
        return bool(self.job or self.text)

    def matches(self, view: JobView, preview: str | None = None) -> bool:
        """`preview`: the start of the arguments of a job whose view has none (ListedJobs)."""
        if self.job and view.job != self.job:
            return False
        if self.text:
            needle = self.text.lower()
            arguments = preview if preview is not None else f"{json.dumps(view.args)} {json.dumps(view.kwargs)}"
            return needle in f"{view.id} {arguments}".lower()
        return True

    def select(self, listed: ListedJobs) -> list[JobView]:
        return [view for view in listed.views if self.matches(view, listed.previews.get(view.id))]


@dataclass
class JobPage:
    state: str
    queues: list[str]
    jobs: list[JobView]
    total: int  # entries of the state in those queues (expired records included)
    start: int  # position of the first entry looked at
    next_start: int | None  # where the next page starts; None: this is the last
    scanned: int  # entries looked at; with a filter at most FILTER_WINDOW
    previews: dict[str, str] = field(default_factory=dict)  # see ListedJobs


def _state_length(pipe: redis.client.Pipeline, state: str, queue: str) -> None:
    if state == "queued":
        pipe.llen(keys.queue(queue))
    else:
        pipe.zcard(_REGISTRIES[state](queue))


def _state_range(pipe: redis.client.Pipeline, state: str, queue: str, first: int, last: int) -> None:
    if state == "queued":
        pipe.lrange(keys.queue(queue), first, last)
    elif state in _NEWEST_FIRST:
        pipe.zrevrange(_REGISTRIES[state](queue), first, last)
    else:
        pipe.zrange(_REGISTRIES[state](queue), first, last)


def _state_lengths(connection: redis.Redis, state: str, queues: list[str]) -> list[int]:
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            _state_length(pipe, state, queue)
        return [int(n) for n in read_replies(pipe)]


def _ids_at(
    connection: redis.Redis, state: str, queues: list[str], lengths: list[int], start: int, count: int
) -> list[str]:
    """The ids at positions [start, start + count) of the queues' `state` entries laid end to end
    (queues in the order given): one LRANGE/ZRANGE per queue touched, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        offset = 0
        for queue, length in zip(queues, lengths):
            first, last = max(start - offset, 0), min(start + count - offset, length) - 1
            if first <= last:
                _state_range(pipe, state, queue, first, last)
            offset += length
        ranges = read_replies(pipe)
    # the started registry's members are "<id>:<attempt>"
    ids = [_name(m) for members in ranges for m in members]
    return [i.rsplit(":", 1)[0] for i in ids] if state == "started" else ids


def job_page(
    connection: redis.Redis,
    state: str,
    queues: list[str],
    *,
    start: int = 0,
    size: int = PAGE_SIZE,
    where: JobFilter | None = None,
) -> JobPage:
    """A page of the `state` jobs of `queues`, from position `start`. Unfiltered, it costs one
    range read and one pipelined read of `size` records, however long the registries are. With a
    filter it looks through at most FILTER_WINDOW entries from `start` for `size` matches."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    lengths = _state_lengths(connection, state, queues)
    total = sum(lengths)
    start = max(0, min(start, total))
    if not where:
        listed = listed_jobs(connection, _ids_at(connection, state, queues, lengths, start, size))
        end = min(start + size, total)
        return JobPage(
            state, queues, listed.views, total, start, end if end < total else None, end - start, listed.previews
        )
    ids = _ids_at(connection, state, queues, lengths, start, FILTER_WINDOW)
    found: list[JobView] = []
    previews: dict[str, str] = {}
    scanned = 0
    for chunk_start in range(0, len(ids), size):
        chunk = ids[chunk_start : chunk_start + size]
        listed = listed_jobs(connection, chunk)
        found.extend(where.select(listed))
        previews.update(listed.previews)
        scanned = chunk_start + len(chunk)
        if len(found) >= size:
            break
    end = start + scanned
    shown = {view.id for view in found}
    previews = {job_id: text for job_id, text in previews.items() if job_id in shown}
    return JobPage(state, queues, found, total, start, end if end < total else None, scanned, previews)


def matching_job_batches(
    connection: redis.Redis,
    state: str,
    queue: str,
    where: JobFilter,
    batch: int = FILTER_WINDOW,
) -> Iterator[list[JobView]]:
    """Every `state` job of `queue` that matches, in batches, walking from the end of the
    registry to its start: acting on a batch (requeue, delete) removes entries at or after the
    current position only, so no entry is skipped."""
    end = _state_lengths(connection, state, [queue])[0]
    while end > 0:
        start = max(0, end - batch)
        yield where.select(listed_jobs(connection, _ids_at(connection, state, [queue], [end], start, end - start)))
        end = start


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
                pipe.hgetall(keys.minutes(queue, day))
        replies = iter(read_replies(pipe))
    history = MinuteHistory(first, [0] * minutes, [0] * minutes)
    for _queue in queues:
        for day in days:
            for field_name, count in next(replies).items():
                minute_of_day, _, outcome = _name(field_name).partition(":")
                minute = number_value(minute_of_day, int)
                if minute is None or outcome not in ("finished", "failed"):
                    continue  # not a field keys.minutes names
                index = day * 1440 + minute - first
                if 0 <= index < minutes:
                    (history.finished if outcome == "finished" else history.failed)[index] += _count(count)
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
