"""Job tracking, counted in memory by each worker and flushed to Redis about once a second.

Sidekiq counts processed and failed jobs in memory and writes them with its heartbeat; jobctl
does the same for all of its job tracking, to keep Redis commands per job few
(bench/redis_instructions.py): counters per job type and per queue, the
run-time histogram, the throughput windows, the recent attempts and failures, and the
worker's own job counts and state. The outcome scripts then do only what a job's safety needs,
and the numbers `status`, `stats`, the metrics and the dashboard read stay exact: a flush that
fails is added back and tried again, and a crashed worker delays at most one flush interval of
statistics (it never loses a job).

One flush is one script call (lua/track.lua), whose keys and fields are named here from
keys.py, so the script knows no key name of its own.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..store import keys
from ..store.transitions import Transitions

FLUSH_INTERVAL = 1.0  # seconds between flushes
HISTORY_ARGS_LIMIT = 1024  # bytes of JSON arguments a history entry keeps (a bulk payload is elided)
_BUCKET_LABELS = [f"{bound:g}" for bound in keys.RUN_TIME_BUCKETS] + ["+Inf"]


class AttemptRecord(NamedTuple):
    """One finished attempt, as a worker records it (a tuple: one is made per job)."""

    job_id: str
    job: str
    queue: str
    attempt: int
    outcome: str  # finished | retried | dead | canceled
    run_seconds: float
    at: float
    error: str | None
    args: list[Any]
    kwargs: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.outcome == "finished"


def bucket_label(seconds: float) -> str:
    """The run-time histogram bucket of a run: its upper bound, as keys.run_time_histogram names it."""
    for bound, label in zip(keys.RUN_TIME_BUCKETS, _BUCKET_LABELS):
        if seconds <= bound:
            return label
    return "+Inf"


def history_entry(record: AttemptRecord, worker: str) -> str:
    """keys.history's JSON entry; arguments beyond HISTORY_ARGS_LIMIT are replaced by their size."""
    args: list[Any] | str = record.args
    kwargs = record.kwargs
    size = len(json.dumps([args, kwargs], default=str))
    if size > HISTORY_ARGS_LIMIT:
        args, kwargs = f"({size} bytes of arguments, not kept)", {}
    return json.dumps(
        {
            "id": record.job_id,
            "job": record.job,
            "queue": record.queue,
            "args": args,
            "kwargs": kwargs,
            "attempt": record.attempt,
            "outcome": record.outcome,
            "run_seconds": round(record.run_seconds, 6),
            "at": record.at,
            "error": record.error,
            "worker": worker,
        },
        default=str,
    )


class Tracker:
    """What one worker process ran since its last flush."""

    def __init__(self, worker: str, layout: keys.Layout = keys.PLAIN, homes: tuple[str, ...] = ("",)):
        """`homes`: on a Redis Cluster (`layout`), the queues the worker serves, each slot of which
        holds what it counts of that queue (keys.Layout); on one Redis, one ('')."""
        self.worker, self.layout, self.homes = worker, layout, homes
        self._lock = threading.Lock()
        self._pending: list[AttemptRecord] = []

    def record(self, attempt: AttemptRecord) -> None:
        with self._lock:
            self._pending.append(attempt)

    def take(self) -> list[AttemptRecord]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def give_back(self, attempts: list[AttemptRecord]) -> None:
        """A flush failed: its attempts are counted in the next one."""
        with self._lock:
            self._pending[:0] = attempts

    def payload(
        self, attempts: list[AttemptRecord], current_jobs: list[str], suspended: bool = False, home: str = ""
    ) -> tuple[list[str], str]:
        """The script's KEYS and its one argument: every key to change and by how much, each key
        named by its index in KEYS (lua/track.lua). `suspended`: the worker takes no new job
        (`rq suspend`), the state RQ's worker shows while idle then. `home`: the queue of the
        attempts, on a cluster."""
        counters: dict[str, dict[str, Any]] = {}
        processed: dict[str, int] = defaultdict(int)
        histograms: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        windows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        minutes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # the attempts of each history key, and the failed ones: only the newest HISTORY_LENGTH of
        # each become entries (two JSON encodings each), the script trims to that many anyway
        histories: dict[str, list[AttemptRecord]] = defaultdict(list)
        failed_runs: list[AttemptRecord] = []
        done = failed = 0
        working = 0.0
        layout = self.layout
        # each key is named once per flush (a flush holds a second of jobs, mostly of a few kinds)
        named_for: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        for run in attempts:
            succeeded = run.outcome == "finished"
            seconds, at = run.run_seconds, run.at
            names = named_for.get((run.job, run.queue))
            if names is None:
                names = named_for[(run.job, run.queue)] = (
                    layout.job_stats(run.job, home),
                    layout.queue_stats(run.queue),
                    layout.run_time_histogram(run.job, home),
                    layout.history(run.job, home),
                )
            for key in names[:2]:
                c = counters.get(key)
                if c is None:
                    c = counters[key] = {
                        "runs": 0,
                        "successes": 0,
                        "failures": 0,
                        "run_seconds": 0.0,
                        "max_run_seconds": 0.0,
                        "last_run_at": 0.0,
                    }
                c["runs"] += 1
                c["successes" if succeeded else "failures"] += 1
                c["run_seconds"] += seconds
                if seconds > c["max_run_seconds"]:
                    c["max_run_seconds"] = seconds
                if at > c["last_run_at"]:
                    c["last_run_at"] = at
                if not succeeded:
                    c["last_error"], c["last_error_at"] = run.error or "", at
            outcome = "finished" if succeeded else "failed"
            processed[f"{run.job}|{run.queue}|{outcome}"] += 1
            histograms[names[2]][bucket_label(seconds)] += 1
            window = windows[layout.throughput(run.queue, int(at // keys.THROUGHPUT_WINDOW))]
            window[outcome] += 1
            window["run_seconds"] += seconds
            day, second_of_day = divmod(int(at), 86400)
            minutes[layout.minutes(run.queue, day)][f"{second_of_day // 60}:{outcome}"] += 1
            histories[names[3]].append(run)
            if succeeded:
                done += 1
            else:
                failed += 1
                failed_runs.append(run)
            working += seconds
        entries: dict[int, str] = {}  # by id(): a failure's entry is in its history and the failures alike

        def entry(run: AttemptRecord) -> str:
            found = entries.get(id(run))
            if found is None:
                found = entries[id(run)] = history_entry(run, self.worker)
            return found

        history = {key: [entry(run) for run in runs[-keys.HISTORY_LENGTH :]] for key, runs in histories.items()}
        failures = [entry(run) for run in failed_runs[-keys.HISTORY_LENGTH :]]
        named = [
            layout.processed(home),
            layout.job_types(home),
            layout.recent_failures(home),
            layout.worker(self.worker, home),
        ]

        def by_index(by_key: Mapping[str, Any]) -> dict[str, Any]:
            """The same values, each under the index (1-based) its key gets in KEYS."""
            indexed = {}
            for key, value in by_key.items():
                named.append(key)
                indexed[str(len(named))] = value
            return indexed

        return named, json.dumps(
            {
                "counters": by_index(counters),
                "processed": processed,
                "job_types": sorted({run.job for run in attempts}),
                "histograms": by_index(histograms),
                "windows": by_index(windows),
                "window_ttl": 3 * 60,
                "minutes": by_index(minutes),
                "minutes_ttl": keys.MINUTES_TTL,
                # only the newest entries can survive the trim: no more than that were made
                "history": by_index(history),
                "failures": failures,
                "history_length": keys.HISTORY_LENGTH,
                "done": done,
                "failed": failed,
                "working": working,
                "current_job": current_jobs[0] if current_jobs else "",
                "idle_state": "suspended" if suspended else "idle",
            }
        )


def flush(tracker: Tracker, transitions: Transitions, current_jobs: list[str], suspended: bool = False) -> None:
    """Write what the tracker holds (one call per queue on a cluster); on failure give back what
    was not written and re-raise."""
    pending = tracker.take()
    try:
        for home in tracker.homes:
            mine = [run for run in pending if not home or run.queue == home]
            transitions.track(*tracker.payload(mine, current_jobs, suspended, home))
            pending = [run for run in pending if home and run.queue != home]
    except BaseException:
        tracker.give_back(pending)
        raise
