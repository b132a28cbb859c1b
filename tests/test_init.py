"""A first run outside the checkout: `jobctl init`, where a missing queue.yml is looked for, no
embedded Redis left behind, and the built-in jobs' example data found from any directory."""

from __future__ import annotations

import json
import subprocess

from conftest import Project

from jobctl.cli.demo import EXAMPLE_CHANNELS


def test_init_writes_a_project_that_runs_and_never_overwrites(project, tmp_path):
    created = project.run("init", "fresh")
    assert created.returncode == 0, created.stderr
    fresh = tmp_path / "fresh"
    assert sorted(p.name for p in fresh.iterdir()) == ["example_jobs.py", "queue.yml", "recurring.yml"]
    assert "JOBCTL_JOBS=example_jobs jobctl work" in created.stderr

    again = project.run_here("init", "fresh")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"jobctl: error: init: queue.yml, recurring.yml, example_jobs.py already exist in "
        f"{fresh}; nothing written (--force overwrites)"
    )
    (fresh / "queue.yml").write_text("mine: {}\n")
    assert project.run_here("init", "fresh", "--force").returncode == 0
    assert "worker_count" in (fresh / "queue.yml").read_text()

    inside = Project(fresh, None)  # jobctl run inside the new project
    inside.env = {**project.env, "JOBCTL_JOBS": "example_jobs"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return inside.run(*args, timeout=120)

    listed = run("scheduler", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [entry["name"] for entry in json.loads(listed.stdout)] == ["sync_example_channel"]
    hello = run("enqueue", "hello", "Ada").stdout.strip()
    crunch = run("enqueue", "crunch", "-k", "count=3").stdout.strip()
    assert run("work", "--burst").returncode == 0
    # the results read in this process (show imports no job module)
    assert json.loads(inside.run_here("show", hello, "--json").stdout)["result"] == "hello, Ada"
    assert json.loads(inside.run_here("show", crunch, "--json").stdout)["result"] == {
        "steps": 3,
        "sum_of_squares": 14,
    }


def test_a_missing_queue_yml_says_where_and_what_to_do_and_starts_nothing(project, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in project.env.items() if k not in ("REDIS_URL", "JOBCTL_JOBS")}  # REDIS_URL unset: embedded
    for command in (["status"], ["work", "--burst"], ["enqueue", "add", "1"]):
        result = subprocess.run(
            project.command(*command), cwd=empty, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"jobctl: error: queue.yml not found in {empty} (run `jobctl init`, or pass --config / JOBCTL_CONFIG)"
        )
    assert not (empty / ".jobctl").exists()
    leftover = subprocess.run(["pgrep", "-f", str(empty / ".jobctl")], capture_output=True, text=True, check=False)
    assert leftover.stdout == "", "an embedded redis-server was left running"


def test_builtin_jobs_find_their_example_data_from_any_directory(project, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    channel = EXAMPLE_CHANNELS[0]
    synced = project.run("enqueue", "channel_sync", channel)
    imported = project.run("enqueue", "import", "example:imports/channels.csv", "channels")
    assert project.run("work", "--burst").returncode == 0
    for enqueued in (synced, imported):
        job = project.show(enqueued.stdout.strip())
        assert job["state"] == "finished", job


def test_the_enqueue_help_example_runs_as_written(project):
    project.write("queue.yml", "default: {worker_count: 1}\n")
    help_text = project.run("enqueue", "--help").stdout
    example = next(line.split("Example: ", 1)[1] for line in help_text.splitlines() if "Example: " in line)
    args = example.split()[1:]
    assert args[:2] == ["enqueue", "channel_sync"]
    job_id = project.enqueue(*args[1:])
    assert project.show(job_id)["state"] == "scheduled"
    project.start("work")
    waited = project.run("enqueue", "channel_sync", args[2], "--wait")
    assert waited.returncode == 0, waited.stderr
