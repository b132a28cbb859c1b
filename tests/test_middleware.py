"""Middleware as a user registers it from a jobs module: called around every attempt, on retry
and on dead, in the thread that ran the job (async jobs too); its own errors change nothing."""

import json
import logging

import redis
from app_jobs import app_add
from conftest import QUEUE_YML, script_calls

from jobctl import Middleware, testing
from jobctl.api.client import Client
from jobctl.config.queues import QueueConfig
from jobctl.middleware import base
from jobctl.middleware.base import Attempt, Chain, JobInfo, Verdict
from jobctl.middleware.retries import Retries

MIDDLEWARE = '''\
import json
import threading

from jobctl import Middleware, add_middleware, job


class Journal(Middleware):
    """Notes every call, with the thread it ran in, in journal.jsonl."""

    def _note(self, call, job, **extra):
        with open("journal.jsonl", "a") as out:
            out.write(json.dumps({"call": call, "id": job.id, "attempt": job.attempt,
                                  "thread": threading.current_thread().name, **extra}) + "\\n")

    def before_attempt(self, job):
        self._note("before_attempt", job)

    def after_attempt(self, job, result, exception, run_seconds):
        self._note("after_attempt", job, result=result, exception=repr(exception) if exception else None)

    def on_retry(self, job, exception, delay):
        self._note("on_retry", job, delay=delay)

    def on_dead(self, job, exception):
        self._note("on_dead", job, exception=repr(exception))


class Broken(Middleware):
    def before_attempt(self, job):
        raise RuntimeError("broken middleware")

    after_attempt = on_retry = on_dead = before_attempt


add_middleware(Journal())
add_middleware(Broken())


@job("which_thread")
def which_thread() -> str:
    return threading.current_thread().name
'''

SENTRY_LIKE = """\
import sentry_sdk

from jobctl import Middleware, add_middleware


class ReportErrors(Middleware):
    def after_attempt(self, job, result, exception, run_seconds):
        if exception is not None:
            sentry_sdk.capture_exception(exception)


add_middleware(ReportErrors())
"""

FAKE_SENTRY_SDK = """\
def capture_exception(exception):
    with open("captured.txt", "a") as out:
        out.write(f"{type(exception).__name__}: {exception}\\n")
"""


def journal(project) -> list[dict]:
    return [json.loads(line) for line in (project.path / "journal.jsonl").read_text().splitlines()]


def test_middleware_around_attempts_retries_and_death(project):
    project.write("journal_middleware.py", MIDDLEWARE)
    project.write(
        "queue.yml", "default: {worker_count: 1, concurrency: 2, max_retries: 1, retry_delay: 100ms, backoff: fixed}\n"
    )
    env = {"JOBCTL_JOBS": "sample_jobs,journal_middleware"}
    fine = project.enqueue("which_thread", env=env)
    failing = project.enqueue("always_fails", env=env)
    run = project.run("work", "--burst", env=env)
    assert run.returncode == 0
    assert project.show(fine, env=env)["state"] == "finished"
    assert (project.show(failing, env=env)["state"], project.show(failing, env=env)["attempts"]) == ("dead", 2)
    calls = journal(project)
    [before, after] = [c for c in calls if c["id"] == fine]
    assert (before["call"], after["call"], after["exception"]) == ("before_attempt", "after_attempt", None)
    # in the thread that ran the job
    assert before["thread"] == after["thread"] == after["result"]
    assert [(c["call"], c["attempt"]) for c in calls if c["id"] == failing] == [
        ("before_attempt", 1),
        ("after_attempt", 1),
        ("on_retry", 1),
        ("before_attempt", 2),
        ("after_attempt", 2),
        ("on_dead", 2),
    ]
    assert "ValueError('this job always fails')" in next(c for c in calls if c["call"] == "on_dead")["exception"]
    assert f"job {fine} (which_thread): Broken.before_attempt raised; the job's outcome stands" in run.stderr


def test_async_jobs_reach_middleware_in_the_thread_that_awaited_them(project):
    project.write("journal_middleware.py", MIDDLEWARE)
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 3}\n")
    env = {"JOBCTL_JOBS": "sample_jobs,journal_middleware"}
    ids = project.enqueue_many("async_add", [[n, 1] for n in range(3)], env=env)
    assert project.run("work", "--burst", env=env).returncode == 0
    calls = journal(project)
    for job_id in ids:
        [before, after] = [c for c in calls if c["id"] == job_id]
        assert after["result"] in (1, 2, 3)
        assert before["thread"] == after["thread"]
        assert before["thread"] != "jobctl-event-loop"  # a slow middleware never blocks the loop


def test_the_readmes_error_tracker_example(project):
    project.write("report_errors.py", SENTRY_LIKE)
    project.write("sentry_sdk.py", FAKE_SENTRY_SDK)  # stands in for the real SDK
    env = {"JOBCTL_JOBS": "sample_jobs,report_errors"}
    project.enqueue("always_fails", "--queue", "analytics", env=env)
    project.enqueue("add", "1", env=env)
    assert project.run("work", "--burst", env=env).returncode == 0
    assert (project.path / "captured.txt").read_text().splitlines() == ["ValueError: this job always fails"] * 2


def test_a_worker_given_middlewares_of_its_own_runs_those_not_the_process_ones():
    from jobctl import add_middleware
    from jobctl.config.settings import StatsdTarget
    from jobctl.middleware import stack
    from jobctl.middleware.base import Middlewares
    from jobctl.middleware.statsd_metrics import StatsdSender

    own, everyones = Middleware(), Middleware()
    add_middleware(everyones)
    mine = Middlewares()
    mine.add(own)
    target = StatsdTarget("127.0.0.1", 8125, "app")
    chain = stack.for_worker(logging.getLogger("test"), target, {}, redis.Redis(), added=mine)
    assert own in chain.middlewares and everyones not in chain.middlewares
    sender = chain.middlewares[-1]
    assert isinstance(sender, StatsdSender) and (sender.host, sender.port, sender.prefix) == ("127.0.0.1", 8125, "app")
    assert everyones in stack.for_worker(logging.getLogger("test"), None, {}, redis.Redis()).middlewares


# --- how long a worker waits for its middlewares ---------------------------------------------

ROUND_TRIP_JOBS = 40


class Noting(Middleware):
    """Counts the attempts it heard of: code of the user's after every attempt."""

    def __init__(self) -> None:
        self.heard = 0

    def after_attempt(self, job, result, exception, run_seconds):
        self.heard += 1


class InstantNoting(Noting):
    instant = True


def scripts_for_jobs(redis_url, tmp_path, db, monkeypatch, middlewares: list) -> int:
    """Redis script calls of an in-process worker (concurrency 1) running ROUND_TRIP_JOBS jobs."""
    monkeypatch.setattr(base.middlewares, "_added", middlewares)  # the process's, which workers run
    (tmp_path / "queue.yml").write_text(QUEUE_YML)
    client = Client(redis_url, tmp_path / "queue.yml")
    with testing.default_client(client):
        for n in range(ROUND_TRIP_JOBS):
            app_add.enqueue(n, 1)
        before = script_calls(db)
        assert testing.Worker("default", client=client).drain() == ROUND_TRIP_JOBS
        calls = script_calls(db) - before
    client.close()
    return calls


def test_an_instant_middleware_costs_no_round_trip(redis_url, tmp_path, db, monkeypatch):
    """A middleware declared instant lets the worker send each outcome and start the next job in
    one round trip, as with no middleware at all; one that may wait after an attempt costs a
    second round trip per job (the outcome is stored, the middleware runs, then the next job
    starts). Before `instant`, any middleware of the user's cost the second."""
    plain = scripts_for_jobs(redis_url, tmp_path, db, monkeypatch, [])
    instant, waiting = InstantNoting(), Noting()
    with_instant = scripts_for_jobs(redis_url, tmp_path, db, monkeypatch, [instant])
    with_waiting = scripts_for_jobs(redis_url, tmp_path, db, monkeypatch, [waiting])
    assert instant.heard == waiting.heard == ROUND_TRIP_JOBS
    # a flush of job tracking more or less (once a second) is all that may differ
    assert with_instant <= plain + 2, (plain, with_instant)
    assert with_waiting >= plain + ROUND_TRIP_JOBS - 2, (plain, with_waiting)


def test_the_first_middleware_that_decides_a_failed_attempt_wins():
    """The retry policy is a middleware: the chain asks each in turn; without one, no retry."""

    class NeverRetry(Middleware):
        def decide(self, attempt):
            return Verdict("dead", reason="never")

    queue = QueueConfig("default", max_retries=5)
    log = logging.getLogger("test")
    attempt = Attempt(JobInfo("id", "app_add", "default", (), {}, 1), exception=ValueError("boom"))
    assert Chain([Retries({"default": queue}, log)], log).decide(attempt).outcome == "retry"
    assert Chain([NeverRetry(), Retries({"default": queue}, log)], log).decide(attempt).reason == "never"
    assert Chain([], log).decide(attempt) == Verdict("dead", reason="ValueError: boom")
