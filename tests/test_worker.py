"""The execution core on real processes and a real Redis: concurrency (threads and asyncio),
timeouts and stops in every model, fencing of frozen workers, process faults, foreign records
and results JSON cannot hold."""

import json
import os
import signal
import time
import zlib
from pathlib import Path

import pytest
from conftest import child_pids, kill_quietly, state, wait_for

from jobctl.api import records
from jobctl.store import keys

LEASE_ENV = {"JOBCTL_LEASE_TTL": "4"}  # a frozen worker is presumed dead after 4 s, not 20


def max_overlap(log: Path) -> tuple[int, set[str]]:
    """How many jobs of an `overlap` log ran at the same moment, and in which processes."""
    events, pids = [], set()
    for line in log.read_text().split("\n"):
        if line:
            kind, moment, pid = line.split()
            events.append((float(moment), 1 if kind == "start" else -1))
            pids.add(pid)
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        peak = max(peak, running)
    return peak, pids


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def all_threads_stopped(pid: int) -> bool:
    """Every thread of the process stopped by SIGSTOP (a thread running on another CPU takes a
    moment to hear it)."""
    try:
        stats = [(task / "stat").read_text() for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:  # a thread ended as it was read
        return False
    return all(stat.rsplit(")", 1)[1].split()[0] == "T" for stat in stats)


# --- concurrency --------------------------------------------------------------------------------


def test_async_jobs_are_awaited(project):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    job_id = project.enqueue("async_add", "2", "3")
    assert project.run("work", "--burst").returncode == 0
    job = project.show(job_id)
    assert (job["state"], job["result"]) == ("finished", 5)


@pytest.mark.parametrize("job_name, concurrency", [("overlap", 4), ("async_overlap", 5)])
def test_one_process_runs_concurrency_jobs_at_once(project, tmp_path, db, job_name, concurrency):
    """Plain functions on a pool of threads, `async def` jobs on one event loop; a queue may mix both."""
    project.write("queue.yml", f"default: {{worker_count: 1, concurrency: {concurrency}}}\n")
    log = tmp_path / "log"
    ids = project.enqueue_many(job_name, [[str(log), 0.6]] * (2 * concurrency))
    mixed = project.enqueue("async_add" if job_name == "overlap" else "add", "1", "2")
    assert project.run("work", "--burst").returncode == 0
    assert {state(db, i) for i in ids} == {"finished"}
    assert project.show(mixed)["result"] == 3
    peak, pids = max_overlap(log)
    assert (peak, len(pids)) == (concurrency, 1)


def test_status_shows_every_job_in_flight(project, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 3}\n")
    log = tmp_path / "log"
    ids = project.enqueue_many("ticking", [[str(log), 30]] * 3)
    project.start("work")
    wait_for(lambda: log.exists() and log.read_text().count("started") == 3, message="three jobs running")
    status = json.loads(project.run("status", "--json").stdout)
    (worker,) = status["workers"]
    assert sorted(worker["jobs"]) == sorted(ids) and worker["concurrency"] == 3
    assert status["queues"][0]["started"] == 3


def test_kill_9_of_a_process_with_8_jobs_in_flight_puts_all_8_back_at_the_front(project, tmp_path, db):
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 8}\n")
    log = tmp_path / "log"
    ids = project.enqueue_many("ticking", [[str(log), 60]] * 8)
    work = project.start("work")
    wait_for(lambda: log.exists() and log.read_text().count("started") == 8, message="eight jobs running")
    (victim,) = child_pids(work.pid)
    os.kill(work.pid, signal.SIGSTOP)  # hold the supervisor so the queue can be seen as recovery left it
    try:
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), message="the worker to die")
    finally:
        os.kill(work.pid, signal.SIGCONT)
    wait_for(lambda: all(job.crashes == 1 for job in records.jobs(db, ids)), message="all eight recovered")
    wait_for(lambda: log.read_text().count("started") == 16, message="all eight to run again")
    for job_id in ids:
        job = project.show(job_id)
        assert job["state"] == "started" and job["errors"][0]["error"] == "worker killed by signal 9 (SIGKILL)"


# --- reservations (concurrency 1: the next job is reserved while one runs) ----------------------


def test_a_job_reserved_behind_a_long_one_goes_back_to_its_queue(project, tmp_path, db):
    """The job reserved behind a running one goes back to the front of its queue once the running
    one turns out long, for any worker to take; it then runs there, once."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    project.enqueue("add", "1", "2")
    # long until the test opens its gate: still running however late the test looks
    long = project.enqueue("gated", str(marker), str(gate))
    behind = project.enqueue("record", str(tmp_path / "behind"), "ran")
    project.start("work")
    wait_for(marker.exists, message="the long job to start")
    wait_for(
        lambda: db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [behind.encode()],
        message="the reservation given back",
    )
    assert project.show(behind)["state"] == "queued" and project.show(long)["state"] == "started"
    gate.touch()
    wait_for(lambda: state(db, behind) == "finished", timeout=30, message="the job behind to run")
    assert (tmp_path / "behind").read_text() == "ran\n" and project.show(behind)["crashes"] == 0


def test_kill_9_between_short_jobs_blames_only_the_running_job(project, tmp_path, db):
    """Short jobs run pipelined, each with the next one reserved: kill -9 at any moment loses
    nothing, and only the job that was running counts a crash (the reserved one never ran)."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    out = tmp_path / "out"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"args": [str(out), str(n)]}) + "\n" for n in range(400)))
    assert project.run("enqueue", "record", "--from", str(jobs)).returncode == 0
    work = project.start("work")
    wait_for(lambda: out.exists() and len(out.read_text().split()) >= 100, message="100 jobs done")
    (victim,) = child_pids(work.pid)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: out.exists() and len(set(out.read_text().split())) == 400, timeout=60, message="all 400 done")
    ran = out.read_text().split()
    assert len(ran) <= 401  # the job interrupted by the kill may have run to its end before it
    prefix = keys.layout_of(db).job("", "default")
    crashes = sum(
        int(db.hget(key, "jobctl_crashes") or 0)
        for key in map(bytes.decode, db.scan_iter(f"{prefix}*"))
        if ":" not in key.removeprefix(prefix)
    )
    assert crashes <= 1


def enqueue_short_jobs(project, tmp_path, count: int) -> Path:
    """`count` 5 ms `overlap` jobs for one worker (`concurrency: 1`, so each runs with the next
    one reserved), each logging its start and end to its own file; returns their directory."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    logs_dir = tmp_path / "runs"
    logs_dir.mkdir()
    project.enqueue_many("overlap", [[str(logs_dir / str(n)), 0.005] for n in range(count)])
    return logs_dir


def test_scripts_lost_by_redis_between_short_jobs_are_loaded_again_and_every_job_runs_once(project, tmp_path, db):
    """Redis 7 loses the library of functions (FUNCTION FLUSH; likewise a restart without
    persistence) three times while a worker runs short jobs with the next one reserved and its
    outcome sent without waiting: each time the worker loads it again, the calls that found no
    function ran nothing, and every job runs exactly once."""
    if not db.info("server")["redis_version"].startswith("7"):
        pytest.skip("Redis 6 has no functions")
    logs_dir = enqueue_short_jobs(project, tmp_path, 250)
    project.start("work")
    for done in (30, 90, 150):
        wait_for(lambda: len(list(logs_dir.iterdir())) >= done, message=f"{done} jobs started")  # noqa: B023
        db.function_flush()
        wait_for(lambda: db.function_list(), message="the worker to load the library again")
        assert len(list(logs_dir.iterdir())) < 250  # it was still running jobs
    wait_for(lambda: db.zcard(keys.layout_of(db).finished("default")) == 250, timeout=60, message="all 250 done")
    for log in logs_dir.iterdir():
        assert sorted(line.split()[0] for line in log.read_text().splitlines()) == ["end", "start"], log.name


def test_a_worker_frozen_between_short_jobs_never_runs_one_given_to_another(project, tmp_path, db):
    """SIGSTOP past the lease while a worker runs short jobs, each with the next one reserved, and
    a second supervisor on the same Redis: no job runs twice at once, the reserved one included,
    and the frozen worker writes nothing after it wakes. Only the job it was running may run
    again: it may have ended before the stop landed, its outcome not yet in Redis (at least once,
    as after kill -9)."""
    logs_dir = enqueue_short_jobs(project, tmp_path, 300)
    first = project.start("work", env=LEASE_ENV)
    wait_for(lambda: len(list(logs_dir.iterdir())) >= 50, message="50 jobs started")
    (frozen,) = child_pids(first.pid)
    os.kill(frozen, signal.SIGSTOP)
    stopped = time.time()
    try:
        project.start("work", env=LEASE_ENV)
        wait_for(
            lambda: db.zcard(keys.layout_of(db).finished("default")) == 300,
            timeout=60,
            message="all 300 to finish elsewhere",
        )
    finally:
        kill_quietly(frozen, signal.SIGCONT)  # the kernel may have killed it at its lease's end
    wait_for(lambda: not alive(frozen), message="the frozen worker to end")
    ran_again = []
    for log in logs_dir.iterdir():
        lines = [(kind, float(at), pid) for kind, at, pid in map(str.split, log.read_text().splitlines())]
        by_frozen = [at for _, at, pid in lines if pid == str(frozen)]
        elsewhere = sorted((at, kind) for kind, at, pid in lines if pid != str(frozen))
        # nothing from the frozen worker once stopped, nor after it woke; a job it had begun was
        # given to another only after that, and ran there once
        assert all(at <= stopped + 0.05 for at in by_frozen), (log.name, lines)
        assert not by_frozen or all(at > stopped for at, _ in elsewhere), (log.name, lines)
        assert [kind for _, kind in elsewhere] in ([], ["start", "end"]), (log.name, lines)
        if by_frozen and elsewhere:
            ran_again.append((log.name, lines))
    assert len(ran_again) <= 1, ran_again
    assert len(list(logs_dir.iterdir())) == 300
    assert not db.exists(keys.layout_of(db).active(f"{os.uname().nodename}.{frozen}", "default"))


def test_pause_stops_a_busy_worker_within_a_second(project, tmp_path, db):
    """Workers learn of pauses on start, from pause and resume (pub/sub) and once a second (not in every fetch): a
    worker draining short jobs stops taking them from a paused queue within about a second."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    out = tmp_path / "out"
    jobs = tmp_path / "jobs.jsonl"
    # thousands: the worker is still busy when the pause lands, and some are left after it
    jobs.write_text("".join(json.dumps({"args": [str(out), str(n)], "kwargs": {}}) + "\n" for n in range(6000)))
    assert project.run("enqueue", "record", "--from", str(jobs)).returncode == 0
    work = project.start("work")
    wait_for(lambda: out.exists() and len(out.read_text().split()) >= 50, message="50 jobs done")
    (worker,) = child_pids(work.pid)
    in_flight = keys.layout_of(db).active(f"{os.uname().nodename}.{worker}", "default")
    assert project.run_here("pause", "default").returncode == 0  # at once, while the worker runs jobs
    paused = time.monotonic()
    # within a second and a half it holds no job of the paused queue (looked at once more after
    # that time, however late this process runs), and starts none for a second after
    wait_for(lambda: db.llen(in_flight) == 0 or time.monotonic() - paused > 1.5, interval=0.02)
    assert db.llen(in_flight) == 0, "the worker still holds jobs of the paused queue"
    done = len(out.read_text().split())
    time.sleep(1.0)
    assert len(out.read_text().split()) == done and db.llen(keys.layout_of(db).queue("default")) > 0
    assert project.run("resume", "default").returncode == 0
    wait_for(lambda: len(out.read_text().split()) > done, message="jobs to run again after resume")


# --- timeouts -----------------------------------------------------------------------------------


def test_timeouts_in_a_thread_and_in_asyncio(project, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 2, timeout: 1s, max_retries: 0}\n")
    thread_log, async_log = tmp_path / "thread", tmp_path / "async"
    in_thread = project.enqueue("ticking", str(thread_log), "30")
    in_loop = project.enqueue("async_waiting", str(async_log), "30")
    assert project.run("work", "--burst").returncode == 0
    for job_id, log in ((in_thread, thread_log), (in_loop, async_log)):
        job = project.show(job_id)
        assert job["state"] == "dead" and job["errors"][0]["error"] == "JobTimeout: timed out after 1s"
        assert log.read_text().endswith("finally\n")


def test_a_thread_ignoring_its_timeout_takes_only_its_own_job_down(project, tmp_path, db):
    project.write(
        "queue.yml", "default: {worker_count: 1, concurrency: 2, timeout: 1s, max_retries: 0, crash_limit: 1}\n"
    )
    log = tmp_path / "log"
    stuck = project.enqueue("slow", str(tmp_path / "marker"), "60")  # time.sleep: no Python instruction to interrupt
    bystander = project.enqueue("ticking", str(log), "0.5")  # within its timeout
    project.start("work")
    wait_for(lambda: state(db, stuck) == "dead", timeout=30, message="the stuck job to be killed")
    assert project.show(stuck)["reason"] == "worker killed after the job ignored its timeout 1 time"
    wait_for(lambda: state(db, bystander) == "finished", timeout=30, message="the bystander to finish")
    assert project.show(bystander)["crashes"] == 0


def test_a_slow_hook_is_never_charged_to_the_next_job(project, db):
    """concurrency 1 starts the next job with the outcome: a hook far slower than the next job's
    timeout and grace must not get the worker killed for it (the next job, crash_limit 1,
    was buried dead without having run)."""
    project.write("queue.yml", "default: {worker_count: 1, timeout: 1s, crash_limit: 1, max_retries: 0}\n")
    project.enqueue("add", "1")  # so that the hooked job starts from an outcome, one reserved behind it
    hooked = project.enqueue("slow_hooked", "4")  # twice the timeout and grace (1 s each) after it
    behind = project.enqueue("add", "2")
    project.start("work")
    wait_for(lambda: state(db, behind) in ("finished", "dead"), timeout=30, message="the job behind")
    job = project.show(behind)
    assert (job["state"], job["crashes"]) == ("finished", 0), job
    assert job["result"] == 2
    assert project.show(hooked)["state"] == "finished"


# --- stopping a running job ------------------------------------------------------------------------


def test_cancel_stops_running_jobs_in_every_model(project, tmp_path, db):
    # one supervisor, a queue per model: a worker running Python code, one stuck in time.sleep
    # (concurrency 1: the main thread), a pool thread, a task on the event loop
    models = {
        "ticking_1": ("ticking", 1),
        "slow_1": ("slow", 1),
        "ticking_3": ("ticking", 3),
        "async_3": ("async_waiting", 3),
    }
    project.write("queue.yml", "".join(f"{q}: {{worker_count: 1, concurrency: {c}}}\n" for q, (_, c) in models.items()))
    enqueued = {}
    for queue, (job_name, _) in models.items():
        log = tmp_path / queue
        job_id = project.enqueue(job_name, str(log), "60", "--queue", queue)
        child = project.enqueue("add", "1", "--depends-on", job_id, "--queue", queue)
        enqueued[queue] = (log, job_id, child, project.enqueue("add", "2", "--queue", queue))
    work = project.start("work")
    for number, (queue, (log, job_id, child, after)) in enumerate(enqueued.items()):
        job_name = models[queue][0]
        wait_for(log.exists, message=f"{job_name} to start")
        started = time.monotonic()
        # the CLI's own process once; the other cancels the same command in this process
        result = (project.run if number == 0 else project.run_here)("cancel", job_id)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"canceled {job_id} (stopped while running); canceled with it: {child}"
        assert time.monotonic() - started < 8
        job = project.show(job_id)
        assert (job["state"], job["reason"]) == ("canceled", "canceled while running")
        if job_name != "slow":
            assert log.read_text().endswith("finally\n")
        wait_for(lambda: state(db, after) == "finished", message="the worker to go on")  # noqa: B023 - called in this iteration
        assert project.show(child)["state"] == "canceled"
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=15) == 0


# --- fencing ------------------------------------------------------------------------------------


def test_a_frozen_worker_never_finishes_a_job_given_to_another(project, tmp_path, db):
    """SIGSTOP the worker running a job past its lease, with a second supervisor on the same
    Redis: the job runs to its end once, on the other supervisor; the frozen worker ends when
    it wakes, writes nothing, and nothing stays in its in-flight list."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    log = tmp_path / "log"
    first = project.start("work", env=LEASE_ENV)
    wait_for(lambda: db.scard(keys.layout_of(db).active_workers("default")) == 1, message="the first worker")
    job_id = project.enqueue("overlap", str(log), "3")  # still running when the test stops its worker
    wait_for(lambda: log.exists(), message="the job to start")
    frozen = int(log.read_text().split()[2])
    os.kill(frozen, signal.SIGSTOP)
    try:
        project.start("work", env=LEASE_ENV)
        wait_for(lambda: log.read_text().count("start") == 2, timeout=30, message="the other supervisor to run it")
    finally:
        kill_quietly(frozen, signal.SIGCONT)  # the kernel may have killed it at its lease's end
    wait_for(lambda: not alive(frozen), message="the frozen worker to end")
    wait_for(lambda: state(db, job_id) == "finished", timeout=20, message="the job to finish")
    ends = [line for line in log.read_text().split("\n") if line.startswith("end")]
    assert len(ends) == 1 and ends[0].split()[2] != str(frozen)
    assert not db.exists(keys.layout_of(db).active(f"{os.uname().nodename}.{frozen}", "default"))
    assert first.poll() is None  # its supervisor restarted the worker and goes on
    job = project.show(job_id)
    assert job["errors"][0]["error"] in (
        "worker lost (no heartbeat)",
        "worker killed by signal 9 (SIGKILL)",  # by the kernel, at its lease's end (leasekill.py)
    )


@pytest.mark.parametrize(
    "job_name, concurrency",
    [("ticks", 1), ("ticks", 8), ("async_ticks", 1)],
    ids=["main thread", "pool threads", "asyncio"],
)
def test_a_worker_frozen_past_its_lease_runs_no_more_of_its_jobs(project, tmp_path, db, job_name, concurrency):
    """SIGSTOP a worker whose jobs run Python code without pause, until its lease lapses, then
    SIGCONT: not one more line of its jobs runs in it (the kernel killed it while frozen)."""
    project.write("queue.yml", f"default: {{worker_count: 1, concurrency: {concurrency}}}\n")
    logs = [tmp_path / f"log{n}" for n in range(concurrency)]
    for log in logs:
        project.enqueue(job_name, str(log), "60")
    work = project.start("work", env=LEASE_ENV)
    wait_for(lambda: all(log.exists() for log in logs), message="every job running")
    (frozen,) = child_pids(work.pid)
    os.kill(frozen, signal.SIGSTOP)
    wait_for(lambda: all_threads_stopped(frozen), message="every thread of the worker stopped")
    stopped = time.time()
    try:
        name = f"{os.uname().nodename}.{frozen}"
        wait_for(
            lambda: not db.exists(keys.layout_of(db).worker(name, "default")), timeout=30, message="the lease to lapse"
        )
    finally:
        kill_quietly(frozen, signal.SIGCONT)  # the kernel may have killed it at its lease's end
    wait_for(lambda: not alive(frozen), message="the frozen worker to end")
    for log in logs:
        ticks = [float(at) for _, at, pid in map(str.split, log.read_text().splitlines()) if pid == str(frozen)]
        assert ticks and max(ticks) < stopped, (log.name, max(ticks) - stopped)


# --- process faults -----------------------------------------------------------------------------


def test_a_job_calling_os_exit_0_is_a_crash(project, db):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    job_id = project.enqueue("crash", "0")
    project.start("work")
    wait_for(lambda: state(db, job_id) == "dead", timeout=30, message="the job to be dead")
    job = project.show(job_id)
    assert (job["reason"], job["crashes"]) == ("worker exited (status 0) 3 times", 3)


def test_a_forked_child_never_returns_into_the_worker(project, tmp_path, db):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    log = tmp_path / "log"
    job_id = project.enqueue("forks", str(log))
    after = project.enqueue("add", "1")
    work = project.start("work")
    wait_for(lambda: state(db, after) == "finished", message="the next job")
    assert project.show(job_id)["state"] == "finished"
    child = int(next(line for line in log.read_text().split("\n") if line.startswith("child")).split()[1])
    wait_for(lambda: not alive(child), message="the forked child to end")
    # job tracking is flushed about once a second: one run counted, and still one a flush later
    # (the flush that brings the run of a job the worker ran after it)
    wait_for(lambda: db.hget(keys.layout_of(db).job_stats("forks", "default"), "runs"), message="the run counted")
    project.enqueue("add", "2")
    adds = keys.layout_of(db).job_stats("add", "default")
    wait_for(lambda: db.hget(adds, "runs") == b"2", interval=0.02, message="a later flush")
    assert db.hget(keys.layout_of(db).job_stats("forks", "default"), "runs") == b"1"
    assert len(child_pids(work.pid)) == 1


def test_kill_9_of_a_supervisor_leaves_no_worker_behind(project):
    project.write("queue.yml", "default: {worker_count: 3}\n")
    work = project.start("work")
    workers = wait_for(lambda: len(child_pids(work.pid)) == 3 and child_pids(work.pid), message="three workers")
    work.kill()
    work.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), message="the workers to die with their supervisor")


def test_the_supervisor_survives_records_it_cannot_recover(project, db):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    # a lost worker (no hash: its lease lapsed) holding a record without origin nor status
    db.sadd(keys.layout_of(db).active_workers("default"), "elsewhere.1")
    db.rpush(keys.layout_of(db).active("elsewhere.1", "default"), "broken")
    db.hset(keys.layout_of(db).job("broken", "default"), "data", b"junk")
    work = project.start("work", env=LEASE_ENV)
    wait_for(lambda: not db.sismember(keys.layout_of(db).active_workers("default"), "elsewhere.1"), message="the sweep")
    job_id = project.enqueue("add", "1", "2")
    wait_for(lambda: state(db, job_id) == "finished", message="the supervisor to go on")
    assert work.poll() is None


def test_a_failed_fork_is_retried(monkeypatch, tmp_path):
    from jobctl.config.queues import QueueConfig
    from jobctl.runtime import supervisor

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    boss = supervisor.Supervisor("redis://127.0.0.1:1/0", [QueueConfig("default")])
    slot = boss.slots[0]
    boss._spawn(slot)
    assert slot.pid is None and slot.restart_at > time.monotonic()


def test_a_recycled_worker_is_replaced_as_it_leaves_and_never_twice(monkeypatch):
    """A worker leaving to be recycled gets its successor at once; its own exit, clean or a crash
    in its last flush, then starts no other (the supervisor's bookkeeping, without processes)."""
    from jobctl.config.queues import QueueConfig
    from jobctl.runtime import supervisor
    from jobctl.runtime.worker import EXIT_RECYCLE

    boss = supervisor.Supervisor("redis://127.0.0.1:1/0", [QueueConfig("default")])
    monkeypatch.setattr(boss, "_recover", lambda slot, cause, how, culprits: (0, 0))
    spawned = []
    monkeypatch.setattr(boss, "_spawn", lambda slot: (spawned.append(slot), setattr(slot, "pid", 1000 + len(spawned))))
    (slot,) = boss.slots
    boss._start_missing()
    for exit_status in (EXIT_RECYCLE << 8, signal.SIGKILL):  # waitpid's statuses: an exit, a kill
        leaving = slot.pid
        boss._hand_over([leaving])
        boss._start_missing()
        assert slot.pid != leaving and [s.pid for s in boss.slots] == [slot.pid, leaving]
        (copy,) = [s for s in boss.slots if s.pid == leaving]
        started = len(spawned)
        boss._worker_exited(copy, exit_status)
        boss._start_missing()
        assert boss.slots == [slot] and len(spawned) == started
    # what reaches its pipe: pids not its workers', and bytes a job wrote there: nothing changes
    boss._wakeup, boss._leavers = os.pipe(), os.pipe()
    for fd in (*boss._wakeup, *boss._leavers):
        os.set_blocking(fd, False)  # as _wake_on_signals makes them
    try:
        os.write(boss._leavers[1], b"1004 999 \xff\x00garbage -3 ")
        boss._sleep(0.5)
        assert boss.slots == [slot] and slot.pid == 1003
        os.write(boss._leavers[1], b"1003 ")
        boss._sleep(0.5)
        assert slot.pid is None and [s.pid for s in boss.slots] == [None, 1003]
    finally:
        for fd in (*boss._wakeup, *boss._leavers):
            os.close(fd)


# --- foreign records and results ----------------------------------------------------------------


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
def test_records_jobctl_cannot_read_end_dead_with_a_reason(project, db):
    from rq import Queue

    project.write("queue.yml", "default: {worker_count: 1}\n")
    pickled = Queue("default", connection=db).enqueue("add", 1).id  # RQ's default serializer: pickle

    def foreign(job_id: str, **fields) -> str:
        db.hset(keys.layout_of(db).job(job_id, "default"), mapping={"status": "queued", "origin": "default", **fields})
        db.rpush(keys.layout_of(db).queue("default"), job_id)
        return job_id

    not_zlib = foreign("not-zlib", data=b"\x01\x02 not a payload")
    wrong_shape = foreign("wrong-shape", data=zlib.compress(b'{"func": "add"}'))
    no_data = foreign("no-data")
    no_origin = "no-origin"
    db.hset(
        keys.layout_of(db).job(no_origin, "default"),
        mapping={"status": "queued", "data": zlib.compress(b'["add", null, [1, 2], {}]')},
    )
    db.rpush(keys.layout_of(db).queue("default"), no_origin)
    assert project.run("work", "--burst").returncode == 0
    expected = {
        pickled: "payload is pickle (RQ's default serializer)",
        not_zlib: "payload is neither JSON nor zlib-compressed JSON",
        wrong_shape: "payload is JSON of the wrong shape",
        no_data: "the job record has no payload",
    }
    for job_id, reason in expected.items():
        job = project.show(job_id)
        assert job["state"] == "dead" and job["attempts"] == 1 and job["crashes"] == 0
        assert reason in job["reason"] and job["reason"].startswith("permanent error")
    assert project.show(no_origin)["result"] == 3  # found on `default`: that is its queue
    # stats imports the job modules: a process of its own; the others read in this one (run_here)
    for run, command in (
        (project.run_here, ["status"]),
        (project.run_here, ["status", "--json"]),
        (project.run, ["stats"]),
        (project.run, ["stats", "--json"]),
        (project.run_here, ["show", pickled]),
    ):
        result = run(*command)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result.stderr)
    requeued = project.run_here("requeue-dead", "--queue", "default", "--json")
    assert requeued.returncode == 0, requeued.stderr


def test_results_json_cannot_hold_are_dead_at_once(project, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, max_retries: 3}\n")
    ids = [project.enqueue("returns", kind) for kind in ("set", "deep")]
    assert project.run("work", "--burst").returncode == 0
    for job_id in ids:
        job = project.show(job_id)
        assert job["state"] == "dead" and job["attempts"] == 1 and job["crashes"] == 0
        assert "the job's result cannot be stored as JSON" in job["reason"]


def test_a_fenced_worker_writes_nothing(db):
    """Fetching needs the lease; an outcome needs the job still in the worker's in-flight list,
    which recovery empties (unit test of the scripts on a real Redis)."""
    from jobctl.errors import LeaseLost
    from jobctl.store.transitions import GoOn, Transitions

    transitions = Transitions(db)
    db.rpush(keys.layout_of(db).queue("default"), "j1")
    db.hset(keys.layout_of(db).job("j1", "default"), mapping={"status": "queued", "origin": "default", "data": b"x"})
    db.hset(keys.layout_of(db).worker("w", "default"), "jobctl_lease", "mine")
    db.sadd(keys.layout_of(db).active_workers("default"), "w")
    for token in ("stale", ""):
        with pytest.raises(LeaseLost):
            transitions.fetch("w", token, ["default"], time.time())
    assert db.llen(keys.layout_of(db).queue("default")) == 1
    (row,) = transitions.fetch("w", "mine", ["default"], time.time())
    db.delete(keys.layout_of(db).worker("w", "default"))  # the lease lapsed: a sweep recovers the job
    assert transitions.sweep([], ["default"], time.time(), crash_limit=3)[:2] == (1, 1)
    with pytest.raises(LeaseLost):
        transitions.succeed("j1", "default", "w", int(row[2]), time.time(), b"1", GoOn(["default"]))
    assert db.hget(keys.layout_of(db).job("j1", "default"), "status") == b"queued" and db.lrange(
        keys.layout_of(db).queue("default"), 0, -1
    ) == [b"j1"]
    assert not db.exists(keys.layout_of(db).active("w", "default"))
