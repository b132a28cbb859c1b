"""Job ids as operators type them: unique prefixes everywhere an id is taken, ids that cannot
name jobctl's own keys, and `enqueue --wait` that never loses the id."""

from __future__ import annotations

import json
import signal

from conftest import wait_for

from jobctl.store import keys


def error_of(result, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_command_taking_a_job_id_takes_a_unique_prefix(project, db):
    parent = project.enqueue("add", "1")
    prefix = parent[:8]  # as the tables print it
    assert project.show(prefix)["id"] == parent
    child = project.enqueue("add", "2", "--depends-on", prefix)
    assert project.show(child)["depends_on"] == [parent]
    dead = project.enqueue("refuses")
    assert project.run("work", "--burst").returncode == 0
    assert project.run("logs", prefix).returncode == 0
    requeued = project.run_here("requeue-dead", "--job-id", dead[:6], "--json")
    assert json.loads(requeued.stdout)["requeued"][0]["id"] == dead
    canceled = json.loads(project.run_here("cancel", dead[:7], "--json").stdout)
    assert canceled[0]["job_id"] == dead and canceled[0]["canceled"]


def test_an_ambiguous_or_short_prefix_is_refused(project):
    for suffix in ("one", "two"):
        project.enqueue("add", "1", "--job-id", f"nightly-{suffix}")
    line = error_of(project.run("show", "nightly"))
    assert line == "jobctl: error: job id prefix 'nightly' is ambiguous: it matches nightly-one, nightly-two"
    assert "needs at least 6 characters" in error_of(project.run("show", "night"))
    assert project.show("nightly-o")["id"] == "nightly-one"


def test_job_ids_cannot_name_other_keys_and_are_printed_as_given(project, db):
    parent = project.enqueue("add", "1", "--job-id", "p")
    # the first refusal by a real `jobctl`; the others in this process where it enqueues as one does
    here = project.run_here if project.enqueues_alike_here("add", (), None) else project.run
    for number, bad in enumerate(("p:dependents", "a[b]?*", "x" * 129, "with space")):
        line = error_of((here if number else project.run)("enqueue", "add", "1", "--job-id", bad))
        assert line.startswith("jobctl: error: --job-id") and "letters, digits" in line
    assert error_of(here("enqueue", "add", "1", "--depends-on", "p:dependents")) == (
        "jobctl: error: --depends-on: no job with id 'p:dependents'"
    )
    assert (
        list(db.scan_iter(f"{keys.layout_of(db).job('p', 'default')}:*")) == []
        and project.show(parent)["state"] == "queued"
    )
    marked = project.enqueue("echo_kwargs", "[bold]x[/bold]", "--job-id", "a.b_c-[d]".replace("[d]", "d"))
    shown = project.run_here("show", marked)
    assert '"[bold]x[/bold]"' in shown.stdout and "a.b_c-d" in shown.stdout


def test_recurring_ids_still_pass(project, db):
    project.write("recurring.yml", "often:\n  job: add\n  args: [1]\n  schedule: every 1 seconds\n")
    project.start("scheduler")
    prefix = keys.layout_of(db).job("", "default")
    wait_for(lambda: list(db.scan_iter(f"{prefix}cron-often-*")), message="a recurring run")
    job_id = min(k.decode().removeprefix(prefix) for k in db.scan_iter(f"{prefix}cron-often-*"))
    job_id = job_id.split(":", 1)[0]  # a run's own key, not one of its sub-keys
    assert project.show(job_id)["id"] == job_id
    # the scheduler's own: an operator taking a future run's id would make the scheduler skip it
    future = f"cron-often-{int(job_id.rsplit('-', 1)[1]) + 3600}"
    refused = project.run("enqueue", "add", "1", "--job-id", future)
    assert error_of(refused) == f"jobctl: error: --job-id {future!r}: cron-<entry>-<due> ids are the scheduler's own"


def test_wait_prints_the_id_first_and_ctrl_c_says_how_to_follow(project):
    waiting = project.start("enqueue", "add", "1", "--in", "1h", "--wait")
    job_id = waiting.stdout.readline().strip()
    assert project.show(job_id)["state"] == "scheduled"
    waiting.send_signal(signal.SIGINT)
    assert waiting.wait(timeout=15) == 130
    stderr = waiting.stderr.read()
    assert f"stopped following {job_id}; the job goes on" in stderr and f"jobctl logs {job_id} --follow" in stderr
    assert project.show(job_id)["state"] == "scheduled"


def test_ctrl_c_the_moment_the_id_is_shown_still_says_how_to_follow(project):
    # a Ctrl-C as soon as the id appears, while the progress bar is still being set up: it once
    # escaped as a KeyboardInterrupt through Rich and left the command hung or killed by SIGINT
    for _ in range(3):
        waiting = project.start("enqueue", "add", "1", "--in", "1h", "--wait")
        job_id = waiting.stdout.readline().strip()
        waiting.send_signal(signal.SIGINT)
        assert waiting.wait(timeout=15) == 130
        assert f"stopped following {job_id}; the job goes on" in waiting.stderr.read()
