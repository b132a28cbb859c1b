"""`engine: rq` queues: RQ's own workers, started and supervised by `jobctl work`, running jobs
that RQ's own API enqueued (pickled, naming plain functions by import path)."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import QUEUE_YML, free_port, wait_for
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

# plain functions, no jobctl decorator: what an existing RQ app has
RQ_JOBS = '''\
import time
from pathlib import Path


def add(a, b):
    return a + b


def always_fails(path):
    with open(path, "a") as out:
        out.write("ran\\n")
    raise RuntimeError("legacy job failed")


def slow_once(path):
    """The first run writes 'started' and sleeps; later runs return at once."""
    runs = Path(path)
    before = runs.read_text() if runs.exists() else ""
    runs.write_text(before + "started\\n")
    if not before:
        time.sleep(60)
        runs.write_text(runs.read_text() + "first run finished\\n")
    return "done"
'''


@pytest.fixture
def legacy(project):
    project.write("queue.yml", QUEUE_YML + "legacy: {engine: rq, worker_count: 1, max_retries: 2}\n")
    project.write("rq_jobs.py", RQ_JOBS)
    return project


def test_pickled_jobs_run_on_rq_workers_with_the_queues_retries(legacy, db, tmp_path):
    queue = Queue("legacy", connection=db)  # RQ's default serializer: pickle
    adds = queue.enqueue("rq_jobs.add", 40, 2)
    failing = queue.enqueue("rq_jobs.always_fails", str(tmp_path / "fails"))
    legacy.start("work", "--queue", "legacy")

    wait_for(lambda: adds.get_status(refresh=True) == "finished", message="the pickled job to finish")
    assert Job.fetch(adds.id, connection=db).return_value() == 42

    # max_retries 2 from queue.yml, fixed 100ms backoff: three runs, then failed (RQ's dead set)
    wait_for(
        lambda: failing.id in FailedJobRegistry("legacy", connection=db).get_job_ids(),
        timeout=20,
        message="the failing job to be dead after its retries",
    )
    assert (tmp_path / "fails").read_text().count("ran") == 3
    assert Job.fetch(failing.id, connection=db).retries_left == 0

    shown = legacy.show(adds.id)  # the queue's engine is rq: its pickle may be decoded to show it
    assert (shown["job"], shown["args"], shown["state"], shown["result"]) == ("rq_jobs.add", [40, 2], "finished", 42)
    dead = legacy.show(failing.id)
    assert dead["state"] == "dead" and dead["attempts"] == 3
    assert "RuntimeError: legacy job failed" in dead["error"]

    # requeue-dead gives it the queue's retry budget afresh: three more runs
    assert legacy.run("requeue-dead", "--queue", "legacy").returncode == 0
    wait_for(
        lambda: (tmp_path / "fails").read_text().count("ran") == 6 and failing.get_status(refresh=True) == "failed",
        timeout=20,
        message="three more runs after requeue-dead",
    )

    status = json.loads(legacy.run("status", "--json").stdout)
    counts = {q["name"]: q for q in status["queues"]}["legacy"]
    assert (counts["finished"], counts["dead"], counts["workers"]) == (1, 1, 1)
    worker = next(w for w in status["workers"] if w["queues"] == ["legacy"])
    assert worker["name"] == f"{worker['host']}.{worker['pid']}"  # named as jobctl names its workers


def test_pickle_is_not_decoded_where_the_queue_is_not_rq_engine(legacy, db):
    job = Queue("default", connection=db).enqueue("rq_jobs.add", 1, 2)  # pickled, on a jobctl queue
    shown = legacy.show(job.id)
    assert (shown["job"], shown["args"]) == ("rq_jobs.add", [])
    assert "payload is pickle" in shown["unreadable"]


def test_a_killed_rq_worker_is_restarted_and_its_job_not_lost(legacy, db, tmp_path):
    runs = tmp_path / "runs"
    job = Queue("legacy", connection=db).enqueue("rq_jobs.slow_once", str(runs))
    legacy.start("work", "--queue", "legacy")
    wait_for(runs.exists, message="the slow job to start")
    victim = Job.fetch(job.id, connection=db).worker_name
    os.kill(int(victim.rsplit(".", 1)[1]), signal.SIGKILL)

    # given back at once (not after RQ's ~90 s), retried by a new worker, run to its end
    wait_for(
        lambda: job.get_status(refresh=True) == "finished", timeout=20, message="the job to finish after the crash"
    )
    assert runs.read_text() == "started\nstarted\n"  # the first run's work horse died with its worker
    assert Job.fetch(job.id, connection=db).worker_name != victim
    live = [key.decode() for key in db.smembers("rq:workers")]
    assert f"rq:worker:{victim}" not in live and len(live) == 1


def test_a_shared_pool_cannot_mix_engines(legacy):
    mixed = legacy.run("work", "--queue", "default", "--queue", "legacy")
    assert mixed.returncode == 2
    assert "must share their engine" in mixed.stderr and "Traceback" not in mixed.stderr


def test_rq_only_keys_on_a_jobctl_queue_are_refused(project):
    project.write("queue.yml", "default: {serializer: pickle}\n")
    result = project.run("status")
    assert result.returncode == 2
    assert "queue 'default': key 'serializer' applies only to 'engine: rq' queues" in result.stderr


def test_jobctl_enqueue_and_cancel_on_an_rq_engine_queue(legacy, db):
    # what the scheduler does too: a registered job, stored the way RQ's workers read it
    later = legacy.enqueue("add", "1", "--queue", "legacy", "--in", "1h")
    now = legacy.enqueue("add", "40", "-k", "b=2", "--queue", "legacy")
    assert Job.fetch(now, connection=db).func_name == "sample_jobs.add"
    legacy.start("work", "--queue", "legacy")
    wait_for(lambda: Job.fetch(now, connection=db).get_status() == "finished", message="the jobctl-enqueued job")
    assert Job.fetch(now, connection=db).return_value() == 42

    assert legacy.run("cancel", later).returncode == 0
    assert Job.fetch(later, connection=db).get_status() == "canceled"


def test_rq_workers_hold_a_jobctl_child_until_all_its_parents_finished(legacy, db):
    first = legacy.enqueue("add", "1", "--queue", "legacy")
    later = legacy.enqueue("add", "2", "--queue", "legacy", "--in", "1h")
    child = legacy.enqueue("add", "3", "--queue", "legacy", "--depends-on", first, "--depends-on", later)
    behind = legacy.enqueue("add", "4", "--queue", "legacy")  # one RQ worker: done after first's dependents
    legacy.start("work", "--queue", "legacy")
    wait_for(lambda: Job.fetch(behind, connection=db).get_status() == "finished", message="the jobs before it")
    assert Job.fetch(first, connection=db).get_status() == "finished"
    assert Job.fetch(child, connection=db).get_status() == "deferred"  # RQ read its other parent


@pytest.fixture
def dashboard(legacy, redis_url):
    """rq-dashboard 0.9.0, as an operator starts it against jobctl's Redis."""
    pytest.importorskip("rq_dashboard")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rq_dashboard",
            "--json",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--redis-url",
            redis_url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    legacy.started.append(process)  # stopped by PID with the test's other processes
    return f"http://127.0.0.1:{port}"


def get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None  # not listening yet


def test_rq_dashboard_workers_page_with_idle_and_busy_workers(legacy, db, dashboard, tmp_path):
    legacy.start("work", "--queue", "default", "--queue", "analytics")  # jobctl's workers, idle
    legacy.start("work", "--queue", "legacy")
    wait_for(lambda: len(db.smembers("rq:workers")) == 4, message="four workers registered")
    workers = f"{dashboard}/0/data/workers.json"
    wait_for(lambda: get_status(workers) == 200, timeout=20, message="rq-dashboard's workers endpoint to answer 200")

    runs = tmp_path / "runs"
    Queue("legacy", connection=db).enqueue("rq_jobs.slow_once", str(runs))
    wait_for(runs.exists, message="the legacy job to start")
    with urllib.request.urlopen(workers, timeout=5) as reply:
        listed = json.load(reply)["workers"]
    assert sorted(w["state"] for w in listed) == ["busy", "idle", "idle", "idle"]
