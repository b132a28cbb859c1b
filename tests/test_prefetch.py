"""Prefetch and outcomes recorded together: a concurrency-1 worker keeps up to `prefetch` jobs
reserved behind the one it runs; a pool's threads that finish together record their outcomes in
one call (runtime/reservation.py). What a user can observe: fewer Redis calls per job, and a
crash that gives every reserved job back to the front of its queue without counting against it."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import redis
from conftest import child_pids, script_calls, wait_for

import jobctl
from jobctl import testing
from jobctl.api.client import Client
from jobctl.store import keys

POOL = 8
ROUNDS = 2
_together = threading.Barrier(POOL)
_db: redis.Redis | None = None


def _pause_writes() -> None:
    """Run by one thread as the pool's jobs all return at once: Redis holds back writes for a
    second, so that the first outcome sent is in flight while the other threads queue theirs
    (300 ms was once too short for them under the full suite's load: 10 calls for 16 jobs)."""
    assert _db is not None
    _db.client_pause(1000, all=False)


@jobctl.job("in_step", queue="pool")
def in_step(n: int) -> int:
    """Returns when all POOL threads reach it, together."""
    _together.wait(timeout=30)
    return n


def pool_script_calls(redis_url, tmp_path, db, rounds: int) -> int:
    """Redis script calls of an in-process pool worker of POOL threads running POOL * `rounds`
    jobs, each round's jobs returning together."""
    global _together, _db
    _together, _db = threading.Barrier(POOL, action=_pause_writes), db
    (tmp_path / "queue.yml").write_text(f"pool: {{concurrency: {POOL}}}\n")
    client = Client(redis_url, tmp_path / "queue.yml")
    jobs = POOL * rounds
    with testing.default_client(client):
        for n in range(jobs):
            in_step.enqueue(n)
        before = script_calls(db)
        assert testing.Worker("pool", POOL, client=client).drain() == jobs
        calls = script_calls(db) - before
    client.close()
    assert db.zcard(keys.layout_of(db).finished("pool")) == jobs
    assert {
        db.hget(keys.layout_of(db).job(job_id.decode(), "pool"), "status")
        for job_id in db.zrange(keys.layout_of(db).finished("pool"), 0, -1)
    } == {b"finished"}
    db.flushdb()
    return calls


def test_a_pool_records_the_successes_of_threads_that_finish_together_in_one_call(redis_url, tmp_path, db):
    """POOL threads whose jobs return at the same moment: their outcomes (and their next jobs'
    starts) go in a few calls, not one each (the first thread's alone, the others' together
    while it is in flight). Counted as the script calls the jobs of ROUNDS more rounds add (what
    a drain costs besides is the same): about 2 per round of POOL jobs. Before, each outcome was
    a call of its own: at least one per job."""
    extra = pool_script_calls(redis_url, tmp_path, db, 2 * ROUNDS) - pool_script_calls(redis_url, tmp_path, db, ROUNDS)
    assert extra / (POOL * ROUNDS) <= 0.5, extra


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "T"


def pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits to be delivered to the process (/proc's ShdPnd: sent to the process)."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line
    )
    return bool(int(fields["ShdPnd"], 16) & (1 << (signum - 1)))


def test_a_stop_gives_every_prefetched_job_back_to_the_front_in_order(project, tmp_path, db):
    """`jobctl work` stopped (SIGTERM) while its worker runs a job with three reserved: the job
    ends, and the three are back at the front of the queue, in their order, unstarted (queued,
    no attempt used, no crash), ahead of the job that was never reserved."""
    project.write("queue.yml", "default: {worker_count: 1, prefetch: 3}\n")
    out, marker = tmp_path / "out", tmp_path / "frozen"
    project.enqueue("add", "1", "2")
    frozen = project.enqueue("freezes", str(marker))
    reserved = [project.enqueue("record", str(out), f"r{n}") for n in (1, 2, 3)]
    last = project.enqueue("record", str(out), "r4")
    work = project.start("work")
    worker = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the freezing job to start"))
    wait_for(lambda: stopped(worker), message="the worker stopped")
    work.send_signal(signal.SIGTERM)  # the supervisor passes it on: pending while the worker is stopped
    wait_for(lambda: pending(worker, signal.SIGTERM), message="the stop passed on to the worker")
    os.kill(worker, signal.SIGCONT)
    assert work.wait(timeout=30) == 0
    assert [j.decode() for j in db.lrange(keys.layout_of(db).queue("default"), 0, -1)] == [*reserved, last]
    assert db.hget(keys.layout_of(db).job(frozen, "default"), "status") == b"finished"
    for job_id in reserved:
        fields = db.hmget(keys.layout_of(db).job(job_id, "default"), "status", "jobctl_attempts", "jobctl_crashes")
        assert fields[0] == b"queued" and fields[1] in (None, b"0") and fields[2] in (None, b"0"), fields


def test_kill_9_gives_every_prefetched_job_back_uncounted(project, tmp_path, db):
    """A worker with `prefetch: 3` runs a job with three reserved behind it (one of them limited
    by max_concurrency): while reserved they are 'queued' in its in-flight list, with no
    deadline, no concurrency slot. kill -9: all three go back to the front of the queue, in their
    order, with no crash counted; only the running job counts one. Each then runs once."""
    project.write("queue.yml", "default: {worker_count: 1, prefetch: 3}\n")
    out, marker, limited_marker = tmp_path / "out", tmp_path / "frozen", tmp_path / "limited"
    limited_marker.write_text("")  # limited_once_slow returns at once
    project.enqueue("add", "1", "2")  # its outcome starts the next job and reserves three
    frozen = project.enqueue("freezes", str(marker))
    reserved = [project.enqueue("record", str(out), "r1"), project.enqueue("limited_once_slow", str(limited_marker))]
    reserved.append(project.enqueue("record", str(out), "r3"))
    last = project.enqueue("record", str(out), "r4")
    work = project.start("work")
    worker = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the freezing job to start"))
    wait_for(lambda: stopped(worker), message="the worker stopped")
    name = next(w.decode() for w in db.smembers(keys.layout_of(db).active_workers("default")))
    assert [j.decode() for j in db.lrange(keys.layout_of(db).active(name, "default"), 0, -1)] == [frozen, *reserved]
    assert db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [last.encode()]
    for job_id in reserved:
        status, deadline = db.hmget(keys.layout_of(db).job(job_id, "default"), "status", "jobctl_deadline")
        assert (status, deadline) == (b"queued", None)
    assert db.hlen(keys.layout_of(db).slots("limited_once_slow", "default")) == 0  # a reservation holds no slot

    assert worker in child_pids(work.pid)
    os.kill(worker, signal.SIGKILL)
    wait_for(
        lambda: db.hget(keys.layout_of(db).job(frozen, "default"), "jobctl_crashes") == b"1",
        message="the crash recorded",
    )
    wait_for(lambda: all(project.show(j)["state"] == "finished" for j in [*reserved, last, frozen]), timeout=30)
    assert out.read_text().split() == ["r1", "r3", "r4"]  # each once, in the queue's order
    for job_id in reserved:
        shown = project.show(job_id)
        assert (shown["crashes"], shown["attempts"]) == (0, 1), shown
