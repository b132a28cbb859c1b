"""Elastic workers (`worker_count: 1..4`): `jobctl work` grows a queue's workers while its jobs
wait and retires idle ones, between jobs, without losing or charging any job."""

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from conftest import child_pids, wait_for

from jobctl import logs
from jobctl.api import reads
from jobctl.config.queues import QueueConfig, load_queues
from jobctl.runtime.scaling import Slot
from jobctl.runtime.supervisor import Supervisor
from jobctl.store import keys
from jobctl.store.connection import connect
from jobctl.store.transitions import Transitions

SCALED = re.compile(r"scaled default (\d+) → (\d+) workers?: (.+)$")


def elastic_yml(workers: str, **settings: str) -> str:
    extra = "".join(f"\n  {key}: {value}" for key, value in settings.items())
    return f"default:\n  worker_count: {workers}\n  timeout: 30s\n  shutdown_timeout: 10s{extra}\n"


def queue_status(project) -> dict:
    """The default queue in `status --json`, run in this process (the table's check runs `status`)."""
    result = project.run_here("status", "--json")
    assert result.returncode == 0, result.stderr
    return next(q for q in json.loads(result.stdout)["queues"] if q["name"] == "default")


def queue_view(project, db) -> dict:
    """The default queue as `status --json` shows it (reads.overview), read in this process: what
    the waits poll, several times a second (a `status` process per look kept a core busy)."""
    view = reads.overview(db, load_queues(project.path / "queue.yml")).to_dict()
    return next(q for q in view["queues"] if q["name"] == "default")


def enqueue_naps(project, log: Path, count: int, seconds: float) -> list[str]:
    return project.enqueue_many("nap", [[str(log), f"job-{n}", seconds] for n in range(count)])


def ended_once(log: Path, count: int) -> bool:
    ends = Counter(line.split()[1] for line in log.read_text().splitlines() if line.startswith("end "))
    assert all(times == 1 for times in ends.values()), ends.most_common(3)
    return len(ends) == count


def scaling_steps(stderr: str) -> list[tuple[int, int, str]]:
    return [
        (int(m[1]), int(m[2]), m[3]) for line in stderr.splitlines() if (m := SCALED.search(line)) and "INFO" in line
    ]


def test_a_backlog_grows_the_workers_to_the_top_and_idleness_brings_them_back(project, db, tmp_path):
    # the documented defaults (scale_up_backlog 20, scale_up_latency 5s) grow it; idleness is made short
    project.write("queue.yml", elastic_yml("1..4", scale_down_idle="1s"))
    work = project.start("work")
    wait_for(lambda: queue_view(project, db)["workers"] == 1, timeout=30, message="the first worker")
    status = queue_status(project)
    assert (status["min_workers"], status["max_workers"]) == (1, 4)
    table = project.run("status")
    assert table.returncode == 0 and "0/1 of 1..4" in table.stdout, table.stdout

    log = tmp_path / "naps.log"
    # 20 worker-seconds: over 20 jobs queued per worker until about 6 s in even with three
    # workers at it, and by then the oldest queued job has waited over 5 s, so one threshold or
    # the other holds at every pass while the pool grows
    ids = enqueue_naps(project, log, 200, 0.1)

    wait_for(lambda: queue_view(project, db)["workers"] == 4, timeout=60, interval=0.1, message="four workers")
    assert len(child_pids(work.pid)) == 4
    wait_for(lambda: log.exists() and ended_once(log, 200), timeout=120, interval=0.1, message="every job to end")
    wait_for(lambda: queue_view(project, db)["finished"] == 200, timeout=30, message="every outcome stored")
    wait_for(lambda: queue_view(project, db)["workers"] == 1, timeout=60, interval=0.1, message="back to one worker")
    # a retired worker unregisters just before its process exits
    wait_for(lambda: len(child_pids(work.pid)) == 1, timeout=30, message="one worker process")

    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0
    stderr = work.communicate()[1]
    steps = scaling_steps(stderr)
    assert steps, stderr
    assert all(abs(after - before) == 1 for before, after, _ in steps), steps
    assert max(after for _, after, _ in steps) == 4 and steps[-1][1] == 1, steps
    for before, after, reason in steps:  # each change on one line, with its reason
        if after > before:
            assert "(scale_up_backlog 20)" in reason or "(scale_up_latency 5s)" in reason, reason
        else:
            assert re.fullmatch(r"worker \S+ idle for \d+\.\ds \(scale_down_idle 1s\)", reason), reason
    # retired workers stopped between jobs: no crash, nothing requeued, one attempt per job
    assert "requeued" not in stderr and "killed" not in stderr, stderr
    for job_id in ids:
        record = db.hgetall(keys.layout_of(db).job(job_id, "default"))
        assert record[b"status"] == b"finished"
        assert record[b"jobctl_attempts"] == b"1"
        assert b"jobctl_crashes" not in record and b"jobctl_errors" not in record


def test_two_supervisors_each_scale_their_own_workers(project, db, tmp_path):
    """Two `jobctl work` on one Redis (two hosts) read the same backlog: each grows its own
    workers to its own top, and each retires its own idle ones back to its own bottom."""
    # the oldest queued job waits over 2 s (scale_up_latency) before the backlog (20 worker-seconds)
    # drops to 20 jobs per worker: one threshold or the other holds at every pass while they grow
    project.write("queue.yml", elastic_yml("1..3", scale_up_latency="2s", scale_down_idle="1s"))
    hosts = {name: project.start("work", "--name", name) for name in ("host-a", "host-b")}
    wait_for(lambda: queue_view(project, db)["workers"] == 2, timeout=30, message="one worker per supervisor")
    log = tmp_path / "naps.log"
    enqueue_naps(project, log, 200, 0.1)

    wait_for(lambda: queue_view(project, db)["workers"] == 6, timeout=60, interval=0.1, message="three workers each")
    wait_for(lambda: ended_once(log, 200), timeout=120, interval=0.1, message="every job to end")
    wait_for(lambda: queue_view(project, db)["workers"] == 2, timeout=60, interval=0.1, message="one worker each")
    # a retired worker unregisters just before its process exits
    wait_for(
        lambda: all(len(child_pids(work.pid)) == 1 for work in hosts.values()), timeout=30, message="one process each"
    )
    for name, work in hosts.items():
        work.send_signal(signal.SIGTERM)
        assert work.wait(timeout=30) == 0
        steps = scaling_steps(work.communicate()[1])
        assert max(after for _, after, _ in steps) == 3 and steps[-1][1] == 1, (name, steps)
        assert all(abs(after - before) == 1 for before, after, _ in steps), (name, steps)


def test_a_worker_stopped_between_short_jobs_gives_back_its_reservation(project, db, tmp_path):
    """What retiring a worker asks of it (SIGTERM) while it runs short jobs, each with the next
    one reserved behind it (concurrency 1): it finishes its job and gives back all it held
    itself, leaving nothing for the supervisor to requeue (a worker that left its reservation
    in flight fails this), no attempt counted, no crash."""
    project.write("queue.yml", elastic_yml("1"))
    work = project.start("work")
    log = tmp_path / "naps.log"
    ids = enqueue_naps(project, log, 100, 0.02)
    wait_for(lambda: log.exists() and log.read_text().count("end ") >= 30, timeout=60, message="30 jobs done")
    (stopped,) = child_pids(work.pid)
    os.kill(stopped, signal.SIGTERM)

    wait_for(lambda: ended_once(log, 100), timeout=120, interval=0.1, message="every job to end")
    wait_for(lambda: queue_view(project, db)["finished"] == 100, timeout=30, message="every outcome stored")
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0
    stderr = work.communicate()[1]
    # the supervisor did not ask for that stop: it restarts the worker, and finds nothing left
    assert f".{stopped} (default): worker exited (status 0); requeued 0 job(s)" in stderr, stderr
    for job_id in ids:
        record = db.hgetall(keys.layout_of(db).job(job_id, "default"))
        assert record[b"jobctl_attempts"] == b"1"
        assert b"jobctl_crashes" not in record and b"jobctl_errors" not in record


def latest_starts(log: Path) -> dict[int, float]:
    """Per worker pid, when the latest job it started began (unix time)."""
    starts: dict[int, float] = {}
    for line in log.read_text().splitlines():
        if line.startswith("start "):
            _, _, pid, at = line.split()
            starts[int(pid)] = float(at)
    return starts


def test_a_worker_killed_while_the_pool_shrinks_loses_no_job(project, db, tmp_path):
    project.write("queue.yml", elastic_yml("1..3", scale_up_latency="500ms", scale_down_idle="1s"))
    work = project.start("work")
    log = tmp_path / "naps.log"
    # a backlog that grows the pool to three workers, then a long job: the pool shrinks while it runs
    ids = enqueue_naps(project, log, 20, 0.5)
    ids.append(project.enqueue("nap", str(log), "job-20", "5"))
    wait_for(lambda: len(child_pids(work.pid)) == 3, timeout=60, interval=0.1, message="three workers")
    wait_for(lambda: len(child_pids(work.pid)) < 3, timeout=60, interval=0.1, message="a worker retired")

    def busy_worker() -> int | None:
        # a worker inside a job that started under 0.75 s ago: far from its end, so the run
        # that is killed has not noted its end (the test counts ends)
        now = time.time()
        young = [pid for pid, at in latest_starts(log).items() if now - at < 0.75 and pid in child_pids(work.pid)]
        return young[0] if young else None

    ids.append(project.enqueue("nap", str(log), f"job-{len(ids)}", "1.5"))
    victim = wait_for(busy_worker, timeout=30, interval=0.02, message="a worker inside a job")
    os.kill(victim, signal.SIGKILL)

    wait_for(lambda: ended_once(log, len(ids)), timeout=120, interval=0.1, message="every job to end")
    wait_for(lambda: queue_view(project, db)["finished"] == len(ids), timeout=30, message="every outcome stored")
    wait_for(lambda: len(child_pids(work.pid)) == 1, timeout=60, interval=0.1, message="back to one worker")

    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0
    stderr = work.communicate()[1]
    # its job, and the one it had reserved if it had just started
    assert re.search(rf"\.{victim} \(default\): worker killed by signal 9 \(SIGKILL\); requeued [12] job", stderr), (
        stderr
    )
    assert any(after < before for before, after, _ in scaling_steps(stderr)), stderr
    states = {job_id: db.hget(keys.layout_of(db).job(job_id, "default"), "status") for job_id in ids}
    assert set(states.values()) == {b"finished"}, states
    killed = [job_id for job_id in ids if db.hget(keys.layout_of(db).job(job_id, "default"), "jobctl_crashes")]
    assert len(killed) == 1  # the one job the kill interrupted ran again, to its end, once


def test_a_retired_worker_that_dies_is_not_replaced(redis_url, db):
    """The supervisor's bookkeeping: a worker asked to retire that crashes instead has its jobs
    recovered as a crash's, and its place goes with it; a worker of the pool that was not
    retiring is restarted."""
    logs.setup()
    supervisor = Supervisor(redis_url, [QueueConfig("default", worker_count=1)])
    # what run() sets before supervising
    supervisor.connection = connect(redis_url)
    supervisor.transitions = Transitions(supervisor.connection)
    supervisor.layout = supervisor.transitions.layout
    pool = supervisor.pools[0]
    retiring = Slot(pool, pid=999_991, worker_name="host.999991", retiring=True)
    staying = Slot(pool, pid=999_992, worker_name="host.999992")
    supervisor.slots = [retiring, staying]
    killed = signal.SIGKILL.value  # a wait status: killed by SIGKILL

    supervisor._worker_exited(retiring, killed)
    supervisor._worker_exited(staying, killed)

    assert supervisor.slots == [staying] and staying.pid is None  # restarted at the next pass
