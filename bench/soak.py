"""Soak: 100,000 jobs while a worker is killed (SIGKILL) at random every few seconds.

    python bench/soak.py [--jobs 100000] [--workers 2] [--kill-every 3] [--redis-url redis://127.0.0.1:6379/15]

Every job counts its own executions in Redis. At the end every job must be finished and have
run at least once; a job runs twice only when a kill hit it mid-run. Prints the counts. The
Redis database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def worker_pids(supervisor: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    return children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    options = parser.parse_args()

    import noop  # noqa: F401  (registers the jobs)

    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import QueueConfig, QueuesConfig

    print(
        f"# python bench/soak.py --jobs {options.jobs} --workers {options.workers} "
        f"--kill-every {options.kill_every} --redis-url {options.redis_url}"
    )
    print(f"# {os.cpu_count()} cores")
    connection = redis.Redis.from_url(options.redis_url)
    connection.flushdb()
    config = QueuesConfig("soak", {"bench": QueueConfig("bench", max_jobs=10**9)})
    started = time.monotonic()
    ids = enqueue_many(connection, config, "tally", (([n], {}) for n in range(options.jobs))).ids
    print(f"enqueued {len(ids)} jobs in {time.monotonic() - started:.1f}s")

    kills = 0
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text(f"bench: {{worker_count: {options.workers}, max_jobs: 1000000000}}\n")
        env = {
            **os.environ,
            "REDIS_URL": options.redis_url,
            "JOBCTL_JOBS": "noop",
            "PYTHONPATH": str(HERE),
            "JOBCTL_BENCH_REDIS_URL": options.redis_url,
        }
        work = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "work"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        try:
            next_kill = time.monotonic() + options.kill_every
            while connection.zcard("rq:finished:bench") < options.jobs:
                if time.monotonic() >= next_kill and (pids := worker_pids(work.pid)):
                    os.kill(random.choice(pids), signal.SIGKILL)
                    kills += 1
                    next_kill = time.monotonic() + random.uniform(0.5, 1.5) * options.kill_every
                if time.monotonic() - started > 1800:
                    raise SystemExit("soak did not finish in 30 minutes")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            work.send_signal(signal.SIGTERM)
            work.wait(timeout=60)

    executions = {int(n): int(count) for n, count in connection.hgetall("jobctl:bench:executions").items()}
    histogram = Counter(executions.get(n, 0) for n in range(options.jobs))
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        states = Counter(status.decode() if status else "missing" for status in pipe.execute())
    print(
        f"ran {options.jobs} jobs in {elapsed:.1f}s ({options.jobs / elapsed:.0f} jobs/s) with {kills} workers killed"
    )
    print(f"job states: {dict(states)}")
    print(
        f"executed exactly once: {histogram[1]}, more than once (a kill hit them mid-run): "
        f"{sum(c for k, c in histogram.items() if k > 1)}, never: {histogram[0]}"
    )
    connection.flushdb()
    if histogram[0] or states.get("finished", 0) != options.jobs:
        raise SystemExit("LOST JOBS")


if __name__ == "__main__":
    main()
