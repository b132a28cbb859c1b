"""Middleware as a user registers it from a jobs module: called around every attempt, on retry
and on dead, in the thread that ran the job (async jobs too); its own errors change nothing."""

import json

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
    ids = [project.enqueue("async_add", str(n), "1", env=env) for n in range(3)]
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
    import logging

    from jobctl import Middleware, add_middleware
    from jobctl.config.settings import StatsdTarget
    from jobctl.middleware import stack
    from jobctl.middleware.base import Middlewares
    from jobctl.middleware.statsd_metrics import StatsdSender

    own, everyones = Middleware(), Middleware()
    add_middleware(everyones)
    mine = Middlewares()
    mine.add(own)
    chain = stack.for_worker(logging.getLogger("test"), StatsdTarget("127.0.0.1", 8125, "app"), added=mine)
    assert own in chain.middlewares and everyones not in chain.middlewares
    sender = chain.middlewares[-1]
    assert isinstance(sender, StatsdSender) and (sender.host, sender.port, sender.prefix) == ("127.0.0.1", 8125, "app")
    assert everyones in stack.for_worker(logging.getLogger("test"), None).middlewares
