"""Memory: an idle worker's resident size, and whether it grows over a long run.

    python bench/memory.py [--jobs 100000] [--redis-url redis://127.0.0.1:6379/14]

Starts `jobctl work` with one worker (`concurrency` 1, then 8), reads the worker's RSS while
idle, runs the jobs, and reads it again. The Redis database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no RSS for {pid}")


def worker_pid(supervisor: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise SystemExit("no worker started")


WARM_UP = 1000  # jobs after which a worker has imported and cached what its jobs need


def measure(url: str, jobs: int, concurrency: int) -> tuple[float, float, float, float]:
    """(idle RSS, RSS after WARM_UP jobs, peak, RSS after all jobs), in MB, of one worker."""
    import noop  # noqa: F401

    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import QueueConfig, QueuesConfig

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text(
            f"bench: {{worker_count: 1, concurrency: {concurrency}, max_jobs: 1000000000, result_ttl: 60}}\n"
        )
        env = {**os.environ, "REDIS_URL": url, "JOBCTL_JOBS": "noop", "PYTHONPATH": str(HERE)}
        work = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "work"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            pid = worker_pid(work.pid)
            time.sleep(2)
            idle = rss_mb(pid)
            config = QueuesConfig("bench", {"bench": QueueConfig("bench", result_ttl=60)})
            enqueue_many(connection, config, "noop", (([n], {}) for n in range(jobs)))
            samples, warm = [], None
            while (done := connection.zcard("rq:finished:bench")) < jobs:
                samples.append(rss_mb(pid))
                if warm is None and done >= WARM_UP:
                    warm = samples[-1]
                time.sleep(0.2)
            time.sleep(1.5)  # a last tracking flush
            after = rss_mb(pid)
        finally:
            work.terminate()
            work.wait(timeout=30)
    connection.flushdb()
    return idle, warm or idle, max(samples, default=after), after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    print(f"# python bench/memory.py --jobs {options.jobs} --redis-url {options.redis_url}")
    print(f"# {os.cpu_count()} cores, one worker; growth counted from the first {WARM_UP} jobs on")
    for concurrency in (1, 8):
        idle, warm, peak, after = measure(options.redis_url, options.jobs, concurrency)
        print(
            f"concurrency {concurrency}: idle {idle:5.1f} MB, after {WARM_UP} jobs {warm:5.1f} MB, peak {peak:5.1f} MB, "
            f"after {options.jobs} {after:5.1f} MB (growth {after - warm:+.1f} MB)"
        )


if __name__ == "__main__":
    main()
