"""What bench/throughput.py and bench/io_bound.py share: enqueue the same counter job
(bench/counter.py) with each system's own producer, start the system's workers with its own
defaults, and time the run from the workers' start to the last job done (start-up included),
with the Redis commands and Redis CPU it took."""

from __future__ import annotations

import compileall
import glob
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import counter  # noqa: E402

POLL = 0.005  # how often the harness reads the counter


@dataclass
class Run:
    system: str
    jobs: int
    wall_seconds: float  # workers' start to the last job done
    own_seconds: float  # the first job's start to the last job's end, by the jobs' clocks
    commands_per_job: float  # Redis commands (scripts' inner calls included), the harness's polls left out
    redis_cpu_ms_per_job: float
    workers_cpu_ms_per_job: float = 0.0  # CPU of the system's own processes (workers, supervisor), start-up included
    enqueue_redis_cpu_ms_per_job: float = 0.0  # Redis CPU of the enqueues, before the workers start

    @property
    def rate(self) -> float:
        return self.jobs / self.wall_seconds

    @property
    def own_rate(self) -> float:
        return self.jobs / self.own_seconds


def compile_jobctl() -> None:
    """Byte-compile jobctl as installing it from a wheel does: the other systems are installed
    packages, and a checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise compile jobctl
    at every start."""
    import jobctl

    compileall.compile_dir(Path(jobctl.__file__).parent, quiet=1)


def env(url: str, **extra: str) -> dict:
    return {
        **{name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "JOBCTL_BENCH_REDIS_URL": url,
        **extra,
    }


def _redis_cpu(connection: redis.Redis) -> float:
    info = connection.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def _commands(connection: redis.Redis) -> int:
    return sum(stats["calls"] for stats in connection.info("commandstats").values())


class Enqueued:
    """Redis CPU spent within the block (a system's enqueues), per job: `with Enqueued(url, jobs) as e`."""

    def __init__(self, url: str, jobs: int):
        self.connection, self.jobs, self.ms_per_job = redis.Redis.from_url(url), jobs, 0.0

    def __enter__(self) -> Enqueued:
        self.before = _redis_cpu(self.connection)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms_per_job = 1000 * (_redis_cpu(self.connection) - self.before) / self.jobs

    def of(self, run: Run) -> Run:
        run.enqueue_redis_cpu_ms_per_job = self.ms_per_job
        return run


def measure(system: str, url: str, jobs: int, start_workers, timeout: float = 900) -> Run:
    """Start the workers (`start_workers()` returns their Popen list), wait for the counter to reach
    `jobs`, stop them with SIGTERM."""
    connection = redis.Redis.from_url(url)
    connection.config_resetstat()
    cpu_before = _redis_cpu(connection)
    children_before = _children_cpu()
    started = time.perf_counter()
    processes = start_workers()
    polls = 0
    try:
        deadline = time.monotonic() + timeout
        while int(connection.get(counter.COUNTER) or 0) < jobs:
            polls += 1
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in processes):
                raise SystemExit(f"{system}: only {connection.get(counter.COUNTER)} of {jobs} jobs ran")
            time.sleep(POLL)
        wall = time.perf_counter() - started
        commands = _commands(connection) - polls - 1
        cpu = _redis_cpu(connection) - cpu_before
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    first, last = (float(connection.get(key)) for key in (counter.FIRST, counter.LAST))
    workers_cpu = _children_cpu() - children_before
    return Run(system, jobs, wall, last - first, commands / jobs, 1000 * cpu / jobs, 1000 * workers_cpu / jobs)


def callgrind_server(directory: Path, binary: str) -> str:
    """A redis-server command (a script, to pass as a server's binary) that runs `binary` under
    valgrind's callgrind, which counts the instructions Redis executes (user space: the
    commands, the Lua scripts, the parsing of requests; not the kernel's share of the network):
    the same count whatever else the machine does. Redis runs many times slower under it."""
    script = directory / "redis-server-callgrind"
    script.write_text(
        f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={directory}/callgrind.out.%p "{binary}" "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def callgrind_redis(directory: str, binary: str) -> tuple[subprocess.Popen, str]:
    """Start `binary` (a redis-server) under callgrind (callgrind_server) on a free port, without
    persistence, its files in `directory`, and wait until it answers: the server and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory]
    server = subprocess.Popen(
        [callgrind_server(Path(directory), binary), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("redis-server under valgrind did not start") from None
            time.sleep(0.5)


def callgrind_zero(pid: int) -> None:
    """Start counting a callgrind_server's instructions from 0."""
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)


def callgrind_count(directory: Path | str, pid: int) -> int:
    """The instructions a callgrind_server executed since its last callgrind_zero."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    dump = max(glob.glob(os.path.join(directory, f"callgrind.out.{pid}.*")), key=os.path.getmtime)
    with open(dump) as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith("summary:"))


def _children_cpu() -> float:
    """CPU seconds of this process's children that ended, and of theirs (a supervisor waits for its
    workers): what a system's processes cost, whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def popen(command: list[str], url: str, cwd: str | Path = HERE, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=cwd, env=env(url, **extra_env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# --- each system: enqueue with its own producer, start its workers with its own defaults ---------


def jobctl(url: str, jobs: int, queue_yml: str, job: str = "counter", pause: float = 0.0) -> Run:
    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import load_queues

    compile_jobctl()
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="jobctl-bench-"))
    (workdir / "queue.yml").write_text(queue_yml)
    with Enqueued(url, jobs) as enqueued:
        enqueue_many(
            connection, load_queues(str(workdir / "queue.yml")), job, [([jobs, pause], {}) for _ in range(jobs)]
        )
    command = [sys.executable, "-m", "jobctl", "work"]
    return enqueued.of(
        measure(
            f"jobctl ({queue_yml.strip()})",
            url,
            jobs,
            lambda: [popen(command, url, cwd=workdir, REDIS_URL=url, JOBCTL_JOBS="counter")],
        )
    )


def rq(url: str, jobs: int, pause: float = 0.0) -> Run:
    from rq import Queue

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    queue = Queue("bench", connection=connection)
    with Enqueued(url, jobs) as enqueued, connection.pipeline() as pipe:
        queue.enqueue_many(
            [Queue.prepare_data("counter.counter", args=(jobs, pause)) for _ in range(jobs)], pipeline=pipe
        )
        pipe.execute()
    command = [sys.executable, "-m", "rq.cli", "worker-pool", "-n", "2", "-u", url, "bench"]
    return enqueued.of(measure("rq worker-pool -n 2", url, jobs, lambda: [popen(command, url)]))


def dramatiq(url: str, jobs: int, pause: float = 0.0) -> Run:
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    with Enqueued(url, jobs) as enqueued:
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import dramatiq_actors as d\nfor _ in range({jobs}): d.counter_actor.send({jobs}, {pause})",
            ],
            env=env(url),
            cwd=HERE,
            check=True,
        )
    command = [sys.executable, "-m", "dramatiq", "dramatiq_actors", "-p", "2", "-t", "8"]
    return enqueued.of(measure("dramatiq -p 2 -t 8", url, jobs, lambda: [popen(command, url)]))


def arq(url: str, jobs: int, max_jobs: int, pause: float) -> Run:
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    script = (
        "import asyncio, arq_settings\n"
        "from arq import create_pool\n"
        "async def main():\n"
        "    pool = await create_pool(arq_settings.WorkerSettings.redis_settings)\n"
        f"    for _ in range({jobs}): await pool.enqueue_job('arq_counter', {jobs}, {pause})\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env(url), cwd=HERE, check=True)
    command = [sys.executable, "-m", "arq", "arq_settings.WorkerSettings"]
    extra = {"JOBCTL_BENCH_ARQ_MAX_JOBS": str(max_jobs)}
    return measure(
        f"arq, 2 processes, max_jobs {max_jobs}", url, jobs, lambda: [popen(command, url, **extra) for _ in range(2)]
    )


def report(runs: list[Run], reference: Run) -> None:
    print(
        f"{'system':58s} {'jobs':>6s} {'jobs/s':>8s} {'own clock':>10s} {'cmds/job':>9s} {'redis µs/job':>13s} "
        f"{'workers µs/job':>15s} {'vs ' + reference.system.split()[0]:>10s}"
    )
    for run in runs:
        print(
            f"{run.system:58s} {run.jobs:6d} {run.rate:8.0f} {run.own_rate:10.0f} {run.commands_per_job:9.1f} "
            f"{1000 * run.redis_cpu_ms_per_job:13.0f} {1000 * run.workers_cpu_ms_per_job:15.0f} "
            f"{run.rate / reference.rate:9.2f}x"
        )
