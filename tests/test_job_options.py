"""@job's options as a user sees them on a real Redis with the real worker code (in this process,
where only what happens to the job is asserted): backoff and retry_delay per job, unique (while
active, or for a duration), keep_dead=False, the hooks with retries, cron= entries, and
arguments checked against the job's signature on every way in."""

import json
import time

import pytest
from conftest import wait_for
from stored import new_job_fields, store_job

import jobctl
from jobctl.api import records
from jobctl.api.producer import enqueue
from jobctl.config.queues import load_queues
from jobctl.store import keys
from jobctl.store.transitions import Transitions


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- retries ------------------------------------------------------------------------------------


def test_a_backoff_callable_gets_the_attempt_and_the_exception(project, in_process, db):
    job_id = project.enqueue("backoff_probe")
    assert in_process().drain(wait=60) == 3
    assert records.job(db, job_id).state == "dead"
    assert records.job(db, job_id).attempts == 3
    assert lines(project.path / "backoff.log") == ["1 LookupError", "2 LookupError"]


def test_retry_delay_and_backoff_of_the_job_override_the_queue(project, in_process, db):
    # the queue retries after 100ms; the job says 30s
    job_id = project.enqueue("slow_retry")
    assert in_process().drain(wait=1) == 1  # its retry is not due within the queue's delay
    job = records.job(db, job_id)
    assert job.state == "scheduled"
    assert job.attempts == 1
    assert job.scheduled_for - time.time() > 20


# --- unique -------------------------------------------------------------------------------------


def test_unique_true_is_the_jobs_default_for_enqueue(project, in_process):
    first = project.enqueue("unique_default", "a")
    again = project.run("enqueue", "unique_default", "a")
    assert again.returncode == 1
    assert f"not enqueued: job {first} is already queued" in again.stderr
    project.enqueue("unique_default", "b")  # other arguments, another job
    assert in_process().drain() == 2
    project.enqueue("unique_default", "a")  # the first one ended: its claim is gone


def test_unique_for_a_duration_refuses_copies_after_the_job_ended(project, in_process, db):
    first = project.enqueue("unique_hour", "a")
    assert in_process().drain() == 1
    assert records.job(db, first).state == "finished"
    again = project.run("enqueue", "unique_hour", "a")
    assert again.returncode == 1
    assert f"not enqueued: job {first}, a copy, was enqueued less than 1h00m ago" in again.stderr
    project.enqueue("unique_hour", "b")


# --- keep_dead ----------------------------------------------------------------------------------


def test_keep_dead_false_deletes_the_job_after_its_last_attempt_and_runs_on_dead(project, in_process, tmp_path):
    log = tmp_path / "hooks.log"
    job_id = project.enqueue("discarded", str(log))
    assert in_process().drain(wait=60) == 2
    assert project.run("show", job_id).returncode != 0  # not kept
    status = json.loads(project.run("status", "--json").stdout)
    assert {q["name"]: q["dead"] for q in status["queues"]}["default"] == 0
    [dead] = lines(log)
    assert dead.startswith(f"dead 2 RuntimeError('discard me') {job_id} discarded default ")


# --- hooks --------------------------------------------------------------------------------------


def test_hooks_with_retries_that_end_in_success(project, in_process, db, tmp_path):
    log = tmp_path / "hooks.log"
    before = time.time()
    job_id = project.enqueue("hooked", str(tmp_path / "counter"), "2", str(log))
    assert in_process().drain(wait=60) == 3
    assert records.job(db, job_id).state == "finished"
    calls = [line.split(" ", 3)[:3] for line in lines(log)]
    assert calls == [
        ["failure", "1", "RuntimeError('flaky"],
        ["failure", "2", "RuntimeError('flaky"],
        ["success", "3", "3"],
    ]
    # the job as hooks see it: id, name, queue, when it was enqueued
    *_, job_id_seen, name, queue, enqueued_at = lines(log)[-1].split(" ")
    assert (job_id_seen, name, queue) == (job_id, "hooked", "default")
    assert before - 1 < float(enqueued_at) < time.time()


def test_on_failure_each_attempt_and_on_dead_once(project, in_process, db, tmp_path):
    log = tmp_path / "hooks.log"
    job_id = project.enqueue("hooked", str(tmp_path / "counter"), "10", str(log))
    assert in_process().drain(wait=60) == 3
    assert records.job(db, job_id).state == "dead"
    assert [line.split(" ")[:2] for line in lines(log)] == [
        ["failure", "1"],
        ["failure", "2"],
        ["failure", "3"],
        ["dead", "3"],
    ]


def test_a_hooks_own_error_is_logged_with_the_job_id_and_changes_nothing(project):
    fine = project.enqueue("badly_hooked", "false")
    failing = project.enqueue("badly_hooked", "true")
    run = project.run("work", "--burst")
    assert run.returncode == 0
    assert project.show(fine)["state"] == "finished"
    assert project.show(failing)["state"] == "dead"
    assert project.show(failing)["attempts"] == 1
    for job_id in (fine, failing):
        assert f"job {job_id} (badly_hooked): JobHooks.after_attempt raised; the job's outcome stands" in run.stderr
    assert f"job {failing} (badly_hooked): JobHooks.on_dead raised" in run.stderr
    assert "the hook itself is broken" in run.stderr


# --- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, problem",
    [
        (["1", "2", "3"], "takes 2 positional arguments but 3 were given (extra: 3)"),
        ([], "missing a required argument: 'a'"),
        (["1", "-k", "c=2"], "got an unexpected keyword argument 'c'"),
    ],
)
def test_enqueue_refuses_arguments_that_do_not_fit(project, db, arguments, problem):
    result = project.run("enqueue", "add", *arguments)
    assert result.returncode == 2
    assert result.stderr.strip() == f"jobctl: error: job 'add': {problem}; signature: add(a: int, b: int = 0) -> int"
    assert db.llen(keys.layout_of(db).queue("default")) == 0


def test_builtin_jobs_are_checked_too(project):
    # the case: "--in 5 minutes" read as `--in 5` and an argument "minutes"
    result = project.run("enqueue", "analytics", "UC5g", "--in", "5", "minutes")
    assert result.returncode == 2
    assert (
        "job 'analytics': takes 1 positional argument but 2 were given (extra: \"minutes\"); "
        "signature: analytics(channel_id: str) -> dict" in result.stderr
    )


def test_enqueue_from_names_the_line_and_stores_nothing(project, db, tmp_path):
    source = tmp_path / "calls.jsonl"
    source.write_text('{"args": [1, 2]}\n{"args": [1], "kwargs": {"x": 1}}\n')
    result = project.run("enqueue", "add", "--from", str(source))
    assert result.returncode == 2
    assert f"--from {source}: line 2: job 'add': got an unexpected keyword argument 'x'" in result.stderr
    assert db.llen(keys.layout_of(db).queue("default")) == 0


def test_the_python_api_raises_type_error(project, db):
    @jobctl.job("api_checked")
    def api_checked(a: int) -> int:
        return a

    with pytest.raises(TypeError, match="job 'api_checked': missing a required argument: 'a'"):
        enqueue(db, load_queues(project.path / "queue.yml"), "api_checked", [], {})
    assert db.llen(keys.layout_of(db).queue("default")) == 0


EMIT_HANDLERS = """\
from jobctl import on

@on("order.paid")
def receipt(payload: dict) -> str:
    return "sent"

@on("order.paid")
def ledger(payload: dict, account: str) -> str:
    return account
"""


def test_emit_refuses_before_enqueueing_any_handler(project, db):
    project.write("order_handlers.py", EMIT_HANDLERS)
    result = project.run("emit", "order.paid", '{"id": 1}', env={"JOBCTL_JOBS": "order_handlers"})
    assert result.returncode == 2
    assert "job 'order.paid:ledger': missing a required argument: 'account'" in result.stderr
    assert db.llen(keys.layout_of(db).queue("default")) == 0


def test_scheduler_list_refuses_an_entry_whose_args_do_not_fit(project):
    project.write("recurring.yml", "sums:\n  job: add\n  args: [1, 2, 3]\n  schedule: every 1 minute\n")
    result = project.run("scheduler", "--list")
    assert result.returncode == 2
    assert (
        "recurring.yml: entry 'sums': keys 'args'/'kwargs': job 'add': takes 2 positional arguments but 3 "
        "were given (extra: 3)" in result.stderr
    )


def test_stored_arguments_that_no_longer_fit_are_dead_at_once(project, in_process, db):
    # enqueued before the job's signature changed: written as an older producer would have
    fields = new_job_fields(
        "add",
        [1, 2, 3],
        {},
        "default",
        now=time.time(),
        timeout=30,
        result_ttl=60,
        failure_ttl=600,
        max_retries=2,
        crash_limit=3,
    )
    store_job(Transitions(db), "old-add", "default", fields, now=time.time())
    inside = project.enqueue("type_error_inside")
    assert in_process().drain(wait=60) == 3
    old = records.job(db, "old-add")
    assert (old.state, old.attempts) == ("dead", 1)
    assert old.reason.startswith("permanent error: PermanentError: job 'add': takes 2 positional arguments")
    # a TypeError raised by the job's own code is an ordinary failure, retried
    assert records.job(db, inside).attempts == 2


# --- cron= --------------------------------------------------------------------------------------

CRON_JOBS = """\
import time
from pathlib import Path

from jobctl import job

@job("tick", cron="every 1 second")
def tick() -> float:
    with open(Path("ticks.log").resolve(), "a") as out:
        out.write(f"{time.time()}\\n")
    return time.time()
"""


def test_a_cron_job_is_a_recurring_entry_run_once_per_due_time(project, db):
    project.write("cron_jobs.py", CRON_JOBS)
    env = {"JOBCTL_JOBS": "cron_jobs"}
    listed = project.run("scheduler", "--list", "--json", env=env)  # no recurring.yml needed
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["job"], entry["schedule"], entry["queue"]) == (
        "tick",
        "tick",
        "every 1 second",
        "default",
    )
    project.start("scheduler", env=env)
    project.start("scheduler", env=env)  # a second scheduler adds no run
    project.start("work", env=env)
    ticks = project.path / "ticks.log"
    wait_for(lambda: len(lines(ticks)) >= 3, message="three ticks")
    prefix = keys.layout_of(db).job("", "default")
    runs = [
        key for key in map(bytes.decode, db.scan_iter(f"{prefix}cron-tick-*")) if ":" not in key.removeprefix(prefix)
    ]
    dues = [int(run.rsplit("-", 1)[1]) for run in runs]
    assert len(dues) == len(set(dues))


def test_a_cron_job_clashing_with_a_recurring_entry_is_an_error(project):
    project.write("cron_jobs.py", CRON_JOBS)
    project.write("recurring.yml", "tick:\n  job: add\n  args: [1]\n  schedule: every 1 minute\n")
    result = project.run("scheduler", "--list", env={"JOBCTL_JOBS": "sample_jobs,cron_jobs"})
    assert result.returncode == 2
    assert "recurring.yml: entry 'tick': the job 'tick' declares a schedule of its own" in result.stderr


def test_a_cron_job_must_take_no_arguments(project):
    project.write("cron_jobs.py", CRON_JOBS.replace("def tick()", "def tick(x)"))
    result = project.run("jobs", env={"JOBCTL_JOBS": "cron_jobs"})
    assert result.returncode == 2
    assert "job 'tick': missing a required argument: 'x'" in result.stderr
    assert "a job with cron= runs without arguments" in result.stderr


# --- bad options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rate_limit": "fast"}, "job 'bad': rate_limit: expected a rate like 10/s, 600/m or 1000/h, got 'fast'"),
        ({"max_concurrency": 0}, "job 'bad': max_concurrency: expected a whole number >= 1, got 0"),
        ({"unique": "soon"}, "job 'bad': unique: expected a duration"),
        ({"backoff": "random"}, "job 'bad': backoff: expected exponential, linear, fixed or a list of durations"),
        ({"keep_dead": "no"}, "job 'bad': keep_dead: expected True or False"),
        ({"on_dead": "print"}, "job 'bad': on_dead: expected a function"),
        ({"cron": "61 * * * *"}, "job 'bad': cron:"),
        ({"cron": "every 1 minute", "catch_up": "all"}, "job 'bad': catch_up: expected latest or none"),
    ],
)
def test_bad_options_are_refused_at_import(options, message):
    with pytest.raises(ValueError) as error:
        jobctl.job("bad", **options)
    assert message in str(error.value)
