"""Job flow from the command line: dependency chains (waiting, failure cascade, --allow-failure,
a requeued parent releasing its dependents) and unique jobs across their states, the jobs run by
the real worker code in this process. The basic cases (one parent, one duplicate) are in
test_work.py, with worker processes."""

import json
import threading

import pytest
from conftest import wait_for
from rq import Queue
from rq.job import Dependency, Job
from rq.serializers import JSONSerializer

from jobctl.api import records


def background(worker) -> threading.Thread:
    """worker.drain() in a thread of this process, while the test looks at the running jobs."""
    thread = threading.Thread(target=worker.drain, daemon=True)  # daemon: a failed test does not hang pytest
    thread.start()
    return thread


def states(db, *job_ids) -> list[str]:
    """The jobs' states as `show` reports them, read in-process (a `show` subprocess per job is slow)."""
    return [view.state for view in records.jobs(db, list(job_ids))]


def test_dead_parent_cancels_the_chain_below_it(project, in_process, db):
    parent = project.enqueue("refuses")
    child = project.enqueue("add", "1", "--depends-on", parent)
    grandchild = project.enqueue("add", "2", "--depends-on", child)
    assert states(db, child, grandchild) == ["deferred", "deferred"]

    assert in_process().drain(wait=60) == 1
    assert states(db, parent) == ["dead"]
    child_view, grandchild_view = records.job(db, child), records.job(db, grandchild)
    assert (child_view.state, child_view.reason) == ("canceled", f"parent {parent} is dead")
    assert (grandchild_view.state, grandchild_view.reason) == ("canceled", f"parent {child} is canceled")


def test_allow_failure_dependent_runs_after_a_dead_parent(project, in_process, db, tmp_path):
    log = tmp_path / "ran.txt"
    parent = project.enqueue("refuses")
    tolerant = project.enqueue("record", str(log), "cleanup", "--depends-on", parent, "--allow-failure")
    strict = project.enqueue("record", str(log), "report", "--depends-on", parent)
    in_process().drain(wait=60)
    assert states(db, tolerant, strict) == ["finished", "canceled"]
    assert log.read_text().split() == ["cleanup"]


def test_requeued_parent_that_finishes_releases_its_chain(project, in_process, db, tmp_path):
    log = tmp_path / "ran.txt"
    parent = project.enqueue("flaky", str(tmp_path / "count"), "3")  # three failures, two retries: dead
    child = project.enqueue("record", str(log), "child", "--depends-on", parent)
    grandchild = project.enqueue("record", str(log), "grandchild", "--depends-on", child)
    worker = in_process()
    worker.drain(wait=60)
    assert states(db, parent, child, grandchild) == ["dead", "canceled", "canceled"]

    requeued = project.run("requeue-dead", "--job-id", parent, "--json")
    assert [j["id"] for j in json.loads(requeued.stdout)["requeued"]] == [parent]
    waiting = records.jobs(db, [child, grandchild])
    assert [(j.state, j.reason) for j in waiting] == [("deferred", None), ("deferred", None)]

    worker.drain(wait=60)
    assert states(db, parent, child, grandchild) == ["finished"] * 3
    assert log.read_text().split() == ["child", "grandchild"]


def test_several_parents_and_show_lists_both_directions(project, in_process, db, tmp_path):
    log = tmp_path / "ran.txt"
    gate = tmp_path / "gate"
    first = project.enqueue("gated", str(tmp_path / "started"), str(gate))
    second = project.enqueue("record", str(log), "second")
    child = project.enqueue("record", str(log), "child", "--depends-on", first, "--depends-on", second)

    assert sorted(project.show(child)["depends_on"]) == sorted([first, second])
    assert project.show(first)["dependents"] == [child]
    working = background(in_process(concurrency=2))
    wait_for(lambda: states(db, second) == ["finished"], message="the second parent")
    assert states(db, first) == ["started"]
    assert states(db, child) == ["deferred"]  # one parent is not enough
    gate.touch()
    working.join(timeout=60)
    assert states(db, child) == ["finished"]
    assert records.job(db, child).started_at >= records.job(db, first).ended_at
    assert log.read_text().split() == ["second", "child"]


def test_unknown_parent_is_refused(project):
    refused = project.run("enqueue", "add", "1", "--depends-on", "no-such-job")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "jobctl: error: --depends-on: no job with id 'no-such-job'"


# --- unique jobs ----------------------------------------------------------------------------------


def test_unique_refused_while_scheduled(project):
    first = project.enqueue("add", "5", "--unique", "--in", "1h")
    again = project.run("enqueue", "add", "5", "--unique")
    assert again.returncode == 1
    assert " ".join(again.stderr.split()) == f"jobctl: not enqueued: job {first} is already scheduled"
    as_json = project.run_here("enqueue", "add", "5", "--unique", "--json")  # the same command, in this process
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == {
        "id": first,
        "state": "scheduled",
        "duplicate": True,
    }


def test_unique_refused_while_running_and_allowed_once_finished(project, in_process, db, tmp_path):
    marker, gate = tmp_path / "started", tmp_path / "gate"
    first = project.enqueue("gated", str(marker), str(gate), "--unique")  # runs until the gate opens
    working = background(in_process())
    wait_for(marker.exists, message="the job to start")
    running = project.run("enqueue", "gated", str(marker), str(gate), "--unique")
    assert running.returncode == 1 and f"job {first} is already started" in " ".join(running.stderr.split())

    gate.touch()
    working.join(timeout=60)
    assert states(db, first) == ["finished"]
    second = project.enqueue("gated", str(marker), str(gate), "--unique")
    assert second != first


def test_unique_by_job_id(project):
    project.enqueue("add", "1", "--job-id", "report-2025-06", "--unique")
    other_args = project.run("enqueue", "add", "2", "--job-id", "report-2025-06", "--unique")
    assert other_args.returncode == 1 and "report-2025-06 is already queued" in " ".join(other_args.stderr.split())


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
def test_dependencies_written_by_rq_are_honoured_and_jobctls_are_read_by_rq(project, in_process, db, tmp_path):
    log = tmp_path / "ran.txt"
    queue = Queue("default", connection=db, serializer=JSONSerializer)  # RQ's own API
    good, bad = queue.enqueue("add", 1, 2), queue.enqueue("refuses")
    after_good = queue.enqueue("record", str(log), "after-good", depends_on=good)
    after_bad = queue.enqueue("record", str(log), "after-bad", depends_on=bad)
    tolerant = queue.enqueue("record", str(log), "tolerant", depends_on=Dependency(jobs=[bad], allow_failure=True))
    # a jobctl parent with a jobctl child (which marks it) and an RQ child: settled alike
    shared = project.enqueue("refuses")
    jobctl_child = project.enqueue("add", "1", "--depends-on", shared)
    rq_child = queue.enqueue("record", str(log), "rq-child", depends_on=shared)
    # both parents of a jobctl child, as RQ reads them (Job.dependency_ids reads RQ's own set)
    both = project.enqueue("add", "2", "--depends-on", good.id, "--depends-on", jobctl_child)
    fetched = Job.fetch(both, connection=db, serializer=JSONSerializer)
    assert sorted(fetched.dependency_ids) == sorted([good.id, jobctl_child])
    assert not fetched.dependencies_are_met()
    assert project.show(after_good.id)["depends_on"] == [good.id]

    worker = in_process()
    worker.drain(wait=60)
    assert states(db, after_good.id, after_bad.id, tolerant.id, rq_child.id, both) == [
        *("finished", "canceled", "finished", "canceled", "canceled")
    ]
    assert sorted(log.read_text().split()) == ["after-good", "tolerant"]
    assert project.show(after_bad.id)["reason"] == f"parent {bad.id} is dead"
    assert Job.fetch(after_bad.id, connection=db, serializer=JSONSerializer).get_status() == "canceled"

    # a child RQ stores after its parent died is settled too (its parent no longer runs a script)
    late = queue.enqueue("record", str(log), "late", depends_on=bad)
    late_tolerant = queue.enqueue("record", str(log), "late-tolerant", depends_on=Dependency([bad], allow_failure=True))
    worker.drain(wait=60)
    assert states(db, late.id, late_tolerant.id) == ["canceled", "finished"]


@pytest.mark.plain_only("records of an earlier jobctl, which never ran on a Redis Cluster, in RQ's key names")
def test_a_child_deferred_by_an_earlier_version_still_waits_for_its_parents(project, in_process, db):
    # an earlier jobctl kept a job's parents at rq:job:<id>:dependencies (one colon) and its
    # allow-failure flag in a field of its own
    ran, waiting = project.enqueue("add", "1"), project.enqueue("add", "2", "--in", "1h")
    child = project.enqueue("add", "3", "--depends-on", ran, "--depends-on", waiting)
    db.rename(f"rq:job::{child}:dependencies", f"rq:job:{child}:dependencies")
    db.hdel(f"rq:job:{child}", "allow_dependency_failures")
    db.hset(f"rq:job:{child}", "jobctl_allow_failure", 0)
    in_process().drain(wait=60)
    assert states(db, ran, waiting, child) == ["finished", "scheduled", "deferred"]
    assert project.show(child)["depends_on"] == sorted([ran, waiting])
