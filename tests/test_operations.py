"""The operator's commands as a user runs them: health, config, pause/resume, cancel, purge,
shell completion, --quiet."""

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import state, wait_for

from jobctl.store import keys

JOBCTL = Path(sys.executable).parent / "jobctl"


def one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("command", ["health", "config", "pause", "resume", "cancel", "purge"])
def test_every_new_command_has_help_with_an_example(project, command):
    result = project.run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example: jobctl" in result.stdout


# --- health -----------------------------------------------------------------------------------


def test_health_without_workers_is_unhealthy(project):
    result = project.run("health")
    assert "no worker of host" in one_line_error(result, code=1)
    assert project.run("health", "--redis-only").returncode == 0


def test_health_with_workers_running_is_healthy(project, db):
    project.start("work")
    wait_for(lambda: db.scard(keys.WORKERS) == 3, message="three workers registered")
    result = project.run("health")
    assert result.returncode == 0, result.stderr
    assert "3 worker(s) of host" in result.stdout
    verdict = json.loads(project.run_here("health", "--json").stdout)
    assert verdict["healthy"] is True and verdict["workers"] == 3
    assert verdict["newest_heartbeat_age"] < 30
    supervisor = json.loads(project.run_here("status", "--json").stdout)["workers"][0]["supervisor"]
    assert project.run_here("health", "--name", supervisor).returncode == 0
    assert "supervisor 'someone-else'" in one_line_error(project.run_here("health", "--name", "someone-else"), code=1)


def test_health_when_redis_is_unreachable_names_host_not_password(project):
    result = project.run("--redis-url", "redis://:hunter2@127.0.0.1:1/0", "health")
    error = one_line_error(result, code=1)
    assert "cannot reach Redis at 127.0.0.1:1" in error and "hunter2" not in error


# --- config -----------------------------------------------------------------------------------


def test_config_shows_each_value_and_where_it_came_from(project, redis_url):
    password_url = redis_url.replace("redis://", "redis://:hunter2@")
    project.write("other.yml", "defaults: {timeout: 5m}\ndefault: {worker_count: 4}\n")
    result = project.run("--config", "other.yml", "config", "--json", env={"REDIS_URL": password_url})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    config = json.loads(result.stdout)
    assert config["redis_url"] == {"value": password_url.replace("hunter2", "***"), "source": "env REDIS_URL"}
    assert config["config"] == {"value": str(project.path / "other.yml"), "source": "flag --config"}
    assert config["jobs"] == {"value": "sample_jobs", "source": "env JOBCTL_JOBS"}
    assert config["recurring"]["source"] == "default" and config["recurring"]["exists"] is False
    (queue,) = config["queues"]
    settings = queue["settings"]
    assert settings["worker_count"] == {"value": 4, "text": "4", "source": "file other.yml: queue 'default'"}
    assert settings["timeout"] == {"value": 300.0, "text": "5m", "source": "file other.yml: defaults"}
    assert settings["max_retries"] == {"value": 3, "text": "3", "source": "default"}
    assert settings["failure_ttl"]["text"] == "30d" and settings["jitter"]["text"] == "off"

    table = project.run("config", env={"REDIS_URL": password_url})
    assert table.returncode == 0 and "hunter2" not in table.stdout
    assert "env REDIS_URL" in table.stdout and "file queue.yml: queue 'analytics'" in table.stdout


def test_config_reports_a_bad_queue_file_in_one_line(project):
    project.write("queue.yml", "default: {worker_count: -1}\n")
    assert "worker_count" in one_line_error(project.run("config"))


# --- pause / resume -----------------------------------------------------------------------------


def test_a_paused_queue_is_not_fetched_until_resumed(project, db):
    assert project.run("pause", "default").stdout.strip() == ""  # notes go to stderr
    assert db.sismember(keys.PAUSED, "default")
    job_id = project.enqueue("add", "1", "2")
    project.start("work")
    wait_for(lambda: db.scard(keys.WORKERS) == 3, message="workers registered")
    time.sleep(1.5)  # workers are running and polling: a paused queue must not be served
    assert project.show(job_id)["state"] == "queued"
    status = json.loads(project.run_here("status", "--json").stdout)
    assert {q["name"]: q["paused"] for q in status["queues"]} == {"default": True, "analytics": False}

    resumed = project.run("resume", "default")
    assert resumed.returncode == 0 and "resumed default" in resumed.stderr
    wait_for(lambda: state(db, job_id) == "finished", message="the job to run after resume")
    assert "default was not paused" in project.run_here("resume", "default").stderr


def test_pausing_takes_effect_for_workers_already_waiting_on_the_queue(project, db):
    project.start("work")
    wait_for(lambda: db.scard(keys.WORKERS) == 3, message="workers registered")
    time.sleep(0.5)  # idle, blocked in their fetch on the queue
    assert project.run_here("pause", "default").returncode == 0
    job_id = project.enqueue("add", "1", "2")
    time.sleep(1.5)
    assert project.show(job_id)["state"] == "queued"
    assert db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [job_id.encode()]  # given back, not held
    assert project.run("resume", "default").returncode == 0
    wait_for(lambda: state(db, job_id) == "finished", message="the job to run after resume")


def test_pause_refuses_an_unconfigured_queue(project, db):
    error = one_line_error(project.run("pause", "nope"))
    assert "pause: queue 'nope' is not configured" in error
    assert not db.exists(keys.PAUSED)


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_a_scheduled_job_and_its_dependents(project, db):
    parent = project.enqueue("add", "1", "--in", "1h")
    child = project.enqueue("add", "2", "--depends-on", parent)
    grandchild = project.enqueue("add", "3", "--depends-on", child)

    result = project.run("cancel", parent)
    assert result.returncode == 0, result.stderr
    assert f"canceled {parent} (was scheduled); canceled with it: {child}, {grandchild}" in result.stdout
    assert project.show(parent)["state"] == "canceled"
    assert project.show(parent)["reason"] == "canceled by an operator"
    assert project.show(grandchild)["reason"] == f"parent {child} is canceled"
    assert (
        db.zcard(keys.layout_of(db).scheduled("default")) == 0 and db.zcard(keys.layout_of(db).deferred("default")) == 0
    )
    assert db.zcard(keys.layout_of(db).canceled("default")) == 3

    again = project.run("cancel", parent)
    assert again.returncode == 0 and "already canceled" in again.stderr


def test_cancel_a_queued_job_removes_it_from_its_queue(project, in_process, db):
    job_id = project.enqueue("add", "1")
    outcome = json.loads(project.run("cancel", job_id, "--json").stdout)
    assert outcome == [
        {"job_id": job_id, "state": "queued", "canceled": True, "dependents": [], "now": "canceled", "error": None}
    ]
    assert db.llen(keys.layout_of(db).queue("default")) == 0
    assert in_process().drain() == 0
    assert project.show(job_id)["state"] == "canceled"


def test_cancel_refuses_an_ended_job_and_an_unknown_one(project, in_process):
    job_id = project.enqueue("add", "1")
    assert in_process().drain() == 1
    assert "it already ended (finished)" in one_line_error(project.run("cancel", job_id), code=1)
    assert "no job with id 'nope'" in one_line_error(project.run("cancel", "nope"))


# --- purge ------------------------------------------------------------------------------------

DAY = 86400


def age_job(db, registry_key: str, job_id: str, ttl_field: str, days: float) -> None:
    """Make a job look as if it ended `days` ago: its registry score is its end plus its ttl."""
    ttl = int(db.hget(keys.layout_of(db).job(job_id, "default"), ttl_field))
    db.zadd(registry_key, {job_id: time.time() - days * DAY + ttl})


def test_purge_deletes_only_old_jobs_of_the_state(project, in_process, db):
    old_dead, new_dead = project.enqueue("always_fails"), project.enqueue("always_fails")
    old_finished = project.enqueue("add", "1")
    in_process().drain(wait=60)
    age_job(db, keys.layout_of(db).dead("default"), old_dead, "failure_ttl", 8)
    age_job(db, keys.layout_of(db).finished("default"), old_finished, "result_ttl", 8)

    dry = project.run("purge", "default", "--state", "dead", "--older-than", "7d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 dead job(s) of queue 'default' that ended before")
    assert db.exists(keys.layout_of(db).job(old_dead, "default"))

    done = json.loads(
        project.run("purge", "default", "--state", "dead", "--older-than", "7d", "--yes", "--json").stdout
    )
    assert done["deleted"] == 1 and done["dry_run"] is False
    assert (
        not db.exists(keys.layout_of(db).job(old_dead, "default"))
        and db.zscore(keys.layout_of(db).dead("default"), old_dead) is None
    )
    assert project.show(new_dead)["state"] == "dead"
    assert project.show(old_finished)["state"] == "finished"  # another state: untouched

    assert project.run("purge", "default", "--state", "finished", "--older-than", "7d", "-y").returncode == 0
    assert not db.exists(keys.layout_of(db).job(old_finished, "default")) and not db.exists(
        keys.layout_of(db).results(old_finished, "default")
    )


def test_purge_works_in_batches_and_keeps_jobs_that_moved_on(project, db):
    count = 2500  # more than two batches
    now = time.time()
    with db.pipeline(transaction=False) as pipe:
        for n in range(count):
            job_id = f"bulk-{n}"
            pipe.hset(
                keys.layout_of(db).job(job_id, "default"),
                mapping={"status": "finished", "result_ttl": 3600, "origin": "default"},
            )
            pipe.zadd(keys.layout_of(db).finished("default"), {job_id: now - 10 * DAY + 3600})
        pipe.execute()
    db.hset(keys.layout_of(db).job("bulk-7", "default"), "status", "queued")  # re-enqueued under its id meanwhile

    result = project.run("--quiet", "purge", "default", "--state", "finished", "--older-than", "1d", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(count - 1)
    assert db.zcard(keys.layout_of(db).finished("default")) == 1
    assert db.exists(keys.layout_of(db).job("bulk-7", "default")) and not db.exists(
        keys.layout_of(db).job("bulk-8", "default")
    )


def test_purge_asks_first_and_refuses_without_a_terminal(project, in_process, db):
    job_id = project.enqueue("always_fails")
    in_process().drain(wait=60)
    args = ("purge", "default", "--state", "dead", "--older-than", "0s")
    assert "pass --yes" in one_line_error(project.run(*args))
    assert "--state 'done': expected finished, dead, canceled" in one_line_error(
        project.run_here("purge", "default", "--state", "done", "--older-than", "1d", "--yes")
    )
    assert "--older-than 'soon'" in one_line_error(
        project.run_here("purge", "default", "--state", "dead", "--older-than", "soon", "--yes")
    )

    for answer, code, kept in (("n", 1, True), ("y", 0, False)):
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            project.command(*args),
            cwd=project.path,
            env=project.env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(terminal)
        os.write(controller, f"{answer}\n".encode())
        out, err = process.communicate(timeout=30)
        os.close(controller)
        assert process.returncode == code, err
        assert "Delete 1 dead job(s) of queue 'default'" in out
        assert bool(db.exists(keys.layout_of(db).job(job_id, "default"))) is kept


# --- shell completion, --quiet ------------------------------------------------------------------


def complete(project, words: str, env: dict | None = None) -> list[str]:
    if not JOBCTL.exists():
        pytest.skip("the jobctl console script is not installed in this environment")
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    result = subprocess.run(
        [str(JOBCTL)],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={
            **project.env,
            **(env or {}),
            "_JOBCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_of_job_and_queue_names_without_redis(project):
    offline = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    assert complete(project, "jobctl enqueue al", offline) == ["always_fails"]
    assert complete(project, "jobctl pause ", offline) == ["default", "analytics"]
    assert complete(project, "jobctl enqueue add --queue an", offline) == ["analytics"]
    assert complete(project, "jobctl work -q d", offline) == ["default"]
    assert complete(project, "jobctl purge default --state d", offline) == ["dead"]
    project.write("other.yml", "reports: {}\n")
    assert complete(project, "jobctl --config other.yml resume ", offline) == ["reports"]


def test_quiet_leaves_only_errors_and_essential_output(project):
    job_id = project.enqueue("add", "1")
    worked = project.run("--quiet", "work", "--burst")
    assert worked.returncode == 0 and worked.stderr == "", worked.stderr
    assert project.run("work", "--burst").stderr  # without --quiet the supervisor logs
    paused = project.run("--quiet", "pause", "default")
    assert (paused.stdout, paused.stderr) == ("", "")
    queued = project.run("--quiet", "enqueue", "add", "2")
    assert len(queued.stdout.split()) == 1 and queued.stderr == ""
    canceled = project.run("--quiet", "cancel", queued.stdout.strip())
    assert canceled.stdout.strip() == queued.stdout.strip()
    assert project.show(job_id)["state"] == "finished"
    assert "--quiet and --verbose" in one_line_error(project.run("--quiet", "--verbose", "status"))


PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def test_requeue_dead_all_streams_in_batches_in_bounded_memory(project, in_process, db):
    """1,001 dead jobs with 100 KB tracebacks (100 MB of records): `requeue-dead --all` lists
    and requeues each once, reading a batch at a time and never their tracebacks: its peak
    resident size stays far below what reading them all took (over 250 MB)."""
    template = project.enqueue("refuses")
    assert in_process().drain() == 1
    fields = {
        **db.hgetall(keys.layout_of(db).job(template, "default")),
        b"exc_info": b"Traceback (most recent call last):\n" + b"x" * 100_000,
    }
    [(_, expires)] = db.zrange(keys.layout_of(db).dead("default"), 0, -1, withscores=True)
    ids = [template] + [f"dead-{n}" for n in range(1000)]
    with db.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hset(keys.layout_of(db).job(job_id, "default"), mapping=fields)
        pipe.zadd(keys.layout_of(db).dead("default"), dict.fromkeys(ids, expires))
        pipe.execute()

    def requeue_dead(*options: str) -> tuple[list[str], float]:
        """The ids listed, and the command's peak RSS in MB, measured by a process that runs
        only it (a child's ru_maxrss starts from its parent's size at the fork: pytest's)."""
        measured = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, *project.command("requeue-dead", "--all", "--json", *options)],
            cwd=project.path,
            env=project.env,
            capture_output=True,
            text=True,
        )
        assert measured.returncode == 0, measured.stderr
        listed = json.loads(measured.stdout)["requeued"]
        assert {(j["job"], j["queue"]) for j in listed} <= {("refuses", "default")}
        return [j["id"] for j in listed], int(measured.stderr.split()[-1]) / 1024

    would, peak = requeue_dead("--dry-run")
    assert sorted(would) == sorted(ids) and peak < 100, peak
    assert (
        db.zcard(keys.layout_of(db).dead("default")) == len(ids) and db.llen(keys.layout_of(db).queue("default")) == 0
    )
    requeued, peak = requeue_dead()
    assert sorted(requeued) == sorted(ids) and peak < 100, peak
    assert db.zcard(keys.layout_of(db).dead("default")) == 0 and db.llen(keys.layout_of(db).queue("default")) == len(
        ids
    )
    assert requeue_dead()[0] == []  # nothing left dead
