"""Jobs enqueued and run by jobctl are ordinary RQ jobs: RQ's own API and `rq info` read them."""

import subprocess
import sys

from conftest import wait_for
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer


def test_rq_reads_jobctl_jobs(project, db):
    done = project.run("enqueue", "add", "40", "-k", "b=2").stdout.strip()
    dead = project.run("enqueue", "refuses").stdout.strip()
    later = project.run("enqueue", "add", "1", "--in", "1h").stdout.strip()
    waiting = project.run("enqueue", "add", "5").stdout.strip()

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
    project.run("enqueue", "add", "1")
    project.start("work")

    def info():
        return subprocess.run(
            [sys.executable, "-m", "rq.cli", "info", "-u", redis_url, "-S", "rq.serializers.JSONSerializer"],
            capture_output=True, text=True,
        ).stdout

    output = wait_for(lambda: (out := info()) and "3 workers" in out and out, message="rq info to list the workers")
    assert "default" in output and "analytics" in output
