"""Fault injection on real processes and a real Redis: no accepted job is ever lost."""

import os
import re
import signal
import threading
import time

import pytest
import redis
from conftest import REDIS6_SERVER, TLS_REDIS_SERVER, child_pids, state, wait_for

from jobctl.store import keys
from jobctl.store.connection import RedisOutage


def job_field(db, job_id, field):
    value = db.hget(keys.layout_of(db).job(job_id, "default"), field)
    return value.decode() if value is not None else None


def test_killed_worker_job_is_back_at_the_front_within_seconds(project, tmp_path, db):
    project.write("queue.yml", "default: {worker_count: 1, shutdown_timeout: 1s}\n")
    marker = tmp_path / "marker"
    work = project.start("work")
    victim_job = project.enqueue("slow", str(marker), "30")
    victim = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the job to start"))
    os.kill(work.pid, signal.SIGSTOP)  # freeze the supervisor so the queue can be seen before a new worker takes it
    try:
        waiting = project.enqueue("add", "1")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        os.kill(work.pid, signal.SIGCONT)
    wait_for(lambda: job_field(db, victim_job, "jobctl_crashes") == "1", message="the crash to be counted")
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < 5, f"recovered in {recovered_in:.1f}s"
    # the interrupted job went back to the FRONT: it starts again before the job queued meanwhile
    rerun_by = int(
        wait_for(
            lambda: marker.exists() and marker.read_text() != str(victim) and marker.read_text(),
            message="the job to run again",
        )
    )
    assert rerun_by != victim and rerun_by in child_pids(work.pid)
    assert project.show(waiting)["state"] == "queued"
    job = project.show(victim_job)
    assert job["state"] == "started" and job["crashes"] == 1
    assert job["errors"] == [
        {
            "attempt": 1,
            "at": job["errors"][0]["at"],
            "error": "worker killed by signal 9 (SIGKILL)",
            "worker": job["errors"][0]["worker"],
        }
    ]


def test_poison_pill_is_dead_after_three_crashes_while_other_jobs_flow(project, tmp_path, db):
    project.write("queue.yml", "default: {worker_count: 2}\n")
    log = tmp_path / "log"
    work = project.start("work")
    poison = project.enqueue("crash", "1")
    calls = project.write("calls.jsonl", "".join(f'{{"args": ["{log}", "job-{n}"]}}\n' for n in range(20)))
    assert project.run("enqueue", "record", "--from", str(calls)).returncode == 0
    wait_for(lambda: state(db, poison) == "dead", timeout=30, message="the poison pill to die")
    job = project.show(poison)
    assert job["reason"] == "worker exited (status 1) 3 times"
    assert job["crashes"] == 3
    wait_for(lambda: log.exists() and len(log.read_text().split()) == 20, message="the other jobs")
    assert sorted(log.read_text().split()) == sorted(f"job-{n}" for n in range(20))
    # a job writes its line before its outcome reaches Redis
    wait_for(lambda: db.zcard(keys.layout_of(db).finished("default")) == 20, message="the 20 outcomes")
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=15) == 0


def test_shutdown_requeues_a_job_longer_than_shutdown_timeout(project, tmp_path, db):
    project.write("queue.yml", "default: {worker_count: 1, shutdown_timeout: 1s}\n")
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    work = project.start("work")
    long_job = project.enqueue("gated", str(marker), str(gate))  # runs until the gate opens
    wait_for(marker.exists, message="the job to start")
    workers = child_pids(work.pid)
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=15) == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
    job = project.show(long_job)
    assert job["state"] == "queued" and job["attempts"] == 0  # an interrupted attempt is not held against it
    assert db.lindex(keys.layout_of(db).queue("default"), 0).decode() == long_job

    marker.unlink()
    gate.touch()
    assert project.run("work", "--burst").returncode == 0
    assert project.show(long_job)["state"] == "finished"


def test_second_signal_stops_at_once_and_still_requeues(project, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, shutdown_timeout: 60s}\n")
    marker = tmp_path / "marker"
    work = project.start("work")
    job_id = project.enqueue("slow", str(marker), "30")
    wait_for(marker.exists, message="the job to start")
    work.send_signal(signal.SIGINT)
    time.sleep(0.5)
    work.send_signal(signal.SIGINT)
    assert work.wait(timeout=10) == 0
    assert project.show(job_id)["state"] == "queued"


def test_job_ignoring_its_timeout_is_killed_and_retried(project, db):
    project.write("queue.yml", "default: {worker_count: 1, timeout: 1s, crash_limit: 1}\n")
    work = project.start("work")
    job_id = project.enqueue("stubborn", "60")
    wait_for(lambda: state(db, job_id) == "dead", timeout=30, message="the kill")
    job = project.show(job_id)
    assert job["reason"] == "worker killed after the job ignored its timeout 1 time"
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=15) == 0


def test_worker_over_max_memory_is_recycled_after_its_job(project):
    project.write("queue.yml", "default: {worker_count: 1, max_memory: 150MB}\n")
    first = project.enqueue("hoard", "200")
    second = project.enqueue("whoami")
    assert project.run("work", "--burst").returncode == 0
    assert project.show(first)["state"] == "finished"
    assert project.show(second)["result"] != project.show(first)["result"]  # a fresh process ran it


@pytest.mark.parametrize("version", ["7", "6"])
def test_workers_go_on_after_a_restart_that_lost_everything(project, tmp_path, redis_server, version):
    """Redis 7 holds the scripts as one library of functions, and a restart without persistence
    loses it with the jobs: the running workers load it again and take new jobs. Redis 6 (the
    embedded Redis's version) has no functions: the scripts run by EVALSHA."""
    binary = TLS_REDIS_SERVER if version == "7" else REDIS6_SERVER
    if not binary:
        pytest.skip(f"no redis-server {version} here")
    server = redis_server(binary=binary)
    client = redis.Redis(port=server.port)
    assert client.info("server")["redis_version"].startswith(version)
    env = {"REDIS_URL": server.url}
    project.write("queue.yml", "default: {worker_count: 1}\n")
    log = tmp_path / "log"
    work = project.start("work", env=env)

    def enqueue(names: list[str]) -> None:
        lines = "".join(f'{{"args": ["{log}", "{name}"]}}\n' for name in names)
        assert project.run("enqueue", "record", "--from", project.write("jobs.jsonl", lines), env=env).returncode == 0

    enqueue([f"before-{n}" for n in range(5)])
    wait_for(lambda: log.exists() and len(log.read_text().split()) == 5, message="the first 5 jobs")
    if version == "7":
        assert any(library[1].startswith(b"jobctl_") for library in client.function_list())
    server.stop()
    server.start()
    enqueue([f"after-{n}" for n in range(5)])
    wait_for(lambda: len(log.read_text().split()) == 10, timeout=30, message="the 5 jobs after the restart")
    assert sorted(log.read_text().split()) == sorted(
        [f"before-{n}" for n in range(5)] + [f"after-{n}" for n in range(5)]
    )
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=20) == 0


def test_a_worker_asked_to_stop_during_an_outage_stops_without_redis(project, redis_server):
    """SIGTERM while Redis is away: the worker stops waiting for Redis (its next fetch, its last
    flush and give-back; the supervisor or a sweep gives back what it held) and the fleet stops by
    itself, not when the worker's lease (20 s) ends it, nor when Redis returns to hand it a job."""
    server = redis_server()
    env = {"REDIS_URL": server.url}
    project.write("queue.yml", "default: {worker_count: 1, shutdown_timeout: 60}\n")
    work = project.start("work", env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(work.stderr), daemon=True).start()
    wait_for(lambda: redis.Redis(port=server.port).scard(keys.WORKERS) == 1, message="the worker to register")
    server.stop()
    # the worker's tries are 5 s apart by now (RedisOutage.DELAYS)
    wait_for(lambda: sum("worker " in line and "lost Redis" in line for line in lines) == 1, message="the outage")
    time.sleep(sum(RedisOutage.DELAYS[:-1]))
    work.send_signal(signal.SIGTERM)
    # at once: the lease would have ended the worker about 15 s after the signal
    assert work.wait(timeout=10) == 0
    wait_for(lambda: any("supervisor " in line and "stopped" in line for line in lines), message="the last line")
    assert not any("its jobs are recovered elsewhere" in line or "killing worker" in line for line in lines), lines


def test_redis_restart_loses_nothing(project, tmp_path, redis_server):
    server = redis_server("--appendonly", "yes", "--appendfsync", "always")
    env = {"REDIS_URL": server.url}
    project.write("queue.yml", "default: {worker_count: 2, retry_delay: 200ms}\n")
    log = tmp_path / "log"
    work = project.start("work", env=env)
    before = project.write("before.jsonl", "".join(f'{{"args": ["{log}", "before-{n}"]}}\n' for n in range(10)))
    assert project.run("enqueue", "record", "--from", str(before), env=env).returncode == 0
    marker = tmp_path / "marker"
    during = project.enqueue("slow", str(marker), "2", env=env)  # finishes while Redis is down
    wait_for(marker.exists, message="the slow job to start")

    server.stop()
    stopped = time.monotonic()
    down = project.run("enqueue", "add", "1", env=env)
    assert down.returncode == 2 and f"cannot reach Redis at 127.0.0.1:{server.port}" in down.stderr
    time.sleep(max(0.0, marker.stat().st_mtime + 2.5 - time.time()))  # until the slow job has ended
    down_for = time.monotonic() - stopped
    server.start()

    after = project.write("after.jsonl", "".join(f'{{"args": ["{log}", "after-{n}"]}}\n' for n in range(10)))
    assert project.run("enqueue", "record", "--from", str(after), env=env).returncode == 0
    restarted = redis.Redis(port=server.port)
    wait_for(lambda: restarted.zcard(keys.finished("default")) == 21, message="every job to finish")
    lines = log.read_text().split()
    assert sorted(set(lines)) == sorted([f"before-{n}" for n in range(10)] + [f"after-{n}" for n in range(10)])
    assert project.show(during, env=env)["result"] == 2
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=20) == 0
    stderr_lines = work.stderr.read().splitlines()
    assert any("lost Redis at 127.0.0.1" in line for line in stderr_lines)
    # the supervisor says it once each way, and "back" only once Redis answers again (a duty
    # with nothing to do said so while Redis was still down)
    supervisor = [
        line for line in stderr_lines if "supervisor " in line and ("lost Redis" in line or " is back " in line)
    ]
    assert len(supervisor) == 2 and "lost Redis" in supervisor[0], supervisor
    back_after = float(re.search(r"is back after ([0-9.]+)s", supervisor[1])[1])
    assert back_after >= down_for - 1.0, (back_after, down_for)
