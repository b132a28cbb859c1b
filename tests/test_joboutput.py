"""Job output capture (jobctl.store.joboutput) in one process: threads and asyncio tasks of several
jobs print and log at the same time, each job's stored output holds its own lines only."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading

import pytest
from conftest import wait_for

from jobctl import logs
from jobctl.store import joboutput, keys


@pytest.fixture
def installed(monkeypatch):
    """Installs joboutput on streams of the test's own when called (in the test: pytest puts
    its own sys.stdout back between fixtures and test), undone afterwards."""
    logger, root = logs.get(), logging.getLogger()
    saved = list(logger.handlers), list(logger.filters), list(root.handlers), root.level

    def install() -> tuple[io.StringIO, io.StringIO]:
        worker_stdout, worker_stderr = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", worker_stdout)
        monkeypatch.setattr(sys, "stderr", worker_stderr)
        monkeypatch.setattr(joboutput, "_installed", False)
        logger.handlers = [logging.StreamHandler(worker_stderr)]
        logs.setup(False, "json")
        joboutput.install()
        return worker_stdout, worker_stderr

    yield install
    logger.handlers, logger.filters, root.handlers = saved[:3]
    root.setLevel(saved[3])


def stored(db, job_id: str, attempt: int = 1) -> str:
    return (db.get(keys.layout_of(db).job_output(job_id, attempt, "default")) or b"").decode()


def test_threads_of_several_jobs_never_mix_lines(installed, db):
    worker_stdout, worker_stderr = installed()
    jobs = [f"job-{n}" for n in range(6)]
    start = threading.Barrier(len(jobs))

    def run(job_id: str) -> None:
        with joboutput.capture(db, job_id, 1, ttl=900, queue="default"):
            start.wait()
            for line in range(300):
                print(f"{job_id} line {line}")
                if line % 50 == 0:
                    logging.getLogger("myapp").info("%s logged %d", job_id, line)
                    sys.stderr.write(f"{job_id} err {line}\n")

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("after the jobs")  # no capture active: the worker's own stdout

    for job_id in jobs:
        lines = stored(db, job_id).splitlines()
        assert all(job_id in line for line in lines), [line for line in lines if job_id not in line][:3]
        assert [line for line in lines if " line " in line] == [f"{job_id} line {n}" for n in range(300)]
        assert f"INFO myapp: {job_id} logged 250" in lines and f"{job_id} err 250" in lines
        assert 0 < db.ttl(keys.layout_of(db).job_output(job_id, 1, "default")) <= 900
    assert worker_stdout.getvalue() == "after the jobs\n"
    echoed = [json.loads(line) for line in worker_stderr.getvalue().splitlines()]
    assert len(echoed) == 6 * (300 + 6 + 6)
    assert all(entry["event"] == "job.output" and entry["job_id"] in entry["message"] for entry in echoed)
    assert {"stdout", "stderr", "log"} == {entry["stream"] for entry in echoed}


def test_asyncio_tasks_of_several_jobs_never_mix_lines(installed, db):
    installed()

    async def job(job_id: str) -> None:
        with joboutput.capture(db, job_id, 2, queue="default"):
            for line in range(100):
                print(f"{job_id} line {line}")
                await asyncio.sleep(0)  # hand over to the other tasks between lines

    async def main() -> None:
        await asyncio.gather(*(job(f"task-{n}") for n in range(4)))

    asyncio.run(main())
    for n in range(4):
        assert stored(db, f"task-{n}", 2).splitlines() == [f"task-{n} line {line}" for line in range(100)]


def test_output_is_bounded_and_a_failure_keeps_its_traceback(installed, db):
    installed()
    with pytest.raises(ZeroDivisionError), joboutput.capture(db, "chatty", 1, queue="default"):
        for line in range(20_000):
            print(f"line {line:06d} " + "x" * 20)
        1 / 0  # noqa: B018 - raises inside the capture
    (attempt,) = joboutput.read(db, "chatty", [1], queue="default")
    assert len(attempt.text.encode()) == joboutput.OUTPUT_LIMIT
    assert attempt.text.endswith(f"line {19_999:06d} {'x' * 20}\n")
    assert attempt.written == 20_000 * 33 and attempt.dropped == attempt.written - joboutput.OUTPUT_LIMIT
    assert "ZeroDivisionError: division by zero" in attempt.traceback
    assert attempt.started <= attempt.ended


def test_output_is_stored_while_the_job_runs(installed, db):
    installed()
    release = threading.Event()

    def run() -> None:
        with joboutput.capture(db, "slow", 1, queue="default"):
            print("halfway")
            release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: stored(db, "slow") == "halfway\n", timeout=5, message="the periodic flush")
        text, written, lost = joboutput.read_since(db, "slow", 1, 0, queue="default")
        assert (text, written, lost) == ("halfway\n", 8, 0)
    finally:
        release.set()
        thread.join()


# --- reading it back through the CLI: `jobctl logs`, `show` ---------------------------------------


def test_logs_and_show_print_what_the_job_wrote(project, db):
    job_id = project.enqueue("refuses")
    assert project.run("work", "--burst").returncode == 0
    # what the worker's capture stores around the attempt (the worker's wiring is tested with it)
    with pytest.raises(ValueError), joboutput.capture(db, job_id, 1, queue="default"):
        joboutput.current().write("fetching [bold]page[/bold] 1\nfetching page 2\n", "stdout")
        raise ValueError("page 3 is missing")

    logs_result = project.run("logs", job_id[:8])
    assert logs_result.returncode == 0, logs_result.stderr
    assert logs_result.stdout == "fetching [bold]page[/bold] 1\nfetching page 2\n"
    assert logs_result.stderr.strip() == "--- attempt 1"
    assert "has had 1 attempt(s)" in project.run("logs", job_id, "--attempt", "2").stderr

    shown = project.run("show", job_id)
    assert "Traceback of attempt 1" in shown.stdout and "PermanentError: bad input" in shown.stdout
    assert shown.stdout.rstrip().endswith("fetching page 2")
    every = project.run("show", job_id, "--all").stdout
    assert "ValueError: page 3 is missing" in every  # the attempt's own traceback, from its record
    detail = json.loads(project.run("show", job_id, "--json").stdout)
    assert detail["attempt_outputs"][0]["text"].startswith("fetching") and detail["first_enqueued_at"]


def test_logs_follow_prints_output_as_it_is_stored_until_the_job_ends(project, db):
    job_id = project.enqueue("add", "1", "--in", "1h")
    db.hset(keys.layout_of(db).job(job_id, "default"), mapping={"jobctl_attempts": 1, "status": "started"})
    following = project.start("logs", job_id, "--follow")
    with joboutput.capture(db, job_id, 1, queue="default") as output:
        output.write("first line\n", "stdout")
        assert following.stdout.readline() == "first line\n"
        output.write("second line\n", "stdout")
        assert following.stdout.readline() == "second line\n"
    db.hset(keys.layout_of(db).job(job_id, "default"), "status", "finished")
    assert following.wait(timeout=15) == 0
