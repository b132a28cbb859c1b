"""Events as a user wires them: handlers subscribed with @on in their own module, `jobctl emit`
fanning one event out to one job per handler, each with its own retries."""

import json

from jobctl.api import records

HANDLERS = """\
import json
from pathlib import Path

from jobctl import on


@on("user.signup")
def send_welcome(payload: dict) -> str:
    Path(payload["outbox"], "welcome.json").write_text(json.dumps(payload))
    return "welcomed"


@on("user.signup", queue="analytics", max_retries=0)
def track_signup(payload: dict) -> str:
    if payload.get("fail_tracking"):
        raise RuntimeError("tracking is down")
    Path(payload["outbox"], "tracked.json").write_text(json.dumps(payload))
    return "tracked"
"""


def with_handlers(project):
    project.write("signup_handlers.py", HANDLERS)
    project.env["JOBCTL_JOBS"] = "sample_jobs,signup_handlers"


def test_emit_fans_out_to_every_handler(project, db, tmp_path):
    with_handlers(project)
    payload = {"user_id": 42, "outbox": str(tmp_path)}
    emitted = project.run("emit", "user.signup", json.dumps(payload), "--json")
    assert emitted.returncode == 0, emitted.stderr
    jobs = json.loads(emitted.stdout)["jobs"]
    assert [(j["job"], j["queue"], j["state"]) for j in jobs] == [
        ("user.signup:send_welcome", "default", "queued"),
        ("user.signup:track_signup", "analytics", "queued"),
    ]
    assert project.run("work", "--burst").returncode == 0
    assert [view.result for view in records.jobs(db, [j["id"] for j in jobs])] == ["welcomed", "tracked"]
    assert json.loads((tmp_path / "welcome.json").read_text()) == payload
    assert json.loads((tmp_path / "tracked.json").read_text()) == payload


def test_each_handler_has_its_own_retries(project, db, tmp_path):
    with_handlers(project)
    emitted = project.run("emit", "user.signup", json.dumps({"outbox": str(tmp_path), "fail_tracking": True}))
    ids = emitted.stdout.split()
    assert emitted.returncode == 0 and len(ids) == 2
    project.run("work", "--burst")
    welcome, tracking = records.jobs(db, ids)
    assert (welcome.state, welcome.attempts) == ("finished", 1)
    assert (tracking.state, tracking.attempts) == ("dead", 1)  # max_retries=0: its own budget, no retry


def test_jobs_lists_the_subscriptions(project):
    with_handlers(project)
    listed = json.loads(project.run("jobs", "--json").stdout)
    events = {job["name"]: job["events"] for job in listed}
    assert events["user.signup:send_welcome"] == ["user.signup"]
    assert events["add"] == []
    table = project.run("jobs").stdout
    assert "Event subscriptions" in table and "user.signup:track_signup" in table


def test_an_event_without_handlers_is_an_error(project):
    with_handlers(project)
    typo = project.run("emit", "user.sigup", "{}")
    assert typo.returncode == 2
    assert typo.stderr.strip() == (
        "jobctl: error: no handler subscribes to event 'user.sigup' (events with handlers: user.signup)"
    )


def test_a_payload_that_is_not_json_is_refused(project, db):
    with_handlers(project)
    bad = project.run("emit", "user.signup", "{user_id: 42}")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "is not JSON" in bad.stderr
    assert list(db.scan_iter("rq:job:*")) == []


def test_emit_without_a_payload_sends_an_empty_object(project, db):
    with_handlers(project)
    ids = project.run("emit", "user.signup").stdout.split()
    assert [view.args for view in records.jobs(db, ids)] == [[{}], [{}]]
