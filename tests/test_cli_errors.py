"""Bad input gets one clear line naming what is wrong and where, exit status 2, no traceback."""

import pytest


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "queue_yml, fragments",
    [
        ("default: {worker_count: 5\n  max_retries: 3", ["queue.yml: malformed YAML at line 2"]),
        (
            "default: {worker_count: -1}",
            ["queue.yml: queue 'default': key 'worker_count': expected a whole number from 0 to 64", "got -1"],
        ),
        ("default: {worker_count: lots}", ["queue 'default': key 'worker_count'", "got 'lots'"]),
        ("default: {worker_count: 4..2}", ["queue.yml: queue 'default': key 'worker_count'", "range", "got '4..2'"]),
        ("defaults: {scale_down_idle: 0s}\ndefault: {}", ["queue.yml: defaults: key 'scale_down_idle'", "got '0s'"]),
        ("default: {max_retry: 1}", ["queue 'default': unknown key 'max_retry' (did you mean 'max_retries'?)"]),
    ],
)
def test_bad_queue_yml(project, queue_yml, fragments):
    project.write("queue.yml", queue_yml)
    assert_one_line_error(project.run("enqueue", "add", "1"), *fragments)
    assert_one_line_error(project.run("work", "--burst"), *fragments)


def test_missing_config_file(project):
    assert_one_line_error(
        project.run("--config", "nowhere.yml", "status"),
        f"nowhere.yml not found in {project.path} (run `jobctl init`, or pass --config / JOBCTL_CONFIG)",
    )


@pytest.mark.parametrize(
    "recurring_yml, fragments",
    [
        ("sync: {job: add, args: [1], schedule: '61 * * * *'}", ["recurring.yml: entry 'sync': key 'schedule'"]),
        (
            "sync: {job: no_such_job, schedule: every 5 minutes}",
            ["recurring.yml: entry 'sync': key 'job': unknown job 'no_such_job'"],
        ),
    ],
)
def test_bad_recurring_yml(project, recurring_yml, fragments):
    project.write("recurring.yml", recurring_yml)
    assert_one_line_error(project.run("scheduler", "--list"), *fragments)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["enqueue", "no_such_job"], ["unknown job 'no_such_job'", "registered jobs:"]),
        (["enqueue", "add", "1", "--in", "soon"], ["--in 'soon': expected a duration"]),
        (["enqueue", "add", "1", "--at", "next tuesday"], ["--at 'next tuesday': expected an ISO date-time"]),
        (["enqueue", "add", "-k", "b"], ["-k/--kwarg 'b': expected key=value"]),
        (["enqueue", "add", "1", "--queue", "nowhere"], ["--queue: queue 'nowhere' is not configured in queue.yml"]),
        (["enqueue", "add", "1", "--depends-on", "no-such-id"], ["--depends-on: no job with id 'no-such-id'"]),
        (["show", "no-such-id"], ["no job with id 'no-such-id'"]),
        (["work", "--queue", "nowhere"], ["--queue: queue 'nowhere' is not configured"]),
        (["requeue-dead"], ["requeue-dead: say which jobs"]),
    ],
)
def test_bad_arguments(project, args, fragments):
    assert_one_line_error(project.run(*args), *fragments)


def test_nothing_is_stored_after_a_bad_enqueue(project, db):
    project.run("enqueue", "add", "1", "--queue", "nowhere")
    project.run("enqueue", "add", "-k", "b")
    assert db.keys("rq:job:*") == []


def test_unreachable_redis_names_host_and_port_never_the_password(project):
    url = "redis://admin:s3cret-pass@127.0.0.1:1/0"
    for args in (["status"], ["enqueue", "add", "1"], ["work", "--burst"]):
        line = assert_one_line_error(project.run(*args, env={"REDIS_URL": url}), "cannot reach Redis at 127.0.0.1:1")
        assert "s3cret" not in line


def test_a_lease_ttl_that_is_not_whole_seconds_is_refused_by_every_command(project):
    for args in (["health"], ["work", "--burst"], ["config"]):
        assert_one_line_error(
            project.run(*args, env={"JOBCTL_LEASE_TTL": "20s"}),
            "jobctl: error: JOBCTL_LEASE_TTL: expected whole seconds, like 20, got '20s'",
        )
