"""Redis's own work per job, counted in instructions: jobctl and Dramatiq on the same job.

    python bench/redis_instructions.py [--jobs 3000]

Redis CPU time per job (bench/throughput.py) swings by 20 % from run to run on a shared 2-core
machine. This benchmark runs a redis-server of its own under valgrind's callgrind, which counts
the instructions Redis executes (user space: the commands, the Lua scripts, the parsing of
requests; not the kernel's share of the network), the same count whatever else the machine does.
Each system runs bench/throughput.py's counter job with its defaults (jobctl: queue.yml
`bench: {worker_count: 2}`, and with `concurrency: 8`; Dramatiq `-p 2 -t 8`; and the least work
RQ's layout allows, bench/layout_floor.py's floor); the count runs
from starting the workers to the last job done, start-up included. Redis is much slower under
valgrind, so use a few thousand jobs. Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

import harness
import layout_floor


def instructions_per_job(pid: int, directory: str, run) -> tuple[float, harness.Run]:
    """Run `run()` (a harness system, which times its workers with harness.measure) and count the
    instructions Redis executed during its measure()."""
    measure = harness.measure
    counts: list[int] = []

    def counted(*args, **kwargs) -> harness.Run:
        harness.callgrind_zero(pid)
        result = measure(*args, **kwargs)
        counts.append(harness.callgrind_count(directory, pid))
        return result

    harness.measure = counted
    try:
        result = run()
    finally:
        harness.measure = measure
    return counts[-1] / result.jobs, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    options = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("redis-server")):
        raise SystemExit("needs valgrind and redis-server: apt-get install valgrind redis-server")
    print(f"# python bench/redis_instructions.py --jobs {options.jobs}")
    with tempfile.TemporaryDirectory(prefix="jobctl-callgrind-") as directory:
        server, url = harness.callgrind_redis(directory, shutil.which("redis-server") or "redis-server")
        try:
            systems = {
                "jobctl (bench: {worker_count: 2})": lambda: harness.jobctl(
                    url, options.jobs, "bench: {worker_count: 2}\n"
                ),
                "jobctl (concurrency: 8)": lambda: harness.jobctl(
                    url, options.jobs, "bench: {worker_count: 2, concurrency: 8}\n"
                ),
                "RQ's layout alone (bench/layout_floor.py)": lambda: layout_floor.floor(url, options.jobs),
                "dramatiq -p 2 -t 8": lambda: harness.dramatiq(url, options.jobs),
            }
            counts = {}
            for name, run in systems.items():
                counts[name], result = instructions_per_job(server.pid, directory, run)
                print(
                    f"{name:42s} {counts[name]:>10,.0f} Redis instructions per job  ({result.commands_per_job:.1f} commands)"
                )
            jobctl, threaded, floor, dramatiq = counts.values()
            print(f"jobctl / dramatiq: {jobctl / dramatiq:.2f}x (concurrency 8: {threaded / dramatiq:.2f}x)")
            print(f"jobctl / RQ's layout alone: {jobctl / floor:.2f}x")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
