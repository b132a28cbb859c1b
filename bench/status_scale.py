"""Status and stats refresh cost: 10 queued jobs against 1,000,000, on one Redis.

    python bench/status_scale.py [--jobs 1000000] [--repeat 200] [--redis-url redis://127.0.0.1:6379/14]

What `status`, `status --live`, `stats` and `/metrics` do on every refresh (api.overview plus
jobstats.stats) must not depend on how many jobs there are: counts come from LLEN/ZCARD and counters,
never from scanning job hashes. The script fills one pair of queues with 10 job ids and another
with N (pipelined RPUSH; the oldest job also gets its hash, for the latency figure), each with
a tenth as many dead ids, shares one set of job tracking records (20 job types with counters,
histograms and full histories), and times refreshes of both pairs in alternation (so that other
load on the machine hits both alike). The Redis database given is flushed before and after:
use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import redis

from jobctl.api import jobstats
from jobctl.api import reads as api
from jobctl.config.queues import QueueConfig, QueuesConfig
from jobctl.store import keys
from jobctl.store.jobdata import rq_time

CHUNK = 10_000
JOB_TYPES = [f"job_{n}" for n in range(20)]


def queues(prefix: str) -> QueuesConfig:
    return QueuesConfig(
        "bench",
        {
            f"{prefix}{name}": QueueConfig(f"{prefix}{name}", priority=i)
            for i, name in enumerate(("default", "analytics"))
        },
    )


def fill(connection: redis.Redis, config: QueuesConfig, count: int) -> None:
    """`count` job ids on the config's first queue, count/10 in its dead set."""
    queue, now = next(iter(config.queues)), time.time()
    with connection.pipeline(transaction=False) as pipe:
        for start in range(0, count, CHUNK):
            pipe.rpush(keys.queue(queue), *(f"{queue}-{n}" for n in range(start, min(count, start + CHUNK))))
            if start // CHUNK % 10 == 0:
                pipe.execute()
        dead = max(1, count // 10)
        for start in range(0, dead, CHUNK):
            pipe.zadd(keys.dead(queue), {f"{queue}-dead-{n}": now + n for n in range(start, min(dead, start + CHUNK))})
        pipe.hset(keys.job(f"{queue}-0"), mapping={"enqueued_at": rq_time(now - 60), "status": "queued"})
        pipe.execute()
    assert connection.llen(keys.queue(queue)) == count


def track(connection: redis.Redis) -> None:
    """The same job tracking records for both sizes: counters, histograms, full histories."""
    now = time.time()
    with connection.pipeline(transaction=False) as pipe:
        for name in JOB_TYPES:
            pipe.hset(
                keys.job_stats(name),
                mapping={
                    "runs": 1000,
                    "successes": 990,
                    "failures": 10,
                    "run_seconds": 250.0,
                    "max_run_seconds": 3.2,
                    "last_run_at": now,
                },
            )
            pipe.hset(keys.run_time_histogram(name), mapping={"0.1": 400, "0.25": 500, "1": 90, "5": 10})
            entry = json.dumps(
                {
                    "id": "x",
                    "job": name,
                    "queue": "default",
                    "args": [1],
                    "kwargs": {},
                    "attempt": 1,
                    "outcome": "finished",
                    "run_seconds": 0.2,
                    "at": now,
                    "error": None,
                }
            )
            pipe.lpush(keys.history(name), *[entry] * keys.HISTORY_LENGTH)
        pipe.execute()


def refresh(connection: redis.Redis, config: QueuesConfig) -> float:
    started = time.perf_counter()
    api.overview(connection, config)
    jobstats.stats(connection, config, JOB_TYPES)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    connection = redis.Redis.from_url(options.redis_url)
    connection.flushdb()
    sizes = {10: queues("small_"), options.jobs: queues("large_")}
    started = time.perf_counter()
    for count, config in sizes.items():
        fill(connection, config, count)
    track(connection)
    print(
        f"filled {sum(sizes):,} queued and {sum(max(1, c // 10) for c in sizes):,} dead job ids in "
        f"{time.perf_counter() - started:.1f}s"
    )
    timings = {count: [] for count in sizes}
    for round_number in range(options.repeat + 5):  # interleaved, so that load on the machine hits both alike
        for count, config in sizes.items():
            seconds = refresh(connection, config)
            if round_number >= 5:  # the first rounds warm up connections and caches
                timings[count].append(seconds)
    connection.flushdb()
    median = {count: statistics.median(values) for count, values in timings.items()}
    for count in sizes:
        print(
            f"{count:>9,} queued jobs (+{max(1, count // 10):,} dead): overview + stats refresh, "
            f"median of {options.repeat}: {median[count] * 1000:.2f} ms"
        )
    print(f"ratio {options.jobs:,} / 10 jobs: {median[options.jobs] / median[10]:.2f}x")
    print(
        f"redis {connection.info('server')['redis_version']}, {os.cpu_count()} cores, python {sys.version.split()[0]}"
    )
    print(
        f"reproduce: python bench/status_scale.py --jobs {options.jobs} --repeat {options.repeat} "
        f"--redis-url {options.redis_url}"
    )


if __name__ == "__main__":
    main()
