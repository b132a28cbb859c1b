"""Throughput, like for like: jobctl, Dramatiq and RQ on the same job with their own defaults.

    python bench/throughput.py [--jobs 20000] [--rq-jobs 1000] [--rounds 3] [--redis-url redis://127.0.0.1:6379/14] [--chart docs/throughput.svg]

Every system runs bench/counter.py's job (it increments one Redis counter) with 2 worker
processes and its defaults: jobctl with queue.yml `bench: {worker_count: 2}` (so workers are
recycled every 1,000 jobs, as by default; and again with `concurrency: 8`, Dramatiq's number of
jobs in flight), Dramatiq `-p 2 -t 8`, RQ `worker-pool -n 2` (RQ's
forking Worker, so it gets fewer jobs: --rq-jobs). The jobs are enqueued first, each with its
system's own producer; the time runs from starting the workers (start-up counted) to the last
job done. Also printed: jobs/s by the jobs' own clocks (first start to last end), Redis
commands per job (scripts' inner calls counted, as INFO commandstats counts them; the job's own
INCR is one of them), Redis CPU per job and the CPU of the system's own processes per job
(start-up included), and Redis CPU per job side by side with Dramatiq's (INFO cpu, the workers'
run alone and with the enqueues before it). The systems run one after the other, `--rounds` times over; each system's
round with the median rate is shown (on a 2-core machine, runs differ by 10-20%). The Redis
database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import harness
import redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rq-jobs", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each system; the median is shown")
    parser.add_argument("--chart", help="also write an SVG bar chart of the results to this file")
    options = parser.parse_args()
    url = options.redis_url
    print(
        f"# python bench/throughput.py --jobs {options.jobs} --rq-jobs {options.rq_jobs} --rounds {options.rounds} "
        f"--redis-url {url}"
    )
    print(f"# {os.cpu_count()} cores; wall time from starting the workers to the last job done")
    systems = [
        lambda: harness.jobctl(url, options.jobs, "bench: {worker_count: 2}\n"),
        # as many jobs in flight as Dramatiq's default 2 x 8 threads
        lambda: harness.jobctl(url, options.jobs, "bench: {worker_count: 2, concurrency: 8}\n"),
        lambda: harness.dramatiq(url, options.jobs),
        lambda: harness.rq(url, options.rq_jobs),
    ]
    rounds = [[run() for run in systems] for _ in range(options.rounds)]
    runs = [median(list(of_system)) for of_system in zip(*rounds)]
    jobctl, threaded, dramatiq, rq = runs
    for i, of_round in enumerate(rounds, 1):
        print(f"# round {i}, jobs/s in the table's order: " + ", ".join(f"{run.rate:.0f}" for run in of_round))
    harness.report(runs, jobctl)
    print(
        f"jobctl / dramatiq: {jobctl.rate / dramatiq.rate:.2f}x (concurrency 8: {threaded.rate / dramatiq.rate:.2f}x)"
        f"   jobctl / rq: {jobctl.rate / rq.rate:.2f}x"
    )
    print("Redis CPU µs per job, side by side (the workers' run; with the enqueue before it):")
    for run in (jobctl, threaded, dramatiq):
        print(
            f"  {run.system:58s} {1000 * run.redis_cpu_ms_per_job:6.0f}"
            f" ({1000 * (run.redis_cpu_ms_per_job + run.enqueue_redis_cpu_ms_per_job):4.0f})"
            f"   {run.redis_cpu_ms_per_job / dramatiq.redis_cpu_ms_per_job:.2f}x Dramatiq's"
        )
    if options.chart:
        write_chart(options.chart, runs)
    redis.Redis.from_url(url).flushdb()


def median(runs: list[harness.Run]) -> harness.Run:
    return sorted(runs, key=lambda run: run.rate)[len(runs) // 2]


def write_chart(path: str, runs: list[harness.Run]) -> None:
    """A horizontal bar chart, jobs/s per system, as a small standalone SVG."""
    width, bar, gap, label = 680, 26, 12, 290
    scale = (width - label - 90) / max(run.rate for run in runs)
    height = 40 + len(runs) * (bar + gap)
    rows = []
    for i, run in enumerate(runs):
        y = 30 + i * (bar + gap)
        colour = "#2f7d4f" if run.system.startswith("jobctl") else "#8a8f98"
        name = f"{run.system.split(' (')[0]} ({run.jobs:,} jobs)"
        rows.append(
            f'<text x="{label - 8}" y="{y + bar * 0.68}" text-anchor="end">{name}</text>'
            f'<rect x="{label}" y="{y}" width="{run.rate * scale:.0f}" height="{bar}" fill="{colour}"/>'
            f'<text x="{label + run.rate * scale + 6:.0f}" y="{y + bar * 0.68}">{run.rate:,.0f}/s</text>'
        )
    Path(path).write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="13"><text x="10" y="18" font-weight="bold">Counter jobs per second, start-up included, '
        f"2 worker processes, defaults, {os.cpu_count()} cores</text>{''.join(rows)}</svg>\n"
    )


if __name__ == "__main__":
    main()
