"""Many supervisors, one Redis: two `jobctl work` share the queues with no job run twice, and
when one of them dies with its workers (the host is gone) the other recovers its job once the
lost workers' heartbeats lapse."""

import os
import signal
from collections import Counter

import sample_jobs  # noqa: F401  (registers the sample jobs in this process, for enqueue)
from conftest import child_pids, kill_quietly, wait_for

from jobctl.api import reads as api
from jobctl.api import records
from jobctl.api.producer import enqueue
from jobctl.config.queues import load_queues
from jobctl.store import keys

JOBS = 200
LEASE_TTL = 3  # seconds: lost workers' heartbeats lapse after 3 s, not the default 20
LEASE_ENV = {"JOBCTL_LEASE_TTL": str(LEASE_TTL)}


def start_two_supervisors(project, db, env: dict | None = None):
    supervisors = [project.start("work", env=env), project.start("work", env=env)]
    wait_for(lambda: db.scard(keys.WORKERS) == 6, message="two supervisors' workers registered")
    return supervisors


def test_two_supervisors_share_the_queues_and_run_each_job_once(project, db):
    supervisors = start_two_supervisors(project, db)
    config = load_queues(project.path / "queue.yml")
    ids = [enqueue(db, config, "whoami").id for _ in range(JOBS)]
    wait_for(
        lambda: all(j.state == "finished" for j in records.jobs(db, ids)), timeout=30, message="every job to finish"
    )

    jobs = records.jobs(db, ids)
    assert all(job.attempts == 1 for job in jobs)
    # executions, not just outcomes; job tracking is flushed by each worker about once a second
    wait_for(
        lambda: int(db.hget(keys.layout_of(db).queue_stats("default"), "runs") or 0) == JOBS, message="tracking flushed"
    )
    ran_in = Counter(job.result for job in jobs)  # whoami returns the worker's pid
    share = {n: sum(ran_in[pid] for pid in child_pids(s.pid)) for n, s in enumerate(supervisors)}
    assert sum(share.values()) == JOBS
    assert all(count > 0 for count in share.values()), share


def test_a_lost_hosts_job_is_recovered_by_the_other_supervisor_after_the_heartbeat_lapses(project, db, tmp_path):
    """Waits out the lease (LEASE_TTL, shortened for the test through JOBCTL_LEASE_TTL)."""
    supervisors = start_two_supervisors(project, db, env=LEASE_ENV)
    marker = tmp_path / "started"
    job_id = enqueue(db, load_queues(project.path / "queue.yml"), "slow", [str(marker), 2]).id
    wait_for(marker.exists, message="the slow job to start")
    first_pid = int(marker.read_text())
    (holder,) = [s for s in supervisors if first_pid in child_pids(s.pid)]
    (survivor,) = [s for s in supervisors if s is not holder]

    for pid in [holder.pid, *child_pids(holder.pid)]:  # the whole host at once, no goodbyes
        kill_quietly(pid, signal.SIGKILL)
    holder.wait()
    assert records.job(db, job_id).state == "started"  # nobody knows yet

    wait_for(
        lambda: records.job(db, job_id).state == "finished",
        timeout=LEASE_TTL + 15,
        message="the surviving supervisor to recover and rerun the job",
    )
    job = records.job(db, job_id)
    assert int(marker.read_text()) in child_pids(survivor.pid)
    assert any("worker lost (no heartbeat)" in e["error"] for e in job.errors)
    assert job.attempts == 1  # an interrupted attempt does not use up a retry
    lost = set(child_pids(holder.pid)) | {first_pid}
    assert not any(w.pid in lost and w.state == "busy" for w in api.workers(db))  # not "busy forever"
    assert survivor.poll() is None
    os.kill(survivor.pid, 0)
