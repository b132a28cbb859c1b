"""Redis's own view of a job's cost, command by command: jobctl or Dramatiq on bench/counter.py's job.

    python bench/redis_breakdown.py [--system jobctl|dramatiq] [--concurrency 1] [--jobs 5000]
        [--monitor] [--redis-url redis://127.0.0.1:6379/14]

Runs one system as bench/throughput.py does (2 worker processes, its defaults; jobctl with
`--concurrency`) and prints, per job, Redis CPU (INFO cpu, system and user) and each command's
calls and µs (INFO commandstats, reset at the workers' start: a script's inner commands are
counted both in it and on their own). With --monitor, a MONITOR client also attributes each
script call's inner commands to the script (jobctl's functions by name); MONITOR slows Redis
down, so its CPU figures are not comparable then. The Redis database given is flushed.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import redis

_LINE = re.compile(r'[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("jobctl", "dramatiq"), default="jobctl")
    parser.add_argument("--concurrency", type=int, default=1, help="jobctl's, per worker process")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--monitor", action="store_true", help="attribute scripts' inner commands (slower)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    url, jobs = options.redis_url, options.jobs
    connection = redis.Redis.from_url(url)
    seen: dict[str, Any] = {}
    measure = harness.measure

    def measured(*args, **kwargs) -> harness.Run:
        monitor = None
        if options.monitor:
            log = Path(tempfile.mkdtemp(prefix="jobctl-monitor-")) / "monitor.txt"
            kwargs_redis = connection.connection_pool.connection_kwargs
            command = [
                "redis-cli",
                "-h",
                str(kwargs_redis.get("host", "127.0.0.1")),
                "-p",
                str(kwargs_redis.get("port", 6379)),
            ]
            monitor = subprocess.Popen([*command, "monitor"], stdout=log.open("w"))
            time.sleep(0.3)
            seen["log"] = log
        before = connection.info("cpu")
        try:
            run = measure(*args, **kwargs)  # resets the stats at the workers' start
        finally:
            if monitor is not None:
                monitor.terminate()
                monitor.wait()
        after = connection.info("cpu")
        seen["cpu"] = {
            kind: (after[f"used_cpu_{kind}"] - before[f"used_cpu_{kind}"]) * 1e6 / jobs for kind in ("sys", "user")
        }
        seen["stats"] = connection.info("commandstats")
        return run

    harness.measure = measured
    if options.system == "jobctl":
        run = harness.jobctl(url, jobs, f"bench: {{worker_count: 2, concurrency: {options.concurrency}}}\n")
    else:
        run = harness.dramatiq(url, jobs)
    cpu, stats = seen["cpu"], seen["stats"]
    print(
        f"# python bench/redis_breakdown.py --system {options.system} --concurrency {options.concurrency} --jobs {jobs}"
    )
    print(
        f"{run.system}: {run.rate:.0f} jobs/s, {run.commands_per_job:.1f} commands a job, Redis CPU "
        f"{1000 * run.redis_cpu_ms_per_job:.0f} µs a job (sys {cpu['sys']:.0f}, user {cpu['user']:.0f})"
    )
    print(f"  {'command':28s} {'calls/job':>9s} {'µs/job':>7s} {'µs/call':>8s}")
    for name, stat in sorted(stats.items(), key=lambda item: -item[1]["usec"]):
        if stat["calls"] >= jobs / 100:
            print(
                f"  {name.removeprefix('cmdstat_'):28s} {stat['calls'] / jobs:9.2f} {stat['usec'] / jobs:7.2f} {stat['usec_per_call']:8.2f}"
            )
    if options.monitor:
        attribute(seen["log"], jobs)
    connection.flushdb()


def attribute(log: Path, jobs: int) -> None:
    """Each top-level command's calls a job, a script's with its inner commands a call."""
    calls: collections.Counter[str] = collections.Counter()
    inner: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    current = ""
    for line in log.read_text(errors="replace").splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        source, command, first = found.groups()
        command = command.upper()
        if source == "lua":
            inner[current][command] += 1
            continue
        current = f"{command} {first}" if command in ("FCALL", "EVALSHA", "EVAL") else command
        calls[current] += 1
    print("  by MONITOR (a script's inner commands a call):")
    for name, count in calls.most_common():
        if count >= jobs / 100:
            commands = ", ".join(f"{c} {n / count:.1f}" for c, n in inner[name].most_common())
            print(f"  {name[:48]:48s} {count / jobs:6.2f} a job   {commands}")


if __name__ == "__main__":
    main()
