"""The data API's status: queues, workers, running jobs, recent failures and the scheduler, and
the job-tracking counters. With its siblings (records.py: job records and ids; jobdetail.py:
`show`; jobstats.py: `stats` and the charts; joblists.py: the dashboard's lists) it is every
number and record the front ends show, read from Redis in one place: `status` (one-shot and
`--live`), `stats`, `show`, the dashboard, the demo and the Prometheus exporter read through
them and never talk to Redis themselves. Counts come from list lengths, sorted-set
sizes and the job-tracking counters, never from scanning jobs, so a refresh costs the same with
a million jobs as with ten (bench/status_scale.py measures it). Each read is one or two
pipelined round trips.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ..config.queues import QueueConfig, QueuesConfig
from ..store import keys
from ..store.connection import read_one, read_replies
from ..store.jobdata import STATES, JobView, number_value, parse_rq_time, text_value
from ..store.locate import known_queues
from .records import STATE_KEYS, counter_value, jobs, listed_jobs, text_of

if TYPE_CHECKING:
    import redis

THROUGHPUT_WINDOWS = 60 // keys.THROUGHPUT_WINDOW  # "the last minute", in throughput windows
RECENT_FAILURES = 10


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
        text = {text_of(k): v for k, v in raw.items()}
        return cls(
            **{
                name: counter_value(text.get(name))
                for name in ("runs", "successes", "failures", "retries", "dead", "crashes")
            },
            run_seconds=number_value(text.get("run_seconds")) or 0.0,
            max_run_seconds=number_value(text.get("max_run_seconds")),
            last_run_at=number_value(text.get("last_run_at")),
            last_error=text_value(text.get("last_error")),
            last_error_at=number_value(text.get("last_error_at")),
        )

    @classmethod
    def combined(cls, parts: list[Counters]) -> Counters:
        """The counters of a job type kept per queue (on a Redis Cluster), added up."""
        total = cls()
        for part in parts:
            for name in ("runs", "successes", "failures", "retries", "dead", "crashes", "run_seconds"):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            for name in ("max_run_seconds", "last_run_at"):
                values = [v for v in (getattr(total, name), getattr(part, name)) if v is not None]
                setattr(total, name, max(values) if values else None)
            if part.last_error_at is not None and (total.last_error_at or 0) <= part.last_error_at:
                total.last_error, total.last_error_at = part.last_error, part.last_error_at
        return total

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
    return {bound: counter_value(count) for bound, count in buckets.items() if bound is not None}


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
    # the range queue.yml gives `jobctl work` for it (each supervisor's: see Pool in runtime/scaling.py)
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
class BreakerSummary:
    """A circuit breaker of queue.yml's `breakers:` as Redis holds it (keys.breaker)."""

    name: str
    state: str  # closed | open | half_open (open, its cool-down over: one trial job decides)
    failures: int  # counted failures within its window (closed)
    threshold: int  # the failures that open it
    opened_at: float | None
    open_until: float | None
    opens: int  # how many times it opened
    trial: str | None  # the job holding its half-open trial
    queue: str = ""  # on a Redis Cluster, where a breaker is kept per queue: the queue it counts

    @property
    def label(self) -> str:
        """How views name it: the breaker, and on a cluster its queue."""
        return f"{self.name} on {self.queue}" if self.queue else self.name

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def breakers(connection: redis.Redis, config: QueuesConfig, now: float | None = None) -> list[BreakerSummary]:
    """queue.yml's breakers and their state, in one pipelined round trip. On a Redis Cluster a
    breaker is kept per queue: one summary per queue where it has a state or counted failures
    (one closed summary where it has none anywhere)."""
    now = time.time() if now is None else now
    layout = keys.layout_of(connection)
    places = [
        (name, breaker, queue)
        for name, breaker in config.breakers.items()
        for queue in (list(config.queues) if layout.cluster else [""])
    ]
    with connection.pipeline(transaction=False) as pipe:
        for name, breaker, queue in places:
            pipe.hmget(layout.breaker(name, queue), "state", "opened_at", "open_until", "opens", "trial")
            pipe.zcount(layout.breaker_failures(name, queue), now - breaker.window, "+inf")
        replies = read_replies(pipe)
    summaries = []
    for (name, breaker, queue), fields, failures in zip(places, replies[::2], replies[1::2]):
        state, opened_at, open_until, opens, trial = fields
        if queue and state is None and not failures:
            continue
        until = number_value(open_until)
        shown = "closed"
        if text_value(state) == "open":
            shown = "open" if until is None or now < until else "half_open"
        summaries.append(
            BreakerSummary(
                name,
                shown,
                int(failures) if shown == "closed" else 0,
                breaker.failures,
                number_value(opened_at) if shown != "closed" else None,
                until if shown != "closed" else None,
                number_value(opens, int) or 0,
                text_value(trial),
                queue,
            )
        )
    shown_names = {summary.name for summary in summaries}
    summaries += [
        BreakerSummary(name, "closed", 0, breaker.failures, None, None, 0, None)
        for name, breaker in config.breakers.items()
        if name not in shown_names
    ]
    return summaries


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
    breakers: list[BreakerSummary] = field(default_factory=list)  # queue.yml's circuit breakers

    def to_dict(self) -> dict[str, Any]:
        return {
            "breakers": [b.to_dict() for b in self.breakers],
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
    names = sorted(set(known_queues(connection)) - set(config.queues))
    summaries = _summaries(connection, [QueueConfig(name) for name in names], time.time() if now is None else now)
    return [summary for summary in summaries if summary.waiting]


def _summaries(connection: redis.Redis, queues: list[QueueConfig], now: float) -> list[QueueSummary]:
    current = int(now // keys.THROUGHPUT_WINDOW)
    windows = range(current - THROUGHPUT_WINDOWS + 1, current + 1)
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        for name in (q.name for q in queues):
            for state, key in STATE_KEYS.items():
                if state == "queued":
                    pipe.llen(key(layout, name))
                else:
                    pipe.zcard(key(layout, name))
            pipe.sismember(keys.PAUSED, name)
            pipe.lindex(layout.queue(name), 0)
            pipe.hgetall(layout.queue_stats(name))
            for window in windows:
                pipe.hmget(layout.throughput(name, window), ["finished", "failed"])
        replies = iter(read_replies(pipe))
    summaries, heads = [], []
    for q in queues:
        summary = QueueSummary(q.name, q.priority, q.weight, {state: int(next(replies)) for state in STATES})
        summary.paused = bool(next(replies))
        heads.append(next(replies))
        summary.totals = Counters.from_hash(next(replies))
        for _ in windows:
            finished, failed = next(replies)
            summary.processed_last_minute += counter_value(finished) + counter_value(failed)
            summary.failed_last_minute += counter_value(failed)
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
    waiting = [(queue, text_of(head)) for queue, head in heads.items() if head]
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        for queue, head in waiting:
            pipe.hget(layout.job(head, queue), "enqueued_at")
        enqueued = read_replies(pipe)
    waits: dict[str, float | None] = dict.fromkeys(heads)
    for (queue, _), enqueued_at in zip(waiting, enqueued):
        moment = parse_rq_time(enqueued_at)
        waits[queue] = max(0.0, now - moment) if moment is not None else None
    return waits


def workers(connection: redis.Redis) -> list[WorkerSummary]:
    worker_keys = sorted(
        text_of(k) for k in cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(keys.WORKERS)))
    )
    # on a cluster rq:worker:{<queue>}:<name>: the worker's keys are in its queue's slot; a member
    # naming no queue there (another tool's, a hand's) names no worker keys to read: left out
    layout = keys.layout_of(connection)
    homes = [key.removeprefix(keys.worker("")).partition("}:")[0][1:] if "}:" in key else "" for key in worker_keys]
    if layout.cluster:
        worker_keys, homes = [k for k, h in zip(worker_keys, homes) if h], [h for h in homes if h]
    names = [key.removeprefix(layout.worker("", home)) for key, home in zip(worker_keys, homes)]
    with connection.pipeline(transaction=False) as pipe:
        for key, name, home in zip(worker_keys, names, homes):
            pipe.hgetall(key)
            pipe.lrange(layout.active(name, home), 0, -1)
        replies = read_replies(pipe)
    summaries = []
    for name, raw, in_flight in zip(names, replies[::2], replies[1::2]):
        if not raw:
            summaries.append(WorkerSummary(name, name.rsplit(".", 1)[0], None, [], "gone"))
            continue
        text = {text_of(k): text_of(v) for k, v in raw.items()}
        held = [text_of(job_id) for job_id in in_flight]
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
                done=counter_value(text.get("successful_job_count")),
                failed=counter_value(text.get("failed_job_count")),
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
    layout = keys.layout_of(connection)
    # on a cluster each queue keeps its own, in its slot
    lists = [layout.recent_failures(q) for q in known_queues(connection)] if layout.cluster else [keys.RECENT_FAILURES]
    with connection.pipeline(transaction=False) as pipe:
        for key in lists:
            pipe.lrange(key, 0, limit - 1)
        entries = [entry for found in read_replies(pipe) for entry in found]
    return newest_first(entries)[:limit]


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
        SchedulerEntry(text_of(field), number_value(next_runs[field]), number_value(last))
        for field, last in zip(fields, last_runs)
    ]
    # an entry whose next run is not a time (another tool's) is listed last
    entries.sort(key=lambda e: (e.next_run is None, e.next_run or 0.0))
    return SchedulerStatus(number_value(heartbeat), entries)


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
        breakers(connection, config, now),
    )


def dead_job_ids(connection: redis.Redis, queue: str) -> list[str]:
    return [
        text_of(m) for m in cast("list[bytes]", read_one(connection, lambda pipe: pipe.zrange(keys.dead(queue), 0, -1)))
    ]
