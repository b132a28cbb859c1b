"""Jobs enqueued and run by jobctl are ordinary RQ jobs: RQ's own API and `rq info` read them."""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import QUEUE_YML, state, wait_for
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer


def test_rq_reads_jobctl_jobs(project, db):
    done = project.enqueue("add", "40", "-k", "b=2")
    dead = project.enqueue("refuses")
    later = project.enqueue("add", "1", "--in", "1h")
    waiting = project.enqueue("add", "5")

    queue = Queue("default", connection=db, serializer=JSONSerializer)
    assert queue.count == 4 - 1  # the scheduled one is not on the queue yet
    job = Job.fetch(waiting, connection=db, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.get_status()) == ("add", [5], "queued")

    project.run("work", "--burst")

    job = Job.fetch(done, connection=db, serializer=JSONSerializer)
    assert job.get_status() == "finished"
    assert (job.args, job.kwargs) == ([40], {"b": 2})
    assert job.return_value() == 42
    assert job.started_at and job.ended_at and job.origin == "default"
    assert done in FinishedJobRegistry("default", connection=db).get_job_ids()
    assert dead in FailedJobRegistry("default", connection=db).get_job_ids()
    dead_job = Job.fetch(dead, connection=db, serializer=JSONSerializer)
    assert dead_job.get_status() == "failed"
    assert "PermanentError: bad input, do not retry" in dead_job.latest_result().exc_string
    assert later in ScheduledJobRegistry("default", connection=db).get_job_ids()


def test_rq_info_sees_queues_and_workers(project, redis_url):
    project.enqueue("add", "1")
    project.start("work")

    def info():
        return subprocess.run(
            [sys.executable, "-m", "rq.cli", "info", "-u", redis_url, "-S", "rq.serializers.JSONSerializer"],
            capture_output=True,
            text=True,
        ).stdout

    output = wait_for(lambda: (out := info()) and "3 workers" in out and out, message="rq info to list the workers")
    assert "default" in output and "analytics" in output


def test_rq_readers_see_ip_address_no_dangling_current_job_and_dependency_ids(project, db):
    parent = project.enqueue("add", "1")
    child = project.enqueue("add", "2", "--depends-on", parent)
    project.start("work", "--queue", "default")
    wait_for(lambda: state(db, child) == "finished", message="parent and child to finish")

    # the hash fields RQ's Job reads its parents from, and RQ's set (rq:job::<id>:dependencies)
    fetched = Job.fetch(child, connection=db, serializer=JSONSerializer)
    assert [p.id for p in fetched.fetch_dependencies()] == [parent] and fetched.dependency.id == parent
    assert fetched.dependency_ids == [parent] and fetched.dependencies_are_met()
    # both workers registered (the first may finish both jobs before the second has started)
    workers = wait_for(lambda: len(found := Worker.all(connection=db)) == 2 and found, message="both workers")
    for worker in workers:
        assert worker.ip_address.startswith("127.0.0.1:")  # as Redis sees the worker's connection
    # idle: no current_job field (an empty one raises NoSuchJobError); the field is written by the
    # worker's tracking flush, up to a second after the job's own outcome (tracking.py)
    wait_for(
        lambda: all(worker.get_current_job() is None for worker in Worker.all(connection=db)),
        message="both workers to report no current job",
    )


def test_unserved_queue_is_shown_with_a_warning(project, db):
    Queue("reports", connection=db, serializer=JSONSerializer).enqueue("reports.build", 1)  # not in queue.yml
    status = project.run("status")
    assert "warning: 1 job(s) waiting on queue 'reports', which no worker serves" in " ".join(status.stdout.split())
    unserved = json.loads(project.run("status", "--json").stdout)["unserved"]
    assert [(q["name"], q["queued"]) for q in unserved] == [("reports", 1)]


def test_a_crash_dead_job_carries_its_reason_where_rq_shows_exceptions(project, db, tmp_path):
    project.write("queue.yml", QUEUE_YML.replace("shutdown_timeout: 10s", "shutdown_timeout: 10s\n  crash_limit: 1"))
    marker = tmp_path / "started"
    job_id = project.enqueue("slow", str(marker), "30")
    project.start("work", "--queue", "default")
    wait_for(marker.exists, message="the slow job to start")
    worker = project.show(job_id)["worker"]
    os.kill(int(worker.rsplit(".", 1)[1]), signal.SIGKILL)
    wait_for(lambda: state(db, job_id) == "dead", message="the job to be dead after one crash")
    # RQ's Job.exc_info (no failed result in the results stream: the job's exc_info field)
    with pytest.warns(DeprecationWarning):
        assert "signal 9" in Job.fetch(job_id, connection=db, serializer=JSONSerializer).exc_info
