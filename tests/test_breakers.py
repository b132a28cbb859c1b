"""Circuit breakers across real supervisors on one Redis: failures open one fleet-wide, its
jobs wait out the cool-down without spending an attempt, one trial closes it, and a trial whose
worker is killed -9 does not leave it half-open."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import TESTS, state, wait_for
from test_metrics import TOKEN, scrape, value

from jobctl.api import records
from jobctl.config.queues import load_queues
from jobctl.store import keys
from jobctl.web import metrics

QUEUE_YML = """\
defaults: {{retry_delay: 100ms, backoff: fixed, timeout: 60s, shutdown_timeout: 5s, crash_limit: 1}}
default: {{worker_count: 1, concurrency: {concurrency}}}
breakers:
  store: {{failures: {failures}, window: 60s, cooldown: {cooldown}, on: [ConnectionError]}}
"""
JOBS = {"JOBCTL_JOBS": "breaker_jobs"}


def setup(project, failures: int = 5, cooldown: str = "3s", concurrency: int = 1) -> tuple[Path, Path]:
    project.write("queue.yml", QUEUE_YML.format(failures=failures, cooldown=cooldown, concurrency=concurrency))
    shutil.copy(TESTS / "breaker_jobs.py", project.path / "breaker_jobs.py")
    mode, log = project.path / "mode", project.path / "calls.log"
    log.write_text("")
    return mode, log


def breaker(project, name: str = "store", here: bool = True) -> dict:
    """The breaker `name` as `jobctl status --json` shows it: run in this process (run_here:
    status imports no job module), or with here=False in a process of its own."""
    result = (project.run_here if here else project.run)("status", "--json", env=JOBS)
    assert result.returncode == 0, result.stderr
    (shown,) = [b for b in json.loads(result.stdout)["breakers"] if b["name"] == name]
    return shown


def calls(log: Path) -> list[tuple[str, float]]:
    return [(what, float(at)) for what, at in (line.split() for line in log.read_text().splitlines())]


def attempts(db, job_id: str) -> int:
    return records.job(db, job_id).to_dict()["attempts"]


def test_failures_open_it_fleet_wide_waiting_jobs_spend_no_attempt_and_a_trial_closes_it(project, db):
    mode, log = setup(project, cooldown="2s")  # outlasts what follows its opening, up to the waiting calls' enqueue
    mode.write_text("fail")
    failing = project.enqueue_many("store_call", [[str(mode), str(log)]] * 5, env=JOBS)
    project.start("work", env=JOBS)
    wait_for(lambda: all(state(db, i) == "dead" for i in failing), timeout=60, message="5 failed calls")
    opened = breaker(project)
    assert opened["state"] == "open" and opened["opens"] == 1
    # the store is back, but the breaker stays open for its cool-down, on every host
    mode.write_text("ok")
    project.start("work", env=JOBS)  # a second supervisor on the same Redis
    waiting = project.enqueue_many("store_call", [[str(mode), str(log)]] * 3, env=JOBS)
    wait_for(lambda: all(state(db, i) == "finished" for i in waiting), timeout=60, message="the waiting calls ran")
    starts = sorted(at for what, at in calls(log) if what == "start")[5:]
    assert min(starts) >= opened["open_until"]  # no job of the breaker started during the cool-down
    assert [attempts(db, i) for i in waiting] == [1, 1, 1]  # waiting spent no attempt
    # one trial (half-open) ran alone; its success closed the breaker, then the rest ran
    trial_end = min(at for what, at in calls(log) if what == "end")
    assert sorted(starts)[1] >= trial_end
    closed = breaker(project, here=False)
    assert closed["state"] == "closed" and closed["opens"] == 1


def test_a_trial_whose_worker_is_killed_does_not_leave_it_half_open(project, db):
    mode, log = setup(project, failures=1, cooldown="1s", concurrency=2)
    mode.write_text("fail")
    failed = project.enqueue("store_call", str(mode), str(log), env=JOBS)
    project.start("work", env=JOBS)
    wait_for(lambda: state(db, failed) == "dead", message="the failed call")
    assert breaker(project)["state"] == "open"
    mode.write_text("hang")
    marker = project.path / "trial.pid"
    trial = project.enqueue("store_call", str(mode), str(log), str(marker), env=JOBS)
    wait_for(marker.exists, timeout=30, message="the trial running")
    mode.write_text("ok")
    other = project.enqueue("store_call", str(mode), str(log), env=JOBS)
    # the worker has room for it, but the trial holds the breaker: it waits
    wait_for(lambda: state(db, other) == "scheduled", message="the other call held back")
    assert breaker(project)["state"] == "half_open" and breaker(project)["trial"] == trial
    os.kill(int(marker.read_text()), signal.SIGKILL)  # crash_limit 1: the trial is buried, not run again
    wait_for(lambda: state(db, trial) == "dead", message="the killed trial buried")
    wait_for(lambda: state(db, other) == "finished", timeout=60, message="the other call ran as the next trial")
    assert breaker(project, here=False)["state"] == "closed"


def test_a_block_opens_it_and_a_job_meeting_it_open_is_deferred_without_an_attempt(project, db):
    mode, log = setup(project, failures=2, cooldown="2s")
    mode.write_text("fail")
    failing = project.enqueue_many("store_block", [[str(mode), str(log)]] * 2, env=JOBS)
    project.start("work", env=JOBS)
    wait_for(lambda: all(state(db, i) == "dead" for i in failing), message="2 failed blocks")
    opened = breaker(project)
    assert opened["state"] == "open"
    server = metrics.serve(project.env["REDIS_URL"], load_queues(project.path / "queue.yml"), 0, token=TOKEN)
    try:
        samples = scrape(server.port)
    finally:
        server.shutdown()
    assert value(samples, "jobctl_breaker_state", breaker="store", state="open") == 1
    assert value(samples, "jobctl_breaker_state", breaker="store", state="closed") == 0
    assert value(samples, "jobctl_breaker_opens_total", breaker="store") == 1
    mode.write_text("ok")
    deferred = project.enqueue("store_block", str(mode), str(log), env=JOBS)
    wait_for(lambda: state(db, deferred) == "finished", timeout=60, message="the deferred job ran")
    assert attempts(db, deferred) == 1
    assert max(at for _, at in calls(log)) >= opened["open_until"]
    assert breaker(project, here=False)["state"] == "closed"


def test_a_job_naming_an_undeclared_breaker_is_one_line_and_exit_2(project):
    setup(project)
    project.write("queue.yml", "default: {}\nbreakers: {other: {}}\n")
    for command in (("work", "--burst"), ("enqueue", "store_call", "m", "l")):
        result = project.run(*command, env=JOBS)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip() == (
            "jobctl: error: queue.yml: job 'store_call' (breaker_jobs): key 'breaker': 'store' is not declared "
            "under 'breakers:' (declared: other)"
        )


def test_the_builtin_upload_waits_out_its_stores_breaker_without_an_attempt(project, db):
    """jobctl init's queue.yml declares `document_store`, which the built-in upload job calls its
    store behind: open, an upload is deferred to the end of the cool-down, its attempt unused."""
    shutil.copy(TESTS.parent / "src/jobctl/cli/init_templates/queue.yml", project.path / "queue.yml")
    until = time.time() + 300
    db.hset(
        keys.layout_of(db).breaker("document_store", "default"),
        mapping={"state": "open", "opened_at": time.time(), "open_until": until},
    )
    job_id = project.enqueue("upload", "example:docs/retry-policy.md")
    assert project.run("work", "--burst", "--queue", "default").returncode == 0
    assert state(db, job_id) == "scheduled" and attempts(db, job_id) == 0
    assert db.zscore(keys.layout_of(db).scheduled("default"), job_id) == pytest.approx(until)
    db.hset(keys.layout_of(db).breaker("document_store", "default"), "open_until", time.time())  # the cool-down is over
    db.zadd(keys.layout_of(db).scheduled("default"), {job_id: time.time()})
    assert project.run("work", "--burst", "--queue", "default").returncode == 0
    assert state(db, job_id) == "finished" and attempts(db, job_id) == 1
    assert (
        breaker(project, "document_store", here=False)["state"] == "closed"
    )  # the upload was the trial: it closed the breaker
