"""What the one-shot tables show, and the two log formats of the long-running processes."""

import io
import json
import logging

from jobctl import logs


def test_status_tables_after_a_failure(project):
    for args in (["add", "1"], ["refuses"]):
        assert project.run("enqueue", *args).returncode == 0
    assert project.run("work", "--burst").returncode == 0
    shown = project.run("status")
    assert shown.returncode == 0, shown.stderr
    for title in ("Queues", "Queue activity", "Workers", "Recent failures"):
        assert title in shown.stdout
    assert "PermanentError: bad input, do not retry" in shown.stdout
    assert "50.0%" in shown.stdout  # default's error rate: one of two executions failed
    assert "Scheduler" not in shown.stdout  # no scheduler has run against this Redis


def test_json_log_lines(project):
    assert project.run("enqueue", "add", "1").returncode == 0
    burst = project.run("--log-format", "json", "--verbose", "work", "--burst")  # a line per job: --verbose
    assert burst.returncode == 0, burst.stderr
    lines = [json.loads(line) for line in burst.stderr.splitlines()]
    assert lines and all({"time", "level", "event", "message"} <= set(line) for line in lines)
    assert any("finished" in line["message"] for line in lines)

    from_env = project.run("work", "--burst", env={"JOBCTL_LOG_FORMAT": "json"})
    assert all(line.startswith("{") for line in from_env.stderr.splitlines())
    plain = project.run("work", "--burst")
    assert plain.stderr and not any(line.startswith("{") for line in plain.stderr.splitlines())


def test_bad_log_format_is_a_one_line_error(project):
    bad = project.run("--log-format", "xml", "status")
    assert (bad.returncode, bad.stderr.strip()) == (2, "jobctl: error: --log-format 'xml': expected plain or json")


def test_an_event_is_one_json_object_with_its_fields():
    out = io.StringIO()
    logger = logging.getLogger("jobctl.test-events")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    try:
        logs.event(
            logger,
            "job.finished",
            "%s %s [%s] finished in %.3fs",
            "add",
            "j1",
            "default",
            0.25,
            job_id="j1",
            job="add",
            queue="default",
            duration=0.25,
            outcome="finished",
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert {k: line[k] for k in ("level", "event", "job_id", "job", "queue", "duration", "outcome", "message")} == {
        "level": "info",
        "event": "job.finished",
        "job_id": "j1",
        "job": "add",
        "queue": "default",
        "duration": 0.25,
        "outcome": "finished",
        "message": "add j1 [default] finished in 0.250s",
    }
