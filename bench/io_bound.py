"""I/O-bound jobs: threads against Dramatiq, asyncio against arq, the same in-flight limit.

    python bench/io_bound.py [--jobs 800] [--pause 0.05] [--redis-url redis://127.0.0.1:6379/14]

bench/counter.py's job, made to wait `pause` seconds first (time.sleep, or asyncio.sleep in
its async form), as a job waiting on an API does. 2 worker processes of 8 in flight each:
- jobctl `worker_count: 2, concurrency: 8` (plain function, threads) against Dramatiq `-p 2 -t 8`;
- jobctl the same with the `async def` job (one event loop per process) against arq with
  `max_jobs: 8` in 2 processes.
Wall time from starting the workers to the last job done, start-up included. The ideal is
jobs × pause / 16 seconds. The Redis database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse

import harness
import redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    url, jobs, pause = options.redis_url, options.jobs, options.pause
    print(f"# python bench/io_bound.py --jobs {jobs} --pause {pause} --redis-url {url}")
    print(f"# ideal with 16 in flight: {jobs * pause / 16:.2f}s ({16 / pause:.0f} jobs/s)")
    queue_yml = "bench: {worker_count: 2, concurrency: 8}\n"
    threads = harness.jobctl(url, jobs, queue_yml, "counter", pause)
    dramatiq = harness.dramatiq(url, jobs, pause)
    harness.report([threads, dramatiq], threads)
    print(f"threads: jobctl / dramatiq {threads.rate / dramatiq.rate:.2f}x")
    in_loop = harness.jobctl(url, jobs, queue_yml, "async_counter", pause)
    arq = harness.arq(url, jobs, 8, pause)
    harness.report([in_loop, arq], in_loop)
    print(f"asyncio: jobctl / arq {in_loop.rate / arq.rate:.2f}x")
    redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
