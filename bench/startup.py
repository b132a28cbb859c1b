"""Command-line start-up: jobctl against RQ's own command line, command for command.

    python bench/startup.py [--runs 21] [--redis-url redis://127.0.0.1:6379/14]

Three pairs, each run as a user runs it (a new process from start to exit):
`jobctl --help` / `rq --help`; `jobctl enqueue noop 1` / `rq enqueue noop.noop 1` (bench/noop.py's
job, on the queue bench); `jobctl status` / `rq info` (against the same Redis). Both are started
the way their console scripts start them (`python -c "from jobctl.cli import main; main()"`,
likewise for rq.cli), in a scratch directory with a queue.yml for jobctl, and the runs
alternate, so that other load on the machine hits both alike. Printed: the median wall time of
each, its median CPU time (user + system: steadier than wall time on a busy machine) and the
ratio jobctl / RQ (below 1: jobctl starts faster), and `jobctl --help` against its budget of
150 ms. The Redis database given is flushed at the end: use one that holds nothing
else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
HELP_BUDGET = 0.150  # seconds: the bound for `jobctl --help`, a command typed by hand
WARM_UP = 2  # runs of each command left out: they write the .pyc files and fill the page cache


@dataclass
class Timing:
    wall: list[float]
    cpu: list[float]


def run(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of the command; the command must succeed."""
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def cli(module: str, *args: str) -> list[str]:
    """What the console script of `module` runs."""
    return [sys.executable, "-c", f"from {module} import main; main()", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help=f"runs of each command (after {WARM_UP} warm-up runs)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    connection = redis.Redis.from_url(options.redis_url)
    connection.ping()
    url = options.redis_url
    pairs = {
        "--help": (cli("jobctl.cli", "--help"), cli("rq.cli", "--help")),
        "enqueue": (
            cli("jobctl.cli", "enqueue", "noop", "1"),
            cli("rq.cli", "enqueue", "--url", url, "--queue", "bench", "noop.noop", "1"),
        ),
        "status": (cli("jobctl.cli", "status"), cli("rq.cli", "info", "--url", url)),
    }
    env = {
        # bytecode cached as an installed package has it: without, every run compiles jobctl's
        # modules from source (a checkout's src/ has no .pyc until something writes them)
        **{name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")])),
        "REDIS_URL": url,
        "JOBCTL_JOBS": "noop",
        "COLUMNS": "120",
    }
    timings = {(name, system): Timing([], []) for name in pairs for system in ("jobctl", "rq")}
    try:
        with tempfile.TemporaryDirectory(prefix="jobctl-startup-") as project:
            Path(project, "queue.yml").write_text("bench: {worker_count: 1}\n")
            for round_number in range(WARM_UP + options.runs):
                for name, commands in pairs.items():
                    for system, argv in zip(("jobctl", "rq"), commands):
                        wall, cpu = run(argv, project, env)
                        if round_number >= WARM_UP:
                            timings[name, system].wall.append(wall)
                            timings[name, system].cpu.append(cpu)
    finally:
        connection.flushdb()
    median = {key: (statistics.median(t.wall), statistics.median(t.cpu)) for key, t in timings.items()}
    print(f"median of {options.runs} alternating runs (wall / cpu ms); ratio jobctl / rq")
    for name, (jobctl_argv, rq_argv) in pairs.items():
        (jw, jc), (rw, rc) = median[name, "jobctl"], median[name, "rq"]
        print(
            f"  {'jobctl ' + ' '.join(jobctl_argv[3:]):<26} {jw * 1000:6.0f} / {jc * 1000:4.0f}   "
            f"{'rq ' + ' '.join(a for a in rq_argv[3:] if a != url):<38} {rw * 1000:6.0f} / {rc * 1000:4.0f}   "
            f"ratio {jw / rw:.2f} (cpu {jc / rc:.2f})"
        )
    help_wall = median["--help", "jobctl"][0]
    verdict = "within" if help_wall <= HELP_BUDGET else "OVER"
    print(f"jobctl --help: {help_wall * 1000:.0f} ms, {verdict} the {HELP_BUDGET * 1000:.0f} ms budget")
    print(
        f"redis {connection.info('server')['redis_version']}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"reproduce: python bench/startup.py --runs {options.runs} --redis-url {options.redis_url}")


if __name__ == "__main__":
    main()
