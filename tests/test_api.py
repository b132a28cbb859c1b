"""The data API against a real Redis: known numbers of jobs in every state, read back through
api.overview / jobdetail.job_detail and through `status --json` / `show --json`, exactly."""

import json
import time

import pytest
import sample_jobs  # noqa: F401  (registers the sample jobs in this process, for enqueue)

from jobctl.api import reads as api
from jobctl.api.producer import enqueue
from jobctl.config.queues import load_queues
from jobctl.store import keys
from jobctl.store.transitions import Transitions


@pytest.fixture
def config(project):
    return load_queues(project.path / "queue.yml")


@pytest.fixture
def every_state(project, db, config):
    """default: 3 finished, 1 dead, 2 canceled (a child of the dead job and its own child),
    1 scheduled, 1 deferred (waiting on an analytics job); analytics: 2 queued, 1 started."""
    jobs = {"finished": [enqueue(db, config, "add", [i], {"b": 10}).id for i in range(3)]}
    jobs["dead"] = enqueue(db, config, "refuses").id
    jobs["child"] = enqueue(db, config, "add", [1], depends_on=[jobs["dead"]]).id
    jobs["grandchild"] = enqueue(db, config, "add", [2], depends_on=[jobs["child"]]).id
    jobs["scheduled"] = enqueue(db, config, "add", [3], run_at=time.time() + 3600).id
    jobs["started"] = enqueue(db, config, "add", [4], queue="analytics").id
    jobs["deferred"] = enqueue(db, config, "add", [5], depends_on=[jobs["started"]]).id
    jobs["queued"] = [enqueue(db, config, "add", [6], queue="analytics").id for _ in range(2)]
    burst = project.run("work", "--burst", "--queue", "default")
    assert burst.returncode == 0, burst.stderr
    # a worker of our own starts the oldest analytics job and holds it
    db.hset(keys.layout_of(db).worker("test-worker", "analytics"), "jobctl_lease", "token")
    assert Transitions(db).fetch("test-worker", "token", ["analytics"], time.time())[0][0].decode() == jobs["started"]
    return jobs


EXPECTED = {
    "default": {"queued": 0, "scheduled": 1, "deferred": 1, "started": 0, "finished": 3, "dead": 1, "canceled": 2},
    "analytics": {"queued": 2, "scheduled": 0, "deferred": 0, "started": 1, "finished": 0, "dead": 0, "canceled": 0},
}


def test_counts_in_every_state(db, config, every_state):
    view = api.overview(db, config)
    queues = {q.name: q for q in view.queues}
    for name, counts in EXPECTED.items():
        assert queues[name].counts == counts
    default, analytics = queues["default"], queues["analytics"]
    assert (default.totals.runs, default.totals.successes, default.totals.failures, default.totals.dead) == (4, 3, 1, 1)
    assert default.totals.error_rate == 0.25
    assert (default.processed_last_minute, default.failed_last_minute) == (4, 1)
    assert default.latency_seconds is None  # nothing queued
    assert 0 <= analytics.latency_seconds < 60  # the oldest queued job waits since the fixture ran
    assert analytics.totals.runs == 0 and analytics.totals.error_rate is None
    assert [(f["job"], f["id"], f["outcome"]) for f in view.failures] == [("refuses", every_state["dead"], "dead")]
    assert view.scheduler is None


def test_status_json_matches(project, every_state):
    status = json.loads(project.run("status", "--json").stdout)
    queues = {q["name"]: q for q in status["queues"]}
    for name, counts in EXPECTED.items():
        assert {state: queues[name][state] for state in counts} == counts
        assert queues[name]["workers"] == 0 and queues[name]["busy"] == 0
    assert queues["default"]["error_rate"] == 0.25
    assert queues["default"]["processed_last_minute"] == 4
    assert queues["analytics"]["latency_seconds"] >= 0
    assert status["workers"] == [] and status["running"] == []
    assert status["failures"][0]["job"] == "refuses"


def test_show_json_has_timings_and_the_failure_cascade(project, every_state):
    finished = json.loads(project.run("show", every_state["finished"][0], "--json").stdout)
    assert (finished["state"], finished["result"], finished["args"], finished["kwargs"]) == (
        "finished",
        10,
        [0],
        {"b": 10},
    )
    assert finished["attempts"] == 1 and finished["worker"]
    assert finished["waited_seconds"] >= 0 and finished["ran_seconds"] >= 0
    assert finished["ended_at"] >= finished["started_at"] >= finished["enqueued_at"]

    dead_id, child_id, grandchild_id = every_state["dead"], every_state["child"], every_state["grandchild"]
    dead = json.loads(project.run("show", dead_id, "--json").stdout)
    assert dead["state"] == "dead" and dead["reason"].startswith("permanent error")
    assert [e["error"] for e in dead["errors"]] == ["PermanentError: bad input, do not retry"]
    [child] = dead["children"]
    assert (child["id"], child["state"], child["reason"]) == (child_id, "canceled", f"parent {dead_id} is dead")
    assert child["canceled_by_parent"] is True
    [grandchild] = child["children"]
    assert (grandchild["id"], grandchild["reason"]) == (grandchild_id, f"parent {child_id} is canceled")

    below = json.loads(project.run("show", grandchild_id, "--json").stdout)
    assert [(p["id"], p["state"]) for p in below["parents"]] == [(child_id, "canceled")]
    assert below["children"] == []


def test_show_draws_the_dependency_tree(project, every_state):
    shown = project.run("show", every_state["dead"])
    assert shown.returncode == 0, shown.stderr
    assert "Dependencies" in shown.stdout and "children" in shown.stdout
    assert f"parent {every_state['dead']} is dead" in shown.stdout
    assert every_state["grandchild"] in shown.stdout


def test_scheduler_panel_reads_the_schedulers_keys_only_when_present(project, db):
    assert api.scheduler_status(db) is None
    now = time.time()
    db.hset(keys.SCHEDULER_NEXT_RUNS, mapping={"nightly": now + 3600, "often": now + 30})
    db.set(keys.SCHEDULER_HEARTBEAT, now)
    db.hset(keys.SCHEDULER_LAST_RUNS, "often", int(now) - 30)
    db.set(keys.scheduler_last("nightly"), int(now))  # seen by a scheduler, never run: no last run
    status = api.scheduler_status(db)
    assert [(e.entry, e.next_run, e.last_run) for e in status.entries] == [
        ("often", now + 30, int(now) - 30),
        ("nightly", now + 3600, None),
    ]
    assert status.heartbeat == now
    shown = project.run("status")
    assert "Scheduler" in shown.stdout and "nightly" in shown.stdout and "last pass" in shown.stdout


def test_a_worker_holds_what_its_in_flight_list_holds_not_its_last_current_job(db):
    """A jobctl worker writes RQ's current_job with its tracking, up to a second late: once its
    in-flight list is empty it is idle, though current_job still names its last job. An RQ
    worker has only current_job."""
    db.sadd(
        keys.WORKERS, keys.layout_of(db).worker("jobctl.1", "default"), keys.layout_of(db).worker("rq.1", "default")
    )
    db.hset(
        keys.layout_of(db).worker("jobctl.1", "default"),
        mapping={"jobctl_lease": "token", "current_job": "done-a-moment-ago"},
    )
    db.hset(keys.layout_of(db).worker("rq.1", "default"), mapping={"current_job": "running-under-rq"})
    workers = {worker.name: worker for worker in api.workers(db)}
    assert (workers["jobctl.1"].state, workers["jobctl.1"].jobs) == ("idle", [])
    db.rpush(keys.layout_of(db).active("jobctl.1", "default"), "running-now")
    assert next(w for w in api.workers(db) if w.name == "jobctl.1").jobs == ["running-now"]
    assert (workers["rq.1"].state, workers["rq.1"].jobs) == ("busy", ["running-under-rq"])
