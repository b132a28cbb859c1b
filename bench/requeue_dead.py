"""requeue-dead over many dead jobs: wall time and peak memory of `jobctl requeue-dead --all`,
with --dry-run and without.

    python bench/requeue_dead.py --redis-url redis://127.0.0.1:6380/0 [--jobs 100000]

(PYTHONPATH=<a checkout>/src to measure another version of jobctl.)

One job (bench/noop.py's `fails`) is run to its death by a real worker; its dead record (the
traceback, the errors, RQ's fields, as fail.lua leaves them) is then copied under `--jobs` ids
into the dead registry. Each command's peak resident size is its own (resource.getrusage of
a process that runs only it). The Redis database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
COPIES_PER_ROUND_TRIP = 1000


def dead_jobs(connection: redis.Redis, env: dict[str, str], workdir: str, count: int) -> None:
    """`count` dead jobs in the dead registry of queue bench, each a copy of a real one."""
    run = {"cwd": workdir, "env": env, "check": True, "capture_output": True}
    subprocess.run([sys.executable, "-m", "jobctl", "enqueue", "fails", "7"], **run)
    subprocess.run([sys.executable, "-m", "jobctl", "work", "--burst"], **run)
    [(template_id, score)] = connection.zrange("rq:failed:bench", 0, -1, withscores=True)
    fields = connection.hgetall(b"rq:job:" + template_id)
    connection.delete(b"rq:job:" + template_id, "rq:failed:bench")
    for first in range(0, count, COPIES_PER_ROUND_TRIP):
        with connection.pipeline(transaction=False) as pipe:
            ids = [str(uuid.uuid4()) for _ in range(min(COPIES_PER_ROUND_TRIP, count - first))]
            for job_id in ids:
                pipe.hset(f"rq:job:{job_id}", mapping=fields)
            pipe.zadd("rq:failed:bench", dict.fromkeys(ids, score))
            pipe.execute()


# Runs the command given and prints its peak RSS (kB). Measured from a small process of its own:
# a child's ru_maxrss starts at its parent's resident size at the fork (the kernel records the
# forked memory's high-water mark at exec), so the bench's own size would count.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def timed(command: list[str], workdir: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}: {done.stderr}")
    return time.monotonic() - started, int(done.stderr.split()[-1]) / 1024  # Linux: kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--redis-url", required=True)
    options = parser.parse_args()
    connection = redis.Redis.from_url(options.redis_url)
    connection.flushdb()
    print(f"# python bench/requeue_dead.py --jobs {options.jobs} --redis-url {options.redis_url}")
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text("bench: {worker_count: 1}\n")
        path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)]))  # another jobctl first
        env = {**os.environ, "REDIS_URL": options.redis_url, "JOBCTL_JOBS": "noop", "PYTHONPATH": path}
        dead_jobs(connection, env, workdir, options.jobs)
        base = [sys.executable, "-m", "jobctl", "requeue-dead", "--all", "--quiet"]
        for label, command in (("--dry-run", [*base, "--dry-run"]), ("requeue", base)):
            seconds, peak = timed(command, workdir, env)
            print(f"requeue-dead --all {label:9}: {seconds:6.1f} s, peak RSS {peak:6.1f} MB")
        queued, dead = connection.llen("rq:queue:bench"), connection.zcard("rq:failed:bench")
        print(f"# after: {queued} queued, {dead} dead")
    connection.flushdb()


if __name__ == "__main__":
    main()
