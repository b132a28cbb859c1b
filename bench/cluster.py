"""Redis CPU per job on a Redis Cluster of 3 masters against one Redis, side by side.

    python bench/cluster.py [--jobs 12000] [--rounds 3] [--redis-server /usr/bin/redis-server] [--instructions]

Starts its own servers from one redis-server binary, without persistence: one Redis, and a
cluster of 3 masters without replicas (tests/cluster.py's, made by `redis-cli --cluster
create`). On each, the same no-op job (bench/noop.py) spread evenly over 3 queues whose hash
tags fall on the 3 masters (emails, images, billing) is enqueued from Python (jobctl.connect()
and the job object's enqueue_many), then run by one `jobctl work` with queue.yml's defaults and
one worker process per queue, start-up counted. INFO cpu (used_cpu_sys + used_cpu_user) is read
on every master before the enqueue, after it, and when the last job is done; each master's
Redis CPU is divided by the jobs of the whole run. Printed per round and for the round with the
median rate: jobs/s, Redis µs per job for the enqueue and the run on each master and in total,
Redis commands and script calls per job with Redis's time per script call (INFO
commandstats) and each command's calls and time per job, the workers' own CPU per job, and the ratios of the cluster's per-master and total figures to
the one Redis's. The systems alternate, `--rounds` times; servers are stopped at the end.

With `--instructions`, every server runs under valgrind's callgrind (harness.callgrind_server)
and the run's Redis instructions per job are printed too, per master: CPU time per call depends
on how busy each server is (3 masters and their workers share 2 cores here), an instruction
count does not. Redis is many times slower under valgrind: use a few thousand jobs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness
import noop
import redis

import jobctl
from jobctl.api.client import set_default
from jobctl.store import keys
from jobctl.store.connection import connect
from jobctl.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ("emails", "images", "billing")  # {emails}, {images}, {billing}: one per master
QUEUE_YML = "".join(f"{queue}: {{worker_count: 1}}\n" for queue in QUEUES)
POLL = 0.05
SCRIPT_CALLS = {f"cmdstat_{name}" for name in ("fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro")}


def test_cluster_module():
    """tests/cluster.py, loaded by its path (this file is `cluster` on bench's own path)."""
    spec = importlib.util.spec_from_file_location("tests_cluster", ROOT / "tests" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    system: str
    jobs: int
    wall_seconds: float
    commands: float  # Redis commands per job of the run, scripts' inner calls included, polls too
    script_calls: float  # FCALL / EVALSHA per job of the run
    script_us: float  # Redis's time per script call, its inner commands included (INFO commandstats)
    enqueue_us: list[float]  # Redis CPU per job of the enqueue, per master
    work_us: list[float]  # Redis CPU per job of the run, per master
    workers_us: float  # CPU of jobctl work and its workers per job, start-up included
    breakdown: dict[str, tuple[float, float]]  # command -> (calls, Redis µs) per job of the run, all masters
    work_instructions: list[float]  # Redis instructions per job of the run, per master (--instructions; else empty)
    idle_instructions: list[float]  # of them, what the idle fleet and servers execute in as long, per master

    @property
    def rate(self) -> float:
        return self.jobs / self.wall_seconds


def cpu(server: redis.Redis) -> float:
    info = server.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def measure(
    system: str, url: str, masters: list[redis.Redis], jobs: int, workdir: Path, callgrind: Path | None = None
) -> Run:
    """`callgrind`: where the servers, run under callgrind, write their counts (None: not counted)."""
    for master in masters:
        master.flushall()
    config = workdir / "queue.yml"
    config.write_text(QUEUE_YML)
    client = jobctl.connect(url, config)
    reader = connect(url)
    layout = keys.layout_of(reader)
    try:
        before = [cpu(master) for master in masters]
        for n, queue in enumerate(QUEUES):
            share = jobs // len(QUEUES) + (n < jobs % len(QUEUES))
            noop.noop.options(queue=queue).enqueue_many((i,) for i in range(share))
        enqueued = [cpu(master) for master in masters]
        for master in masters:
            master.config_resetstat()
        pids = [int(master.info("server")["process_id"]) for master in masters]
        if callgrind:
            for pid in pids:
                harness.callgrind_zero(pid)
        children_before = harness._children_cpu()
        started = time.perf_counter()
        work = harness.popen(
            [sys.executable, "-m", "jobctl", "work"], url, cwd=workdir, REDIS_URL=url, JOBCTL_JOBS="noop"
        )
        try:
            while sum(reader.zcard(layout.finished(queue)) for queue in QUEUES) < jobs:
                if work.poll() is not None:
                    raise SystemExit(f"{system}: jobctl work exited with {work.returncode}")
                time.sleep(POLL)
            wall = time.perf_counter() - started
            done = [cpu(master) for master in masters]
            stats = [master.info("commandstats") for master in masters]
            instructions = [harness.callgrind_count(callgrind, pid) / jobs for pid in pids] if callgrind else []
            idle = idle_instructions(callgrind, pids, wall / jobs) if callgrind else []
        finally:
            work.send_signal(signal.SIGTERM)
            work.wait(timeout=60)
        workers = harness._children_cpu() - children_before
    finally:
        set_default(None)
        client.close()
        reader.close()
    scripts = [counts for of_master in stats for name, counts in of_master.items() if name in SCRIPT_CALLS]
    return Run(
        system,
        jobs,
        wall,
        sum(sum(counts["calls"] for counts in of_master.values()) for of_master in stats) / jobs,
        sum(counts["calls"] for counts in scripts) / jobs,
        sum(counts["usec"] for counts in scripts) / max(1, sum(counts["calls"] for counts in scripts)),
        [1e6 * (after - start) / jobs for start, after in zip(before, enqueued)],
        [1e6 * (after - start) / jobs for start, after in zip(enqueued, done)],
        1e6 * workers / jobs,
        {
            name.removeprefix("cmdstat_"): (
                sum(of_master.get(name, {}).get("calls", 0) for of_master in stats) / jobs,
                sum(of_master.get(name, {}).get("usec", 0) for of_master in stats) / jobs,
            )
            for name in {name for of_master in stats for name in of_master}
        },
        instructions,
        idle,
    )


def idle_instructions(callgrind: Path, pids: list[int], seconds: float) -> list[float]:
    """What each server executes in `seconds` with jobctl work idle (heartbeats, promotion ticks,
    serverCron, the cluster bus: work by the clock, which callgrind's slow servers stretch over
    many more instructions per job than at full speed), counted over 2 s."""
    for pid in pids:
        harness.callgrind_zero(pid)
    started = time.monotonic()
    time.sleep(2)
    elapsed = time.monotonic() - started
    return [harness.callgrind_count(callgrind, pid) * seconds / elapsed for pid in pids]


def median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.rate)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-server", default=shutil.which("redis-server"))
    parser.add_argument("--instructions", action="store_true", help="count Redis's instructions with callgrind")
    options = parser.parse_args()
    if options.instructions and not shutil.which("valgrind"):
        raise SystemExit("--instructions needs valgrind: apt-get install valgrind")
    if not options.redis_server or not shutil.which("redis-cli"):
        raise SystemExit("bench/cluster.py needs redis-server and redis-cli: apt-get install redis-server redis-tools")
    version = subprocess.run([options.redis_server, "--version"], capture_output=True, text=True).stdout.split()[2]
    print(
        f"# python bench/cluster.py --jobs {options.jobs} --rounds {options.rounds}"
        + (" --instructions" if options.instructions else "")
    )
    print(
        f"# {os.cpu_count()} cores, redis-server {version.removeprefix('v=')}; no-op jobs over queues "
        f"{', '.join(QUEUES)}; wall time from starting jobctl work to the last job done"
    )
    harness.compile_jobctl()
    cluster_module = test_cluster_module()
    with tempfile.TemporaryDirectory(prefix="jobctl-bench-cluster-") as scratch:
        directory = Path(scratch)
        (directory / "one").mkdir()
        (directory / "work").mkdir()
        callgrind = directory if options.instructions else None
        binary = harness.callgrind_server(directory, options.redis_server) if callgrind else options.redis_server
        one = RedisServer(directory / "one", "--appendonly", "no", binary=binary)
        alone = cluster_module.Node(directory / "alone", binary)
        cluster = cluster_module.Cluster(directory / "cluster", binary, replicas=0)
        try:
            one.start()
            start_alone(alone)
            cluster.start()
            systems = [
                ("one Redis", one.url, [redis.Redis(port=one.port)]),
                ("1 master", alone.url, [redis.Redis(port=alone.port)]),
                ("3 masters", cluster.url, [redis.Redis(port=master.port) for master in cluster.masters()]),
            ]
            idle_from = [[cpu(master) for master in masters] for _, _, masters in systems]
            time.sleep(2)
            print(
                "# idle Redis CPU, ms/s: "
                + "; ".join(
                    f"{system} "
                    + ", ".join(f"{(cpu(master) - start) * 500:.1f}" for master, start in zip(masters, before))
                    for (system, _, masters), before in zip(systems, idle_from)
                )
            )
            rounds = []
            for number in range(1, options.rounds + 1):
                rounds.append(
                    [
                        measure(system, url, masters, options.jobs, directory / "work", callgrind)
                        for system, url, masters in systems
                    ]
                )
                print(f"# round {number}, jobs/s: " + ", ".join(f"{run.system} {run.rate:.0f}" for run in rounds[-1]))
        finally:
            one.stop()
            alone.stop()
            cluster.stop()
    report([median(list(runs)) for runs in zip(*rounds)])


def start_alone(node) -> None:
    """A cluster of one master serving every slot: jobctl in cluster mode (its layout, the cluster
    client, scripts by EVALSHA on a cluster-enabled server) with nothing spread."""
    node.start()
    node.ask("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    harness_wait = time.monotonic() + 30
    while node.cluster_state() != "ok":
        if time.monotonic() > harness_wait:
            raise SystemExit("the 1-master cluster did not come up")
        time.sleep(0.1)


def report(runs: list[Run]) -> None:
    print(
        f"{'system':10s} {'jobs':>6s} {'jobs/s':>7s} {'enqueue µs/job':>20s} {'run µs/job per master':>24s} "
        f"{'run µs/job total':>17s} {'cmds/job':>9s} {'scripts/job':>12s} {'µs/script':>10s} {'workers µs/job':>15s}"
    )
    for run in runs:
        print(
            f"{run.system:10s} {run.jobs:6d} {run.rate:7.0f} {' '.join(f'{us:4.0f}' for us in run.enqueue_us):>20s} "
            f"{' '.join(f'{us:5.0f}' for us in run.work_us):>24s} {sum(run.work_us):17.0f} {run.commands:9.1f} "
            f"{run.script_calls:12.2f} {run.script_us:10.1f} {run.workers_us:15.0f}"
        )
    print("Redis commands per job of the run, all masters (calls, µs): " + ", ".join(run.system for run in runs))
    busiest = sorted(
        {name for run in runs for name in run.breakdown}, key=lambda name: -runs[-1].breakdown.get(name, (0, 0))[1]
    )
    for name in busiest:
        cells = [run.breakdown.get(name, (0.0, 0.0)) for run in runs]
        if max(calls for calls, _ in cells) >= 0.01:
            print(f"  {name:24s} " + "  ".join(f"{calls:6.2f} {us:6.1f}" for calls, us in cells))
    single, alone, spread = runs
    reference = single.work_us[0]
    per_master = ", ".join(f"{us / reference:.2f}" for us in spread.work_us)
    print(
        f"3 masters / one Redis, Redis CPU per job of the run: per master {per_master} (1/3 = 0.33), "
        f"total {sum(spread.work_us) / reference:.2f}; 1 master / one Redis {alone.work_us[0] / reference:.2f}; "
        f"3 masters' total / 1 master {sum(spread.work_us) / alone.work_us[0]:.2f}; workers' CPU "
        f"{spread.workers_us / single.workers_us:.2f}; jobs/s {spread.rate / single.rate:.2f}"
    )
    if single.work_instructions:
        for title, of_run in (
            ("Redis instructions per job of the run (callgrind)", lambda run: run.work_instructions),
            (
                "The same, less what the idle fleet and servers execute in as long",
                lambda run: [count - idle for count, idle in zip(run.work_instructions, run.idle_instructions)],
            ),
        ):
            counted, one_master, per_master = (of_run(run) for run in runs)
            print(
                f"{title}: one Redis {counted[0]:,.0f}; 1 master {one_master[0]:,.0f} "
                f"({one_master[0] / counted[0]:.2f}x); 3 masters "
                + ", ".join(f"{count:,.0f}" for count in per_master)
                + " per master ("
                + ", ".join(f"{count / counted[0]:.2f}" for count in per_master)
                + f"x one Redis; 1/3 = 0.33), {sum(per_master):,.0f} in all ({sum(per_master) / counted[0]:.2f}x)"
            )


if __name__ == "__main__":
    main()
