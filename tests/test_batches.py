"""Batches (api/batches.py, lua/lib.lua's batch_ended): jobs enqueued together, callbacks once
all of them ended. Semantics on the in-process worker; crashes with real processes."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import signal
import time

import batch_jobs
import pytest
from batch_jobs import (
    CALLS,
    batch_add,
    batch_dies,
    batch_flaky,
    batch_nester,
    batch_report,
    batch_sleep,
    batch_success,
)
from conftest import QUEUE_YML, TESTS, child_pids, kill_quietly, wait_for
from starlette.testclient import TestClient

import jobctl
from jobctl import testing
from jobctl.api import batches
from jobctl.api.client import Client
from jobctl.config.settings import Settings
from jobctl.errors import UnknownBatch, UnknownJob, UsageError
from jobctl.store import keys
from jobctl.store.transitions import Transitions
from jobctl.web.app import create_app
from jobctl.web.auth import Auth
from jobctl.web.board import Dashboard


def calls(client: Client) -> list[dict]:
    return [json.loads(raw) for raw in client.connection.lrange(CALLS, 0, -1)]


def promoter_pass(client: Client) -> None:
    """On a cluster what befell a job of a batch reaches the batch (in a slot of its own) at the
    promoter's next pass over the job's queue (docs/cluster.md): one here, as a supervisor's tick
    makes it. One Redis counts it in the job's own script."""
    if client.layout.cluster:
        Transitions(client.connection).deliver("default", time.time())


def test_callbacks_run_once_every_job_ended_with_the_counts(client, worker):
    with jobctl.batch(on_complete=batch_report, on_success="batch_success", description="adds") as b:
        handles = [batch_add.enqueue(n, 1) for n in range(3)]
        handles += batch_add.enqueue_many([(10,), (20,)])
    assert client.connection.hget(client.layout.job(handles[0].id, "default"), "jobctl_batch") == b.id.encode()
    shown = b.show()
    assert (shown.total, shown.pending, shown.sealed, shown.complete) == (5, 5, True, False)
    worker.drain()
    counts = {"batch_id": b.id, "total": 5, "succeeded": 5, "failed": 0}
    assert sorted(calls(client), key=lambda c: c["callback"]) == [
        {"callback": "complete", **counts},
        {"callback": "success", **counts},
    ]
    shown = b.show()
    assert (shown.pending, shown.succeeded, shown.complete, shown.generation) == (0, 5, True, 1)
    assert shown.callback_ids == {
        "complete": [f"batch-{b.id}-complete-1"],
        "success": [f"batch-{b.id}-success-1"],
    }
    assert jobctl.get(f"batch-{b.id}-complete-1").status() == "finished"
    worker.drain()
    assert len(calls(client)) == 2  # nothing more, however often the due callbacks are looked for


def test_a_callback_waits_for_the_block_to_end(client, worker):
    with jobctl.batch(on_complete=batch_report) as b:
        batch_add.enqueue(1)
        worker.drain()  # the only job so far ended, but more may come: not complete
        assert calls(client) == [] and not b.show().complete
        batch_add.enqueue(2)
    worker.drain()
    assert [c["total"] for c in calls(client)] == [2]


def test_a_job_retried_then_finished_counts_once(client, worker):
    with jobctl.batch(on_complete=batch_report, on_success=batch_success) as b:
        batch_flaky.enqueue("a")
        batch_add.enqueue(1)
    worker.drain(wait=5)
    assert {c["callback"] for c in calls(client)} == {"complete", "success"}
    assert all((c["total"], c["succeeded"], c["failed"]) == (2, 2, 0) for c in calls(client))
    assert client.connection.get("tests:flaky:a") == b"2"  # it was retried
    assert b.show().failed_ids == []


def test_a_dead_job_completes_the_batch_but_not_its_success(client, worker):
    with jobctl.batch(on_complete=batch_report, on_success=batch_success) as b:
        dead = batch_dies.enqueue("tests:switch")
        batch_add.enqueue(1)
    worker.drain()
    assert calls(client) == [{"callback": "complete", "batch_id": b.id, "total": 2, "succeeded": 1, "failed": 1}]
    assert b.show().failed_ids == [dead.id]


def test_requeue_dead_reopens_the_batch_and_its_callbacks_follow(client, worker):
    with jobctl.batch(on_complete=batch_report, on_success=batch_success) as b:
        dead = batch_dies.enqueue("tests:switch")
    worker.drain()
    client.connection.set("tests:switch", 1)
    assert dead.requeue()
    promoter_pass(client)
    shown = b.show()
    assert (shown.pending, shown.failed, shown.complete, shown.failed_ids) == (1, 0, False, [])
    worker.drain()
    assert dead.status() == "finished"
    assert [(c["callback"], c["succeeded"], c["failed"]) for c in calls(client)] == [
        ("complete", 0, 1),  # the first completion
        ("complete", 1, 0),  # the second: on_complete runs per completion, on_success at the first success
        ("success", 1, 0),
    ]
    assert b.show().callback_ids["complete"] == [f"batch-{b.id}-complete-1", f"batch-{b.id}-complete-2"]


def test_a_job_of_the_batch_adds_jobs_to_it(client, worker):
    with jobctl.batch(on_complete=batch_report) as b:
        batch_nester.enqueue(3)
    worker.drain()
    assert calls(client) == [{"callback": "complete", "batch_id": b.id, "total": 4, "succeeded": 4, "failed": 0}]


def test_an_empty_batch_completes_when_sealed(client, worker):
    with jobctl.batch(on_complete=batch_report, on_success=batch_success) as b:
        pass
    assert b.show().complete
    worker.drain()
    assert {(c["callback"], c["total"]) for c in calls(client)} == {("complete", 0), ("success", 0)}


def test_the_async_form(client, worker):
    async def enqueue() -> str:
        async with jobctl.batch(on_complete=batch_report) as b:
            await batch_add.aenqueue(1)
            await batch_add.aenqueue_many([(2,), (3,)])
        return b.id

    batch_id = asyncio.run(enqueue())
    worker.drain()
    assert calls(client) == [{"callback": "complete", "batch_id": batch_id, "total": 3, "succeeded": 3, "failed": 0}]


def test_jobs_outside_the_block_do_not_join(client, worker):
    with jobctl.batch(on_complete=batch_report) as b:
        batch_add.enqueue(1)
    outside = batch_add.enqueue(2)
    assert client.connection.hget(client.layout.job(outside.id, "default"), "jobctl_batch") is None
    assert b.show().total == 1


def test_bad_callbacks_and_unknown_batches_are_refused_and_write_nothing(client):
    with pytest.raises(UnknownJob, match="unknown job 'nope'"):
        jobctl.batch(on_complete="nope")
    with pytest.raises(UsageError, match="must take the keyword arguments batch_id"):
        jobctl.batch(on_success=batch_jobs.batch_not_a_callback)
    with pytest.raises(UnknownBatch, match="batch 'missing' does not exist"), jobctl.batch("missing"):
        pass
    assert client.connection.keys("*") == []
    with jobctl.batch() as b:
        pass
    with pytest.raises(UnknownBatch, match="is complete"), jobctl.batch(b.id):
        pass
    assert client.connection.keys("rq:job:*") == []


# --- the command line, and real processes -------------------------------------------------------


@pytest.fixture
def batch_project(project):
    shutil.copy(TESTS / "batch_jobs.py", project.path / "batch_jobs.py")
    project.env["JOBCTL_JOBS"] = "sample_jobs,batch_jobs"
    client = Client(project.env["REDIS_URL"], project.path / "queue.yml")
    with testing.default_client(client):
        yield project
    client.close()


def test_enqueue_batch_joins_and_batch_show_and_show_name_it(batch_project, db):
    with jobctl.batch(on_complete=batch_report, description="from the shell") as b:
        job_id = batch_project.enqueue("batch_add", "1", "--batch", b.id)
        lines = batch_project.path / "calls.jsonl"
        lines.write_text('{"args": [2]}\n{"args": [3]}\n')
        assert batch_project.run("enqueue", "batch_add", "--from", str(lines), "--batch", b.id).returncode == 0
    assert batch_project.show(job_id)["batch"] == b.id
    shown = json.loads(batch_project.run("batch", "show", b.id, "--json").stdout)
    assert (shown["total"], shown["pending"], shown["sealed"], shown["complete"]) == (3, 3, True, False)
    assert shown["description"] == "from the shell"
    assert shown["callbacks"] == {"complete": {"job": "batch_report", "job_ids": []}}
    assert batch_project.run("work", "--burst").returncode == 0
    shown = json.loads(batch_project.run("batch", "show", b.id, "--json").stdout)
    assert (shown["pending"], shown["succeeded"], shown["complete"]) == (0, 3, True)
    assert shown["callbacks"]["complete"]["job_ids"] == [f"batch-{b.id}-complete-1"]
    table = batch_project.run("batch", "show", b.id).stdout
    assert "3: 0 pending, 3 finished, 0 failed" in table and f"batch-{b.id}-complete-1" in table
    assert re.search(rf"\bbatch +{b.id} \(jobctl batch show", batch_project.run("show", job_id).stdout)


def test_an_unknown_batch_is_one_line_and_exit_2(batch_project, db):
    for command in (["enqueue", "batch_add", "1", "--batch", "nope"], ["batch", "show", "nope"]):
        result = batch_project.run(*command)
        assert (result.returncode, result.stderr) == (2, "jobctl: error: batch 'nope' does not exist\n")
    assert db.keys("rq:job:*") == []


def test_on_complete_runs_once_after_the_last_job_under_kill_9_on_two_supervisors(batch_project, db):
    batch_project.write("queue.yml", "default: {worker_count: 2, crash_limit: 3}\n")
    client = Client(batch_project.env["REDIS_URL"], batch_project.path / "queue.yml")
    with testing.default_client(client), jobctl.batch(on_complete="batch_report_pending") as b:
        batch_sleep.enqueue_many([(0.01,) for _ in range(500)])
    client.close()
    supervisors = [batch_project.start("work"), batch_project.start("work")]
    chance = random.Random(7)
    kills = 0
    layout = keys.layout_of(db)
    give_up = time.monotonic() + 180  # a batch that never completes fails the test, not hangs the run
    while db.hget(layout.batch(b.id), "complete") != b"1":
        assert time.monotonic() < give_up, f"batch {b.id} never completed: {db.hgetall(layout.batch(b.id))}"
        workers = [pid for supervisor in supervisors for pid in child_pids(supervisor.pid)]
        if workers:
            kill_quietly(chance.choice(workers), signal.SIGKILL)
            kills += 1
        time.sleep(chance.uniform(0.05, 0.3))
    wait_for(lambda: db.llen(CALLS) >= 1, message="the callback to run")
    callback = f"batch-{b.id}-complete-1"
    wait_for(
        lambda: db.hget(layout.job(callback, "default"), "status") == b"finished", message="the callback to finish"
    )
    assert db.zcard(layout.batches_due(b.id)) == 0  # nothing left that could store it again
    (call,) = calls_of(db)
    assert kills > 0
    assert call["pending"] == 0 and call["total"] == 500 and call["succeeded"] + call["failed"] == 500
    ended = sum(db.zcard(layout.ended(status, "default")) for status in ("finished", "failed", "canceled"))
    assert ended == 501  # every job of the batch ended, and the callback once


def calls_of(db) -> list[dict]:
    return [json.loads(raw) for raw in db.lrange(CALLS, 0, -1)]


def test_the_dashboard_links_a_jobs_page_to_its_batchs_page(batch_project, redis_url, monkeypatch):
    monkeypatch.chdir(batch_project.path)
    settings = Settings(
        redis_url=redis_url,
        config_path=str(batch_project.path / "queue.yml"),
        recurring_path=str(batch_project.path / "recurring.yml"),
        job_modules="sample_jobs,batch_jobs",
    )
    with jobctl.batch(on_complete=batch_report, description="nightly sync") as b:
        dead = batch_dies.enqueue("tests:switch")
    testing.Worker().drain()
    app = create_app(Dashboard(settings, Auth("test-token-0123456789"), read_only=True))
    with TestClient(app, base_url="http://localhost:9181", follow_redirects=False) as web:
        web.post("/login", data={"token": "test-token-0123456789", "next": "/"})
        job_page = web.get(f"/jobs/{dead.id}").text
        assert f'href="/batches/{b.id}"' in job_page
        page = web.get(f"/batches/{b.id}")
        assert page.status_code == 200
        for shown in ("nightly sync", "complete", f'href="/jobs/{dead.id}"', f"batch-{b.id}-complete-1"):
            assert shown in page.text
        assert web.get("/batches/nope").status_code == 404


def test_a_callback_this_process_cannot_store_stays_due_and_the_others_are_stored(client):
    with jobctl.batch(on_complete=batch_report) as first:
        pass
    client.connection.hset(client.layout.batch(first.id), "on_complete", "unregistered_here")
    with jobctl.batch(on_complete=batch_report) as second:
        pass
    with pytest.raises(UnknownJob, match="unregistered_here"):
        batches.enqueue_due(client.connection, client.config, "test")
    assert jobctl.get(f"batch-{second.id}-complete-1").status() == "queued"
    with pytest.raises(jobctl.JobNotFound):
        jobctl.get(f"batch-{first.id}-complete-1")
    assert client.connection.zcard(client.layout.batches_due(first.id)) == 1  # it waits for a process that can store it


def test_a_job_of_a_queue_rq_serves_cannot_join_a_batch(client, tmp_path):
    (tmp_path / "queue.yml").write_text(QUEUE_YML + "rq_queue: {engine: rq}\n")
    rq_client = Client(client.url, tmp_path / "queue.yml")
    refused = pytest.raises(UsageError, match="served by RQ's workers, which do not count batches")
    with testing.default_client(rq_client), jobctl.batch() as b, refused:
        batch_add.options(queue="rq_queue").enqueue(1)
    assert b.show().total == 0
    rq_client.close()


def test_an_entry_no_batch_wrote_is_dropped_and_holds_back_no_callback(client):
    with jobctl.batch(on_complete=batch_report) as b:
        pass
    # ahead of the batch's callback in the set it is due in (one Redis: the fleet's; a cluster: the batch's)
    due = client.layout.batches_due(b.id)
    client.connection.zadd(due, {b"not json": 0, b'["b", "sideways", 1, 0, 0, 0]': 0, b"[1]": 0})
    if client.layout.cluster:  # and a batch listed as having callbacks due that has none
        client.connection.zadd(keys.BATCHES_WITH_DUE, {b"no-such-batch": 0})
    assert batches.enqueue_due(client.connection, client.config, "test") == 1
    assert jobctl.get(f"batch-{b.id}-complete-1").status() == "queued"
    assert client.connection.zcard(due) == 0
    assert client.connection.zcard(keys.BATCHES_WITH_DUE) == 0


def test_batch_show_reads_hand_edited_counts_as_zero(batch_project, db):
    db.hset(
        keys.layout_of(db).batch("edited"),
        mapping={"total": "abc", "pending": "-3", "generation": "x", "created_at": "soon"},
    )
    shown = batch_project.run("batch", "show", "edited", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["total"], view["pending"], view["generation"], view["created_at"]) == (0, 0, 0, None)
    assert batch_project.run("batch", "show", "edited").returncode == 0


@pytest.mark.parametrize("spoiled", ["pending", "failed", "total", "generation"])
def test_a_spoiled_count_in_the_batch_leaves_the_job_and_its_dependents_in_their_places(client, worker, spoiled):
    # a counter another tool or a hand wrote as text: the outcome script must not stop halfway
    # (the dead parent in no list but failed, its child deferred for ever)
    with jobctl.batch(on_complete=batch_report) as b:
        dead = batch_dies.enqueue("tests:switch")
    child = batch_add.options(depends_on=dead).enqueue(1)
    client.connection.hset(client.layout.batch(b.id), spoiled, "abc")
    worker.drain()
    assert (dead.status(), child.status()) == ("dead", "canceled")
    assert client.connection.zscore(client.layout.dead("default"), dead.id) is not None
    client.connection.set("tests:switch", 1)
    assert dead.requeue()  # reopening reads the same counts
    worker.drain()
    assert dead.status() == "finished"
    assert b.show().generation >= 1
