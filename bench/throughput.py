"""Throughput: no-op jobs per second, jobctl against plain RQ, side by side on one Redis.

    python bench/throughput.py [--jobs 5000] [--redis-url redis://127.0.0.1:6379/14]

Each runner gets the same pre-enqueued jobs and two worker processes. Jobs/s is measured from
the jobs' own timestamps (first start to last end), so process start-up is not counted. The
Redis database given is flushed before each run: use one that holds nothing else.
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


def jobs_per_second(starts: list[float], ends: list[float]) -> float:
    return len(ends) / (max(ends) - min(starts))


def wait_until(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(0.05)


def run_jobctl(url: str, count: int) -> float:
    from jobctl.config import QueueConfig, QueuesConfig
    from jobctl.jobdata import parse_rq_time
    from jobctl.producer import enqueue_many

    import noop  # noqa: F401  (registers the job)

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    config = QueuesConfig("bench", {"bench": QueueConfig("bench", worker_count=2, max_jobs=10**9)})
    ids = [job.id for job in enqueue_many(connection, config, "noop", [([i], {}) for i in range(count)])]
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text("bench: {worker_count: 2, max_jobs: 1000000000}\n")
        env = {**os.environ, "REDIS_URL": url, "JOBCTL_JOBS": "noop", "PYTHONPATH": str(HERE)}
        work = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "work", "--burst"], cwd=workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            work.wait(timeout=600)
        finally:
            if work.poll() is None:
                work.kill()
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
        rows = pipe.execute()
    assert all(status == b"finished" for _, _, status in rows), "not every jobctl job finished"
    return jobs_per_second([parse_rq_time(s) for s, _, _ in rows], [parse_rq_time(e) for _, e, _ in rows])


def run_rq(url: str, count: int) -> float:
    from rq import Queue
    from rq.serializers import JSONSerializer

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    queue = Queue("bench", connection=connection, serializer=JSONSerializer)
    jobs = queue.enqueue_many([Queue.prepare_data("noop.noop", args=(i,)) for i in range(count)])
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker-pool", "-n", "2", "-w", "rq.worker.SimpleWorker", "--burst",
         "-u", url, "-S", "rq.serializers.JSONSerializer", "bench"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, check=True,
    )
    for job in jobs:
        job.refresh()
    assert all(job.get_status(refresh=False) == "finished" for job in jobs), "not every RQ job finished"
    return jobs_per_second([job.started_at.timestamp() for job in jobs], [job.ended_at.timestamp() for job in jobs])


def run_dramatiq(url: str, count: int) -> float | None:
    """Dramatiq with two processes of eight threads (its default), if it is installed. Its actor
    records its own start and end times: two extra Redis writes per job it is not charged for."""
    try:
        import dramatiq  # noqa: F401
    except ImportError:
        return None
    env = {**os.environ, "PYTHONPATH": str(HERE), "JOBCTL_BENCH_REDIS_URL": url}
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    subprocess.run(
        [sys.executable, "-c", f"import dramatiq_actors as a; [a.noop.send(n) for n in range({count})]"],
        env=env, check=True, cwd=HERE,
    )
    workers = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "dramatiq_actors", "-p", "2", "-t", "8"],
        env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: connection.llen("bench:dramatiq:ended") >= count, timeout=600)
    finally:
        workers.terminate()
        workers.wait(timeout=60)
    starts = [float(t) for t in connection.lrange("bench:dramatiq:started", 0, -1)]
    ends = [float(t) for t in connection.lrange("bench:dramatiq:ended", 0, -1)]
    return jobs_per_second(starts, ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--chart", help="also write an SVG bar chart of the results to this file")
    options = parser.parse_args()
    print(f"# python bench/throughput.py --jobs {options.jobs} --redis-url {options.redis_url}")
    print(f"# {os.cpu_count()} cores, {options.jobs} no-op jobs pre-enqueued, two worker processes each")
    results = {
        "rq worker-pool -n 2 (SimpleWorker)": run_rq(options.redis_url, options.jobs),
        "jobctl work (2 workers)": run_jobctl(options.redis_url, options.jobs),
    }
    dramatiq_rate = run_dramatiq(options.redis_url, options.jobs)
    if dramatiq_rate is not None:
        results["dramatiq -p 2 -t 8"] = dramatiq_rate
    if options.chart:
        write_chart(options.chart, results, options.jobs)
    baseline = results["rq worker-pool -n 2 (SimpleWorker)"]
    for name, rate in results.items():
        print(f"{name:40s} {rate:8.0f} jobs/s   {rate / baseline:5.2f}x plain RQ")
    redis.Redis.from_url(options.redis_url).flushdb()


def write_chart(path: str, results: dict[str, float], jobs: int) -> None:
    """A horizontal bar chart, jobs/s per system, as a small standalone SVG."""
    width, bar, gap, label = 640, 26, 12, 250
    scale = (width - label - 90) / max(results.values())
    height = 40 + len(results) * (bar + gap)
    rows = []
    for i, (name, rate) in enumerate(results.items()):
        y = 30 + i * (bar + gap)
        colour = "#2f7d4f" if name.startswith("jobctl") else "#8a8f98"
        rows.append(
            f'<text x="{label - 8}" y="{y + bar * 0.68}" text-anchor="end">{name}</text>'
            f'<rect x="{label}" y="{y}" width="{rate * scale:.0f}" height="{bar}" fill="{colour}"/>'
            f'<text x="{label + rate * scale + 6:.0f}" y="{y + bar * 0.68}">{rate:,.0f}/s</text>'
        )
    Path(path).write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="13"><text x="10" y="18" font-weight="bold">No-op jobs per second, {jobs:,} jobs, '
        f'2 worker processes, {os.cpu_count()} cores</text>{"".join(rows)}</svg>\n'
    )


if __name__ == "__main__":
    main()
