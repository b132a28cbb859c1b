"""`jobctl work` is a drop-in for `rq worker` on JSON jobs: RQ's own API (rq 2.12, JSONSerializer)
enqueues, a real `jobctl work` runs (or its worker code in this process, where only what happens
to the jobs is asserted), and what RQ's options promise is what happens."""

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import rq_api_jobs  # noqa: F401  (registers the RQ-API jobs in this process, for the in-process worker)
import sample_jobs
from conftest import QUEUE_YML, TESTS, state, wait_for
from rq import Callback, Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.job import Job, get_current_job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from jobctl.api import reads, records
from jobctl.middleware import rq_compat
from jobctl.store.jobdata import parse_rq_time

CALLBACKS = "test:callbacks"


@pytest.fixture
def rq_project(project):
    """The project, with jobs that use RQ's API inside and callbacks, and an async queue."""
    shutil.copy(TESTS / "rq_api_jobs.py", project.path / "rq_api_jobs.py")
    project.env["JOBCTL_JOBS"] = "sample_jobs,rq_api_jobs"
    project.write("queue.yml", QUEUE_YML + "together: {worker_count: 1, concurrency: 4, max_retries: 0}\n")
    return project


@pytest.fixture
def queue(db):
    return Queue("default", connection=db, serializer=JSONSerializer)


def fetch(db, job_id: str) -> Job:
    return Job.fetch(job_id, connection=db, serializer=JSONSerializer)


def rq_cli(redis_url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "rq.cli", *args, "-u", redis_url, "-S", "json"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def callbacks(db) -> list:
    return [json.loads(entry) for entry in db.lrange(CALLBACKS, 0, -1)]


def test_a_jobs_own_retry_wins_over_the_queues_and_moves_retries_left(rq_project, in_process, queue, db, tmp_path):
    # the queue allows 2 retries: the job's own Retry gives it 3, then 1
    survivor = queue.enqueue("flaky", str(tmp_path / "survivor"), 3, retry=Retry(max=3, interval=[1, 2])).id
    short = queue.enqueue("flaky", str(tmp_path / "short"), 2, retry=Retry(max=1)).id
    working = threading.Thread(target=in_process(["default"], concurrency=2).drain, kwargs={"wait": 60}, daemon=True)
    working.start()

    waits = set()  # (retries_left, seconds from the failure to the retry), as each retry waits

    def finished() -> bool:
        raw = db.hgetall(f"rq:job:{survivor}")  # one read: the retry may start (ended_at cleared) meanwhile
        if raw[b"status"] == b"scheduled":
            ended = parse_rq_time(raw[b"ended_at"])
            waits.add((int(raw[b"retries_left"]), round(float(raw[b"jobctl_scheduled_for"]) - ended)))
        return raw[b"status"] == b"finished"

    wait_for(finished, timeout=30, interval=0.02, message="the job to succeed at its fourth attempt")
    # RQ's intervals: with fewer intervals than retries, the first ones repeat (rq/job.py)
    assert waits == {(2, 1), (1, 1), (0, 2)}
    job = fetch(db, survivor)
    assert (job.retries_left, job.return_value()) == (0, 4)
    working.join(timeout=60)
    assert records.job(db, short).state == "dead"
    assert records.job(db, short).attempts == 2 and fetch(db, short).retries_left == 0


def test_retries_counted_as_the_rule_that_applies_and_a_retried_success_as_rq_leaves_it(rq_project, db, tmp_path):
    # "together" allows no retry: the job's own Retry does; "default" allows 2, a job without its own
    own = Queue("together", connection=db, serializer=JSONSerializer)
    own_id = own.enqueue("flaky", str(tmp_path / "own"), 2, retry=Retry(max=3)).id
    plain = Queue("default", connection=db, serializer=JSONSerializer).enqueue("flaky", str(tmp_path / "plain"), 1).id
    assert (rq_project.show(own_id)["max_retries"], rq_project.show(plain)["max_retries"]) == (3, 2)
    assert "attempts 0 (max retries 2)" in " ".join(rq_project.run_here("show", plain).stdout.split())
    worker = rq_project.start("work", "--queue", "together", "--queue", "default")
    for job_id in (own_id, plain):
        wait_for(lambda job_id=job_id: fetch(db, job_id).get_status() == "finished", message="the retried jobs")
    worker.send_signal(signal.SIGTERM)
    log = worker.communicate(timeout=30)[1]
    attempts = sorted(re.findall(r"flaky (\S+) \[\w+\] failed \(attempt (\d) of (\d)\)", log))
    assert attempts == sorted([(own_id, "1", "4"), (own_id, "2", "4"), (plain, "1", "3")])

    # as RQ leaves a job that finished after retries: no exc_info, one successful result
    for job_id in (own_id, plain):
        job = fetch(db, job_id)
        assert [result.type for result in job.results()] == [Result.Type.SUCCESSFUL]
        with pytest.warns(DeprecationWarning):
            assert job.exc_info is None
    # jobctl's show still has the tracebacks of the failed attempts
    shown = rq_project.run("show", own_id).stdout
    assert "Traceback of attempt 2" in shown and "RuntimeError: flaky failure 2" in shown
    assert "RuntimeError: flaky failure 1" in rq_project.run_here("show", own_id, "--all").stdout


def test_a_job_rqs_api_canceled_is_kept_as_rq_keeps_it_and_its_dependents_settled(rq_project, queue, db):
    canceled = queue.enqueue("add", 1, 2)
    strict = rq_project.enqueue("add", "3", "--depends-on", canceled.id)
    tolerant = rq_project.enqueue("add", "4", "--depends-on", canceled.id, "--allow-failure")
    canceled.cancel()
    brief = queue.enqueue("add", 3, result_ttl=1).id
    rq_project.start("work", "--queue", "default", env={"JOBCTL_LEASE_TTL": "4"})  # a sweep every second
    wait_for(lambda: not db.exists(f"rq:job:{brief}"), message="a sweep after the cancel's entry was due")
    assert fetch(db, canceled.id).get_status() == "canceled"
    assert canceled.id in CanceledJobRegistry("default", connection=db)
    wait_for(lambda: state(db, tolerant) == "finished", message="the tolerant dependent to run")
    assert (rq_project.show(strict)["state"], rq_project.show(strict)["reason"]) == (
        "canceled",
        f"parent {canceled.id} is canceled",
    )


def test_a_suspended_idle_worker_says_so_to_rq(rq_project, redis_url, db):
    rq_project.start("work", "--queue", "default")
    wait_for(lambda: len(Worker.all(connection=db)) == 2, message="the workers")
    rq_cli(redis_url, "suspend")
    wait_for(
        lambda: {w.get_state() for w in Worker.all(connection=db)} == {"suspended"}, message="RQ's suspended state"
    )
    rq_cli(redis_url, "resume")
    wait_for(lambda: {w.get_state() for w in Worker.all(connection=db)} == {"idle"}, message="idle again")


def test_result_ttl_zero_and_forever_ttl_and_failure_ttl(rq_project, queue, db, tmp_path):
    ran = tmp_path / "ran"
    gone = queue.enqueue("add", 1, result_ttl=0).id
    forever = queue.enqueue("add", 2, result_ttl=-1).id
    brief = queue.enqueue("add", 3, result_ttl=1).id
    expired = queue.enqueue("record", str(ran), "expired", ttl=1).id
    waiting = queue.enqueue("record", str(ran), "waited", ttl=600).id
    dead_forever = queue.enqueue("refuses", failure_ttl=-1).id
    dead_briefly = queue.enqueue("refuses", failure_ttl=100).id
    assert 0 < db.ttl(f"rq:job:{waiting}") <= 600  # RQ's ttl: how long the job may wait
    wait_for(lambda: not db.exists(f"rq:job:{expired}"), message="the job with ttl=1 to expire unstarted")

    rq_project.start("work", "--queue", "default", env={"JOBCTL_LEASE_TTL": "4"})  # a sweep every second
    wait_for(lambda: state(db, waiting) == "finished", message="the jobs to run")
    assert ran.read_text() == "waited\n"  # the expired job never ran
    assert db.ttl(f"rq:job:{waiting}") == -1  # started: its ttl no longer applies, as RQ's perform() does

    wait_for(lambda: not db.exists(f"rq:job:{gone}"), message="the result_ttl=0 job to be deleted once finished")
    assert not db.exists(f"rq:results:{gone}") and gone not in FinishedJobRegistry("default", connection=db)
    assert db.zscore("rq:finished:default", forever) == math.inf
    wait_for(lambda: not db.exists(f"rq:job:{brief}"), message="the sweep to delete the result_ttl=1 job")
    assert fetch(db, forever).return_value() == 2  # swept around, never deleted
    assert db.ttl(f"rq:job:{forever}") == -1

    wait_for(lambda: state(db, dead_briefly) == "dead", message="the failing jobs to die")
    failed = FailedJobRegistry("default", connection=db)
    assert db.zscore(failed.key, dead_forever) == math.inf and db.ttl(f"rq:job:{dead_forever}") == -1
    assert (
        90 < db.zscore(failed.key, dead_briefly) - time.time() <= 100 and 90 < db.ttl(f"rq:job:{dead_briefly}") <= 100
    )


def test_job_timeout_and_meta(rq_project, queue, db, tmp_path):
    # worker processes: a job past its timeout that goes on sleeping is ended with its process
    timed_out = queue.enqueue("slow", str(tmp_path / "a"), 30, job_timeout=1, retry=Retry(max=1)).id
    unlimited = queue.enqueue("slow", str(tmp_path / "b"), 2.5, job_timeout=-1).id  # RQ: -1 is no timeout
    with_meta = queue.enqueue("uses_meta", "seen_by", "job", meta={"from": "producer"}).id
    rq_project.start("work", "--queue", "default")

    wait_for(lambda: state(db, timed_out) == "dead", timeout=30, message="the job to time out twice")
    assert [e["error"] for e in rq_project.show(timed_out)["errors"]] == ["JobTimeout: timed out after 1s"] * 2
    wait_for(lambda: state(db, unlimited) == "finished", message="the job without timeout to finish")
    assert rq_project.show(unlimited)["errors"] == []  # not taken for an overrun

    job = fetch(db, with_meta)
    assert job.return_value() == {"id": with_meta, "seen": {"from": "producer"}}
    assert job.meta == {"from": "producer", "seen_by": "job"}


def test_current_job_in_threads_and_async_jobs_and_progress_in_meta(rq_project, in_process, db):
    queue = Queue("together", connection=db, serializer=JSONSerializer)
    async_ids = [queue.enqueue("async_current_id", 0.3).id for _ in range(4)]
    threaded = [queue.enqueue("uses_meta", "n", str(n)).id for n in range(4)]
    progressing = queue.enqueue("progress_in_meta").id
    assert in_process(["together"], concurrency=4).drain() == 9  # queue.yml: together runs 4 at once

    for job_id in async_ids:
        assert fetch(db, job_id).get_status() == "finished"
        assert fetch(db, job_id).return_value() == job_id  # each saw itself, though they ran at once
    for n, job_id in enumerate(threaded):
        assert fetch(db, job_id).get_status() == "finished"
        assert fetch(db, job_id).meta == {"n": str(n)}
    assert fetch(db, progressing).get_status() == "finished"
    assert fetch(db, progressing).return_value() == {"progress": 40.0}
    assert records.job(db, progressing).progress == 40.0


def test_workers_whose_jobs_do_not_use_rq_never_import_it(project):
    job_id = project.enqueue("imported", "rq")
    project.run("work", "--burst", "--queue", "default")
    assert project.show(job_id)["result"] is False


def test_current_job_when_the_job_imports_rq_inside_its_body(project, db):
    # the first job imports rq while it runs; the second finds it imported already
    first, second = project.enqueue("rq_current_job"), project.enqueue("rq_current_job")
    project.run("work", "--burst", "--queue", "default")
    assert [project.show(job_id)["result"] for job_id in (first, second)] == [first, second]
    assert fetch(db, first).return_value() == first


def test_current_job_of_a_recurring_run_stored_by_an_earlier_version_is_none(db):
    # cron:<entry>:<due> ids, which RQ's Job refuses, may still be queued after an upgrade: the
    # job runs, without a current RQ job, instead of dying on RQ's "Job ID must only contain ..."
    current_id = rq_compat.with_current_job(lambda: get_current_job() and get_current_job().id, "cron:old:1", db)
    assert current_id() is None
    Queue("default", connection=db, serializer=JSONSerializer).enqueue("add", 1, job_id="cron-new-1")
    assert rq_compat.with_current_job(lambda: get_current_job().id, "cron-new-1", db)() == "cron-new-1"
    assert get_current_job() is None  # outside a job


def test_callbacks_run_when_registered_and_never_change_the_outcome(rq_project, queue, db, tmp_path):
    succeeded = queue.enqueue("add", 1, 2, on_success=Callback("rq_api_jobs.note_success")).id
    failed = queue.enqueue("refuses", on_failure=Callback("rq_api_jobs.note_failure")).id
    refused = queue.enqueue("add", 5, on_success=Callback("rq_api_jobs.not_registered")).id
    broken = queue.enqueue("add", 6, on_success=Callback("rq_api_jobs.broken_callback")).id
    log = tmp_path / "log"
    stopped = queue.enqueue(
        "ticking",
        str(log),
        60,
        on_stopped=Callback("rq_api_jobs.note_stopped"),
        on_failure=Callback("rq_api_jobs.note_failure"),
    ).id
    rq_project.start("work", "--queue", "default")

    wait_for(lambda: log.exists() and "started" in log.read_text(), message="the ticking job to start")
    send_stop_job_command(db, stopped, serializer=JSONSerializer)  # RQ's own way to stop a running job
    wait_for(lambda: state(db, stopped) == "canceled", message="the job to stop")
    assert log.read_text().endswith("finally\n")

    for job_id in (succeeded, failed, refused, broken):
        wait_for(lambda job_id=job_id: state(db, job_id) in ("finished", "dead"), message="the jobs to end")
    assert sorted(callbacks(db)) == sorted(
        [
            ["success", succeeded, 3],
            ["failure", failed, "PermanentError", "bad input, do not retry", True],
            ["stopped", stopped],  # on_failure is not called for a stopped job, as in RQ
        ]
    )
    shown = rq_project.show(refused)
    assert shown["state"] == "finished" and shown["result"] == 5
    assert "on_success callback 'rq_api_jobs.not_registered' refused" in shown["callback_error"]
    shown = rq_project.show(broken)
    assert shown["state"] == "finished" and shown["result"] == 6
    assert (
        shown["callback_error"]
        == "on_success callback 'rq_api_jobs.broken_callback' raised RuntimeError: a bug in the callback"
    )


def test_rq_suspend_and_resume(rq_project, queue, redis_url, tmp_path, db):
    rq_cli(redis_url, "suspend")
    rq_project.start("work", "--queue", "default")
    wait_for(
        lambda: len(reads.workers(db)) == 2,  # status's workers, read in this process
        message="the workers to register (they look for the suspension then)",
    )
    status = json.loads(rq_project.run("status", "--json").stdout)
    assert status["suspended"] is True
    assert "suspended: workers take no new job" in rq_project.run("status").stdout
    job_id = queue.enqueue("add", 1).id
    time.sleep(2)  # two of the workers' looks at the suspension: the job must wait all along
    assert rq_project.show(job_id)["state"] == "queued"

    rq_cli(redis_url, "resume")
    wait_for(lambda: state(db, job_id) == "finished", message="the job to run once resumed")
    assert json.loads(rq_project.run("status", "--json").stdout)["suspended"] is False


def test_a_job_enqueued_by_function_reference_runs_as_its_registered_job(rq_project, queue, db, tmp_path):
    marker = tmp_path / "marker"
    added = queue.enqueue(sample_jobs.add, 1, 2)
    running = queue.enqueue(sample_jobs.slow, str(marker), 60)
    assert (added.func_name, running.func_name) == ("sample_jobs.add", "sample_jobs.slow")
    rq_project.start("work", "--queue", "default")

    wait_for(lambda: fetch(db, added.id).get_status() == "finished", message="the job to run")
    assert fetch(db, added.id).return_value() == 3
    assert rq_project.show(added.id)["job"] == "add"
    wait_for(marker.exists, message="the slow job to start")
    status = json.loads(rq_project.run("status", "--json").stdout)
    assert [(job["id"], job["job"]) for job in status["running"]] == [(running.id, "slow")]
    assert rq_project.show(running.id)["job"] == "slow"

    def runs_of_add() -> int:  # read in this process, which has registered the project's jobs
        jobs = json.loads(rq_project.run_here("stats", "--job", "add", "--json").stdout)["jobs"]
        return next((job["runs"] for job in jobs if job["name"] == "add"), 0)

    wait_for(lambda: runs_of_add() == 1, message="the run to be counted under its job name")


def test_rq_requeue_gives_a_fresh_retry_budget(rq_project, in_process, queue, db, redis_url, tmp_path):
    # the queue allows 3 attempts; the job succeeds at its fifth
    plain = queue.enqueue("flaky", str(tmp_path / "plain"), 4).id
    own = queue.enqueue("flaky", str(tmp_path / "own"), 3, retry=Retry(max=1)).id  # 2 attempts a round
    worker = in_process(["default"])
    worker.drain(wait=60)
    assert [job.state for job in records.jobs(db, [plain, own])] == ["dead", "dead"]
    assert (records.job(db, plain).attempts, records.job(db, own).attempts) == (3, 2)

    rq_cli(redis_url, "requeue", "--queue", "default", "--all")
    worker.drain(wait=60)
    assert [job.state for job in records.jobs(db, [plain, own])] == ["finished", "finished"]
    assert (fetch(db, plain).return_value(), fetch(db, own).return_value()) == (5, 4)
    assert (records.job(db, plain).attempts, records.job(db, own).attempts) == (2, 2)
