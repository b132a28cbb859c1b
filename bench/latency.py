"""Latency: how soon a job enqueued while a worker is idle starts, jobctl against plain RQ.

    python bench/latency.py [--samples 300] [--redis-url redis://127.0.0.1:6379/14]

One job at a time is enqueued and waited for; the latency is the job's started_at minus its
enqueued_at, both written by the processes involved (same machine clock). The jobctl worker
serves two queues (`work --queue first --queue bench`) and the job lands on the second, where
an idle worker blocked on its first queue only would notice it late. The Redis database
given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def wait_idle_worker(connection: redis.Redis) -> None:
    deadline = time.monotonic() + 30
    while not connection.smembers("rq:workers"):
        if time.monotonic() > deadline:
            raise SystemExit("no worker registered")
        time.sleep(0.05)
    time.sleep(1)  # let it settle into its blocking fetch


def jobctl_latencies(url: str, samples: int) -> list[float]:
    import noop  # noqa: F401

    from jobctl.api.producer import enqueue
    from jobctl.config.queues import QueueConfig, QueuesConfig
    from jobctl.store.jobdata import parse_rq_time

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    config = QueuesConfig("bench", {"bench": QueueConfig("bench")})
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text("first: {worker_count: 1}\nbench: {worker_count: 0}\n")
        env = {**os.environ, "REDIS_URL": url, "JOBCTL_JOBS": "noop", "PYTHONPATH": str(HERE)}
        work = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "work", "--queue", "first", "--queue", "bench"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_idle_worker(connection)
            latencies = []
            for n in range(samples):
                job = enqueue(connection, config, "noop", [n])
                key = f"rq:job:{job.id}"
                while connection.hget(key, "status") != b"finished":
                    time.sleep(0.002)
                started, enqueued = connection.hmget(key, "started_at", "enqueued_at")
                latencies.append(parse_rq_time(started) - parse_rq_time(enqueued))
                time.sleep(0.01)  # the worker is idle again, blocked in its fetch
        finally:
            work.terminate()
            work.wait(timeout=30)
    return latencies


def rq_latencies(url: str, samples: int) -> list[float]:
    from rq import Queue
    from rq.serializers import JSONSerializer

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    queue = Queue("bench", connection=connection, serializer=JSONSerializer)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "-w",
            "rq.worker.SimpleWorker",
            "-u",
            url,
            "-S",
            "rq.serializers.JSONSerializer",
            "bench",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_idle_worker(connection)
        latencies = []
        for n in range(samples):
            job = queue.enqueue("noop.noop", n)
            while job.get_status() != "finished":
                time.sleep(0.002)
            job.refresh()
            latencies.append((job.started_at - job.enqueued_at).total_seconds())
            time.sleep(0.01)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    print(f"# python bench/latency.py --samples {options.samples} --redis-url {options.redis_url}")
    print(f"# {os.cpu_count()} cores, one idle worker, one job at a time")
    for name, measure in (
        ("rq worker (SimpleWorker)", rq_latencies),
        ("jobctl work, 2nd of 2 queues", jobctl_latencies),
    ):
        p50, p99 = percentiles(measure(options.redis_url, options.samples))
        print(f"{name:28s} p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms")
    redis.Redis.from_url(options.redis_url).flushdb()


if __name__ == "__main__":
    main()
