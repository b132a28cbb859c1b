"""Jobs enqueued from the CLI and run as `jobctl work` runs them: in supervised worker processes
where the test is about them (a burst, a kill, a stop, promotion, --wait, recycling), else by the
same worker code in this process (retries, timeouts, dependencies, requeue-dead)."""

import json
import os
import signal
import time

from conftest import child_pids, state, wait_for

from jobctl.api import records
from jobctl.store import keys


def test_enqueue_work_show(project):
    job_id = project.enqueue("add", "2", "-k", "b=40")
    assert project.show(job_id)["state"] == "queued"

    burst = project.run("work", "--burst")
    assert burst.returncode == 0, burst.stderr

    job = project.show(job_id)
    assert job["state"] == "finished"
    assert job["result"] == 42
    assert job["args"] == [2] and job["kwargs"] == {"b": 40}
    assert job["attempts"] == 1
    assert job["worker"]


def test_arguments_are_json_where_they_parse(project, in_process, db):
    job_id = project.enqueue("echo_kwargs", "7", "hello", "[1, 2]", "-k", 'opts={"deep": true}', "-k", "name=x")
    in_process().drain()
    assert json.loads(records.job(db, job_id).result) == {
        "args": [7, "hello", [1, 2]],
        "kwargs": {"name": "x", "opts": {"deep": True}},
    }


def test_retries_follow_max_retries_then_dead(project, in_process, db):
    # queue.yml: default has max_retries 2 -> three attempts in all
    job_id = project.enqueue("always_fails")
    in_process().drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "dead"
    assert job.attempts == 3
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert all("this job always fails" in e["error"] for e in job.errors)
    assert "Traceback" in job.error


def test_a_retry_that_succeeds(project, in_process, db, tmp_path):
    job_id = project.enqueue("flaky", str(tmp_path / "count"), "2")
    in_process().drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "finished"
    assert job.result == 3
    assert job.attempts == 3 and len(job.errors) == 2


def test_retry_waits_for_its_backoff(project, in_process, db, tmp_path):
    # half a second: five times as long as drain(wait=) takes to look again (testing.WAIT_POLL)
    project.write("queue.yml", "default: {worker_count: 1, max_retries: 1, retry_delay: 500ms, backoff: fixed}\n")
    counter = tmp_path / "count"
    job_id = project.enqueue("flaky", str(counter), "1")
    in_process().drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "finished"
    first_failure = job.errors[0]["at"]
    assert job.started_at - first_failure >= 0.5


def test_permanent_error_goes_straight_to_dead(project, in_process, db):
    job_id = project.enqueue("refuses")
    in_process().drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "dead"
    assert job.attempts == 1
    assert job.reason == "permanent error: PermanentError: bad input, do not retry"


def test_timeout_counts_as_a_failure(project, in_process, db, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, max_retries: 0, timeout: 1s}\n")
    job_id = project.enqueue("slow", str(tmp_path / "marker"), "30")
    in_process().drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "dead"
    assert "timed out after 1s" in job.errors[0]["error"]


def test_killed_worker_is_restarted_and_its_job_recovered(project, tmp_path, db):
    marker = tmp_path / "marker"
    work = project.start("work", "--queue", "default")
    job_id = project.enqueue("slow", str(marker), "1")
    victim = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the job to start"))
    assert victim in child_pids(work.pid)
    marker.unlink()

    os.kill(victim, signal.SIGKILL)

    # the job runs again, in another worker process, and finishes
    rerun_by = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the job to run again"))
    assert rerun_by != victim
    wait_for(lambda: state(db, job_id) == "finished", message="the job to finish")
    job = project.show(job_id)
    assert job["errors"][0]["error"] == "worker killed by signal 9 (SIGKILL)"
    # the supervisor replaced the killed worker: two workers again, the victim gone
    wait_for(lambda: len(child_pids(work.pid)) == 2, message="a replacement worker")
    assert victim not in child_pids(work.pid)

    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=15) == 0


def test_sigterm_lets_the_running_job_finish(project, tmp_path):
    marker = tmp_path / "marker"
    work = project.start("work")
    job_id = project.enqueue("slow", str(marker), "1.5")
    wait_for(marker.exists, message="the job to start")
    workers = child_pids(work.pid)

    work.send_signal(signal.SIGTERM)

    assert work.wait(timeout=15) == 0
    assert project.show(job_id)["state"] == "finished"
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)


def test_scheduled_job_runs_at_its_time(project, db):
    enqueued_at = time.time()
    job_id = project.enqueue("add", "1", "--in", "2s")
    waiting = project.show(job_id)  # no worker yet: nothing can have run it, however slow this machine is
    assert waiting["state"] == "scheduled" and waiting["scheduled_for"] >= enqueued_at + 2
    project.start("work")
    wait_for(lambda: state(db, job_id) == "finished", message="the delayed job")
    assert project.show(job_id)["started_at"] >= waiting["scheduled_for"]


def test_wait_follows_the_job_and_exits_by_outcome(project):
    project.start("work")
    finished = project.run("enqueue", "steps", "4", "--wait", "--json")
    assert finished.returncode == 0, finished.stderr
    job = json.loads(finished.stdout)
    assert job["state"] == "finished" and job["progress"] == 100

    dead = project.run("enqueue", "refuses", "--wait")
    assert dead.returncode == 1
    assert "dead" in dead.stdout


def test_unique_refuses_a_second_copy(project):
    first = project.enqueue("add", "1", "--unique")
    second = project.run("enqueue", "add", "1", "--unique")
    assert second.returncode == 1
    assert first in second.stderr
    other_args = project.run("enqueue", "add", "2", "--unique")
    assert other_args.returncode == 0


def test_job_id_in_use_is_refused(project):
    assert project.enqueue("add", "1", "--job-id", "nightly-1") == "nightly-1"
    again = project.run("enqueue", "add", "1", "--job-id", "nightly-1")
    assert again.returncode == 1 and "nightly-1 is already queued" in again.stderr


def test_dependent_waits_for_its_parent(project, in_process, db, tmp_path):
    log = tmp_path / "order.log"
    parent = project.enqueue("record", str(log), "parent", "--in", "1s")
    child = project.enqueue("record", str(log), "child", "--depends-on", parent)
    assert project.show(child)["state"] == "deferred"
    in_process().drain(wait=60)
    assert log.read_text().split() == ["parent", "child"]
    assert records.job(db, child).depends_on == [parent]


def test_dependents_of_a_dead_parent_are_canceled(project, in_process, db):
    parent = project.enqueue("refuses")
    child = project.enqueue("add", "1", "--depends-on", parent)
    in_process().drain(wait=60)
    job = records.job(db, child)
    assert job.state == "canceled"
    assert job.reason == f"parent {parent} is dead"


def test_requeue_dead_brings_jobs_back_once(project, in_process, db, tmp_path):
    counter = tmp_path / "count"
    job_id = project.enqueue("flaky", str(counter), "3")  # three failures, two retries: dead
    worker = in_process()
    worker.drain(wait=60)
    assert records.job(db, job_id).state == "dead"

    dry = project.run("requeue-dead", "--all", "--dry-run", "--json")
    assert json.loads(dry.stdout)["requeued"][0]["id"] == job_id
    assert records.job(db, job_id).state == "dead"

    first = project.run("requeue-dead", "--queue", "default", "--json")
    second = project.run("requeue-dead", "--queue", "default", "--json")
    assert [j["id"] for j in json.loads(first.stdout)["requeued"]] == [job_id]
    assert json.loads(second.stdout)["requeued"] == []

    worker.drain(wait=60)
    job = records.job(db, job_id)
    assert job.state == "finished" and job.result == 4


def test_status_json_counts_jobs_per_state(project):
    project.enqueue("add", "1")
    project.enqueue("add", "2", "--in", "1h")
    project.enqueue("refuses")
    status = json.loads(project.run("status", "--json").stdout)
    default = next(q for q in status["queues"] if q["name"] == "default")
    assert (default["queued"], default["scheduled"], default["dead"]) == (2, 1, 0)
    project.run("work", "--burst")
    status = json.loads(project.run("status", "--json").stdout)
    default = next(q for q in status["queues"] if q["name"] == "default")
    assert (default["queued"], default["scheduled"], default["finished"], default["dead"]) == (0, 1, 1, 1)
    assert status["workers"] == []


def test_workers_are_recycled_after_max_jobs(project, db):
    project.write("queue.yml", "default: {worker_count: 1, max_jobs: 2}\n")
    calls = project.write("calls.jsonl", "{}\n" * 5)
    assert project.run("enqueue", "whoami", "--from", str(calls)).returncode == 0
    ids = [job_id.decode() for job_id in db.lrange(keys.layout_of(db).queue("default"), 0, -1)]
    burst = project.run("work", "--burst")
    assert burst.returncode == 0 and "died" not in burst.stderr, burst.stderr
    pids = [json.loads(db.hget(keys.layout_of(db).job(job_id, "default"), "result")) for job_id in ids]
    assert pids[0] == pids[1] and pids[2] == pids[3] and len(set(pids)) == 3


def test_a_recycled_worker_leaves_once_its_jobs_are_stored_and_its_reservation_given_back(project, db, monkeypatch):
    """What the supervisor relies on to start a successor before a recycled worker has exited:
    when the worker says it is leaving, its jobs' outcomes are stored and the job it had reserved
    is back at the head of its queue, so the successor takes it first."""
    import sample_jobs  # noqa: F401  (registers the sample jobs in this process)

    from jobctl.config.queues import load_queues
    from jobctl.runtime.worker import EXIT_RECYCLE, Worker

    monkeypatch.chdir(project.path)
    project.write("queue.yml", "default: {worker_count: 1, max_jobs: 2}\n")
    calls = project.write("calls.jsonl", "{}\n" * 4)
    assert project.run("enqueue", "whoami", "--from", str(calls)).returncode == 0
    layout = keys.layout_of(db)
    ids = [job_id.decode() for job_id in db.lrange(layout.queue("default"), 0, -1)]
    seen = {}

    def on_leaving() -> None:
        home = worker.homes[0]
        seen["statuses"] = [db.hget(layout.job(job_id, "default"), "status") for job_id in ids]
        seen["queued"] = [job_id.decode() for job_id in db.lrange(layout.queue("default"), 0, -1)]
        seen["in flight"] = db.lrange(layout.active(worker.name, home), 0, -1)
        seen["registered"] = bool(db.exists(layout.worker(worker.name, home)))

    config = load_queues(project.path / "queue.yml")
    worker = Worker(
        db, config.select(["default"]), max_jobs=2, config=config, capture_output=False, on_leaving=on_leaving
    )
    assert worker.run() == EXIT_RECYCLE
    assert seen == {
        "statuses": [b"finished", b"finished", b"queued", b"queued"],
        "queued": ids[2:],
        "in flight": [],
        "registered": True,
    }
    assert not db.exists(layout.worker(worker.name, worker.homes[0]))  # then it unregistered


def test_requeue_dead_older_than(project, in_process):
    job_id = project.enqueue("refuses")
    in_process().drain()
    too_recent = project.run("requeue-dead", "--all", "--older-than", "1h", "--json")
    assert json.loads(too_recent.stdout)["requeued"] == []
    old_enough = project.run("requeue-dead", "--all", "--older-than", "0s", "--json")
    assert [j["id"] for j in json.loads(old_enough.stdout)["requeued"]] == [job_id]
    assert project.show(job_id)["state"] == "queued"
    bad = project.run("requeue-dead", "--all", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than 'soon': expected a duration" in bad.stderr
