"""Recycling: how long a queue goes without a worker when its worker is replaced after `max_jobs`.

    python bench/recycle.py [--jobs 3000] [--max-jobs 1000] [--runs 3] [--redis-url redis://127.0.0.1:6379/14]

One `jobctl work --burst` with one worker (queue.yml `bench: {worker_count: 1, max_jobs: N}`)
runs bench/counter.py's job; every job records when it started and ended (RQ's started_at and
ended_at, written by the worker). Ordered by start, the pause between one job's end and the next
one's start is none within a worker (the call that records an outcome starts the next job, at
the same time) and, where the next job is the successor's first, the recycle: printed per
recycle, with the median of the other pauses. The Redis database given is flushed: use one
that holds nothing else.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import harness  # imports bench/counter.py: the job, registered
import redis


def recycle_pauses(url: str, jobs: int, max_jobs: int) -> tuple[list[float], float]:
    """(the pauses at each change of worker, in ms; the median of the others, in ms)."""
    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import load_queues

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="jobctl-bench-recycle-"))
    (workdir / "queue.yml").write_text(f"bench: {{worker_count: 1, max_jobs: {max_jobs}}}\n")
    enqueue_many(connection, load_queues(str(workdir / "queue.yml")), "counter", [([jobs, 0], {})] * jobs)
    work = harness.popen(
        [sys.executable, "-m", "jobctl", "work", "--burst"], url, cwd=workdir, REDIS_URL=url, JOBCTL_JOBS="counter"
    )
    try:
        code = work.wait(timeout=600)
    except subprocess.TimeoutExpired:
        work.kill()
        raise SystemExit("jobctl work --burst took more than 10 minutes") from None
    if code != 0:
        raise SystemExit(f"jobctl work --burst exited with {code}")
    runs = []
    for key in connection.scan_iter("rq:job:*", count=1000):
        if key.count(b":") != 2:  # rq:job:<id>, not its results or dependency keys
            continue
        started, ended, worker = connection.hmget(key, "started_at", "ended_at", "worker_name")
        if started and ended:
            runs.append((_time(started), _time(ended), worker))
    runs.sort()
    changed, same = [], []
    for (_, end, worker), (start, _, next_worker) in itertools.pairwise(runs):
        (changed if worker != next_worker else same).append(1000 * (start - end))
    return changed, statistics.median(same)


def _time(rq_time: bytes) -> float:
    return datetime.strptime(rq_time.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--max-jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    print(
        f"# python bench/recycle.py --jobs {options.jobs} --max-jobs {options.max_jobs} --runs {options.runs} "
        f"--redis-url {options.redis_url}"
    )
    harness.compile_jobctl()
    for run in range(1, options.runs + 1):
        pauses, usual = recycle_pauses(options.redis_url, options.jobs, options.max_jobs)
        print(
            f"run {run}: pause at each recycle "
            + ", ".join(f"{pause:.1f}" for pause in pauses)
            + f" ms (between two jobs of one worker: median {usual:.3f} ms)"
        )


if __name__ == "__main__":
    main()
