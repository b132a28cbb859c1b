"""jobctl on a Redis Cluster (3 masters, started by tests/cluster.py), as a user runs it: the CLI
and the Python API pointed at any node, `jobctl work` processes, a worker killed with -9. And on
one Redis, RQ's layout as it was: RQ's own Job reads what jobctl stores."""

import json
import os
import shutil
import signal

import pytest
import redis
from conftest import QUEUE_YML, TESTS, Project, cluster_queues_yml, descendant_pids, kill_quietly, wait_for

import jobctl
from jobctl.store import keys
from jobctl.store.connection import connect
from jobctl.store.transitions import Finished, GoOn, Transitions

QUEUES_YML = cluster_queues_yml("worker_count: 1, max_retries: 1")


@pytest.fixture
def cproject(cluster_project):
    cluster_project.write("queue.yml", QUEUES_YML)
    return cluster_project


def job_state(node, job_id: str) -> str | None:
    """The job's state as jobctl records it, read in this process (a `show` per poll would keep a
    core busy)."""
    for queue in ("default", "emails", "reports", "bulk"):
        status = node.hget(keys.CLUSTER.job(job_id, queue), "status")
        if status is not None:
            return {"failed": "dead"}.get(status.decode(), status.decode())
    return None


def test_jobs_of_several_queues_run_through_any_node(cproject, redis_cluster, node):
    first = cproject.enqueue("add", "1", "2", "--queue", "emails")
    second = cproject.enqueue("add", "3", "4", "--queue", "reports", env={"REDIS_URL": redis_cluster.urls[1]})
    third = cproject.enqueue("add", "5", "6", "--queue", "bulk", env={"REDIS_URL": redis_cluster.urls[2]})
    # each queue's keys carry its hash tag: the queues spread over the masters
    owners = {node.keyslot(keys.CLUSTER.queue(q)) for q in ("emails", "reports", "bulk")}
    assert len(owners) == 3
    used = [redis.Redis.from_url(url).dbsize() for url in redis_cluster.urls]
    assert sum(1 for count in used if count) >= 2, used

    burst = cproject.run("work", "--burst")
    assert burst.returncode == 0, burst.stderr

    for job_id, result, queue in ((first, 3, "emails"), (second, 7, "reports"), (third, 11, "bulk")):
        job = cproject.show(job_id[:8], env={"REDIS_URL": redis_cluster.urls[2]})
        assert (job["state"], job["result"], job["queue"]) == ("finished", result, queue)
    status = cproject.run("status", "--json")
    assert status.returncode == 0, status.stderr
    counts = {q["name"]: q["finished"] for q in json.loads(status.stdout)["queues"]}
    assert counts == {"default": 0, "emails": 1, "reports": 1, "bulk": 1}
    stats = cproject.run("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    (added,) = [job for job in json.loads(stats.stdout)["jobs"] if job["name"] == "add"]
    # kept per queue on a cluster, added up
    assert (added["runs"], added["successes"], len(added["recent"])) == (3, 3, 3)


def test_retries_dead_requeue_and_cancel(cproject, tmp_path, node):
    counter = tmp_path / "counter"
    flaky = cproject.enqueue("flaky", str(counter), "1", "--queue", "reports")
    doomed = cproject.enqueue("always_fails", "--queue", "emails")
    later = cproject.enqueue("add", "1", "--queue", "bulk", "--in", "1h")
    canceled = cproject.run("cancel", later)
    assert canceled.returncode == 0, canceled.stderr
    assert job_state(node, later) == "canceled"

    assert cproject.run("work", "--burst").returncode == 0
    assert cproject.show(flaky)["state"] == "finished" and cproject.show(flaky)["attempts"] == 2
    dead = cproject.show(doomed)
    assert dead["state"] == "dead" and dead["attempts"] == 2

    requeued = cproject.run("requeue-dead", "--queue", "emails")
    assert requeued.returncode == 0, requeued.stderr
    assert job_state(node, doomed) == "queued"
    assert node.lrange(keys.CLUSTER.queue("emails"), 0, -1) == [doomed.encode()]


def test_scheduled_jobs_are_promoted_per_queue(cproject, node):
    soon = [
        cproject.enqueue("add", str(n), "--queue", queue, "--in", "1s") for n, queue in enumerate(("emails", "bulk"))
    ]
    assert {job_state(node, job_id) for job_id in soon} == {"scheduled"}
    work = cproject.start("work")
    wait_for(lambda: all(job_state(node, job_id) == "finished" for job_id in soon), message="the jobs to run")
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0


def test_dependencies_within_a_queue(cproject, node):
    parent = cproject.enqueue("add", "1", "--queue", "emails")
    child = cproject.enqueue("add", "2", "--queue", "emails", "--depends-on", parent)
    assert job_state(node, child) == "deferred"
    assert cproject.run("work", "--burst").returncode == 0
    assert job_state(node, parent) == job_state(node, child) == "finished"


def test_unique_jobs_and_what_is_refused(cproject):
    first = cproject.enqueue("add", "9", "--queue", "bulk", "--unique")
    again = cproject.run("enqueue", "add", "9", "--queue", "bulk", "--unique")
    assert again.returncode != 0 and first in again.stderr
    batch = cproject.run("enqueue", "add", "1", "--batch", "nightly")  # checked on the batch's slot
    assert batch.returncode == 2
    assert "batch 'nightly' does not exist" in batch.stderr


def test_a_worker_killed_with_9_has_its_job_run_once_by_another(cproject, tmp_path, node):
    marker = tmp_path / "marker"
    work = cproject.start("work")
    victim_job = cproject.enqueue("slow", str(marker), "1", "--queue", "reports")
    victim = int(wait_for(lambda: marker.exists() and marker.read_text(), message="the job to start"))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: job_state(node, victim_job) == "finished", message="the job to run again and finish")
    job = cproject.show(victim_job)
    assert job["crashes"] == 1 and job["attempts"] == 1
    assert job["errors"][0]["error"] == "worker killed by signal 9 (SIGKILL)"
    assert int(marker.read_text()) != victim
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0
    assert not node.smembers(keys.WORKERS)  # every worker unregistered on its way out


def test_the_application_api_through_any_node(cproject, redis_cluster, monkeypatch):
    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    import sample_jobs

    work = cproject.start("work")
    client = jobctl.connect(redis_cluster.urls[1], cproject.path / "queue.yml")
    handle = sample_jobs.add.enqueue(20, 22)
    assert handle.result(timeout=60) == 42
    found = jobctl.get(handle.id[:10])
    assert found.status() == "finished" and found.result(timeout=5) == 42
    assert client.layout is keys.CLUSTER
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0


def test_a_worker_of_several_queues_fetches_them_in_priority_order(cproject, node):
    cproject.write(
        "queue.yml", QUEUES_YML.replace("reports: {worker_count: 1, max_retries: 1}", "reports: {worker_count: 0}")
    )
    low = [cproject.enqueue("add", str(n), "--queue", "reports") for n in range(3)]
    high = [cproject.enqueue("add", str(n), "--queue", "emails") for n in range(3)]
    # one worker serving both queues, emails first: its lists and leases are in both queues' slots
    burst = cproject.run("work", "--burst", "--queue", "emails", "--queue", "reports")
    assert burst.returncode == 0, burst.stderr
    assert "1 serving emails=1, reports=0" in burst.stderr

    def started(job_id: str, queue: str) -> bytes:
        return node.hget(keys.CLUSTER.job(job_id, queue), "started_at")

    assert all(job_state(node, job_id) == "finished" for job_id in low + high)
    assert max(started(job_id, "emails") for job_id in high) < min(started(job_id, "reports") for job_id in low)
    assert not node.smembers(keys.WORKERS)


# --- one Redis: RQ's layout, byte for byte ------------------------------------------------------


def test_one_redis_keeps_rqs_layout(tmp_path, redis_url, db):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    p = Project(tmp_path, redis_url)
    p.write("queue.yml", QUEUE_YML)
    shutil.copy(TESTS / "sample_jobs.py", tmp_path / "sample_jobs.py")
    job_id = p.enqueue("add", "40", "2")
    assert db.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert db.smembers("rq:queues") == {b"rq:queue:default"}
    assert p.run("work", "--burst").returncode == 0
    assert db.exists(f"rq:job:{job_id}", f"rq:results:{job_id}") == 2
    assert db.zscore("rq:finished:default", job_id) is not None
    assert not [key for key in db.scan_iter() if b"{" in key]
    fetched = Job.fetch(job_id, connection=db, serializer=JSONSerializer)
    assert fetched.get_status() == "finished" and fetched.return_value() == 42


def test_pause_resume_many_and_timeouts(cproject, tmp_path, node):
    cproject.write(
        "queue.yml",
        QUEUES_YML.replace("bulk: {worker_count: 1, max_retries: 1}", "bulk: {timeout: 500ms, max_retries: 0}"),
    )
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"args": [1, 2]}\n{"args": [3, 4]}\n')
    many = cproject.run("enqueue", "add", "--from", str(calls), "--queue", "emails")
    assert many.returncode == 0, many.stderr
    assert node.llen(keys.CLUSTER.queue("emails")) == 2
    overrun = cproject.enqueue("slow", str(tmp_path / "marker"), "30", "--queue", "bulk")
    assert cproject.run("pause", "emails").returncode == 0

    assert cproject.run("work", "--burst", "--queue", "bulk").returncode == 0
    job = cproject.show(overrun)
    assert job["state"] == "dead" and "timed out" in job["error"].lower()

    work = cproject.start("work", "--queue", "emails")
    # a worker reads the paused queues when it registers, before its first fetch
    wait_for(lambda: node.smembers(keys.WORKERS), message="the worker to register")
    queued = node.lrange(keys.CLUSTER.queue("emails"), 0, -1)
    assert len(queued) == 2 and job_state(node, queued[0].decode()) == "queued"
    assert cproject.run("resume", "emails").returncode == 0
    wait_for(lambda: all(job_state(node, raw.decode()) == "finished" for raw in queued), message="the jobs to run")
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0


def test_the_asyncio_api_on_a_cluster(cproject, redis_cluster, monkeypatch):
    import asyncio

    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    import sample_jobs

    work = cproject.start("work", "--queue", "default")
    jobctl.connect(redis_cluster.urls[2], cproject.path / "queue.yml")

    async def run() -> list[int]:
        one = await sample_jobs.add.aenqueue(1, 2)
        many = await sample_jobs.add.aenqueue_many([(3, 4), (5, 6)])
        return [await handle.aresult(timeout=60) for handle in (one, *many)]

    assert asyncio.run(run()) == [3, 7, 11]
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0


def test_max_concurrency_per_queue_and_a_slot_given_back_after_kill_9(cproject, tmp_path, node):
    cproject.write(
        "queue.yml",
        QUEUES_YML.replace("reports: {worker_count: 1, max_retries: 1}", "reports: {worker_count: 1, concurrency: 2}"),
    )
    marker = tmp_path / "marker"
    holder = cproject.enqueue("limited_once_slow", str(marker), "--queue", "reports")
    waiting = cproject.enqueue("limited_once_slow", str(marker), "--queue", "reports")
    cproject.start("work", "--queue", "reports")

    def running() -> bool:  # the job writes its pid after making the file: wait for the pid
        return job_state(node, holder) == "started" and marker.exists() and bool(marker.read_text())

    wait_for(running, message="the first job running")
    assert job_state(node, waiting) in ("queued", "scheduled")  # max_concurrency 1 on the queue: it waits
    slots = keys.CLUSTER.slots("limited_once_slow", "reports")
    assert node.hgetall(slots) == {holder.encode(): node.hget(keys.CLUSTER.job(holder, "reports"), "worker_name")}
    os.kill(int(marker.read_text()), signal.SIGKILL)
    wait_for(lambda: job_state(node, holder) == job_state(node, waiting) == "finished", message="both jobs finished")
    assert node.hlen(slots) == 0


def test_dashboard_and_metrics_read_every_queue(cproject, redis_cluster, monkeypatch):
    from starlette.testclient import TestClient

    from jobctl.config.queues import load_queues
    from jobctl.config.settings import Settings
    from jobctl.web.app import create_app
    from jobctl.web.auth import Auth
    from jobctl.web.board import Dashboard
    from jobctl.web.metrics import JobctlCollector

    done = cproject.enqueue("add", "1", "2", "--queue", "reports")
    failed = cproject.enqueue("always_fails", "--queue", "bulk")
    assert cproject.run("work", "--burst").returncode == 0
    monkeypatch.chdir(cproject.path)
    settings = Settings(redis_url=redis_cluster.urls[1], config_path="queue.yml", job_modules="sample_jobs")
    token = "t" * 20
    with TestClient(create_app(Dashboard(settings, Auth(token))), base_url="http://localhost:9181") as client:
        pages = {
            page: client.get(page, headers={"Authorization": f"Bearer {token}"})
            for page in (
                "/",
                "/queues",
                "/workers",
                "/stats",
                "/jobs?state=finished",
                "/jobs?state=dead",
                f"/jobs/{done}",
            )
        }
    assert {page: answer.status_code for page, answer in pages.items()} == dict.fromkeys(pages, 200)
    assert done in pages["/jobs?state=finished"].text and failed in pages["/jobs?state=dead"].text

    collector = JobctlCollector(lambda: connect(redis_cluster.urls[2]), load_queues(str(cproject.path / "queue.yml")))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in collector.collect() for s in m.samples}
    assert samples[("jobctl_redis_up", ())] == 1
    processed = {labels: value for (name, labels), value in samples.items() if name == "jobctl_jobs_processed_total"}
    assert processed == {
        (("job_name", "add"), ("outcome", "finished"), ("queue", "reports")): 1,
        (("job_name", "always_fails"), ("outcome", "failed"), ("queue", "bulk")): 2,
    }


def test_a_host_gone_whole_is_swept_by_another(cproject, tmp_path, node):
    lease = {"JOBCTL_LEASE_TTL": "3"}
    marker = tmp_path / "marker"
    first_host = cproject.start("work", "--queue", "reports", env=lease)
    job_id = cproject.enqueue("slow", str(marker), "1", "--queue", "reports")
    wait_for(lambda: marker.exists() and marker.read_text(), message="the job to start")
    for pid in [*descendant_pids(first_host.pid), first_host.pid]:  # the supervisor and its workers, at once
        kill_quietly(pid, signal.SIGKILL)
    first_host.wait(timeout=10)
    gone = node.smembers(keys.WORKERS)
    assert len(gone) == 1
    second_host = cproject.start("work", "--queue", "reports", env=lease)
    wait_for(lambda: job_state(node, job_id) == "finished", message="the lost worker's job to run again")
    wait_for(lambda: not gone & node.smembers(keys.WORKERS), message="the lost worker to leave RQ's set of workers")
    assert cproject.show(job_id)["crashes"] == 1
    second_host.send_signal(signal.SIGTERM)
    assert second_host.wait(timeout=30) == 0
    assert not node.smembers(keys.WORKERS)


def test_cancel_stops_a_running_job(cproject, tmp_path, node):
    marker = tmp_path / "marker"
    work = cproject.start("work", "--queue", "bulk")
    job_id = cproject.enqueue("slow", str(marker), "60", "--queue", "bulk")
    wait_for(marker.exists, message="the job to start")
    canceled = cproject.run("cancel", job_id[:10], "--json")
    assert canceled.returncode == 0, canceled.stderr
    assert job_state(node, job_id) == "canceled"
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0


def test_a_pool_of_two_queues_records_its_outcomes_queue_by_queue(cproject, tmp_path, node):
    """A worker of 4 threads serving two queues (two slots): the successes of threads that finish
    together are recorded together only within a queue (a call runs on one slot), and every job
    ends finished, once."""
    cproject.write(
        "queue.yml", QUEUES_YML.replace("{worker_count: 1, max_retries: 1}", "{worker_count: 1, concurrency: 4}")
    )
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"args": [n, n]}) + "\n" for n in range(30)))
    for queue in ("emails", "reports"):
        assert cproject.run("enqueue", "add", "--from", str(jobs), "--queue", queue).returncode == 0
    burst = cproject.run("work", "--burst", "--queue", "emails", "--queue", "reports")
    assert burst.returncode == 0, burst.stderr
    for queue in ("emails", "reports"):
        finished = node.zrange(keys.CLUSTER.finished(queue), 0, -1)
        assert len(finished) == 30
        assert {node.hget(keys.CLUSTER.job(job_id.decode(), queue), "status") for job_id in finished} == {b"finished"}
        assert node.llen(keys.CLUSTER.queue(queue)) == 0


def test_outcomes_of_two_queues_recorded_together_each_on_its_slot(cproject, node):
    """Transitions.succeed_many given the successes of jobs of two queues (a pool's threads that
    finished together): each queue's are recorded in a call on its own slot, none goes on."""
    ids = {queue: cproject.enqueue("add", "1", "2", "--queue", queue) for queue in ("emails", "reports")}
    t = Transitions(node)
    for queue in ids:
        node.hset(keys.CLUSTER.worker("w", queue), "jobctl_lease", "token")
    rows = t.fetch("w", "token", ["emails", "reports"], 1e9, 2)
    assert sorted(row[0].decode() for row in rows) == sorted(ids.values())
    done = [Finished(row[0].decode(), row[1].decode(), int(row[2]), b"3") for row in rows]
    reply = t.succeed_many("w", 1e9, done, GoOn(["emails", "reports"]), 2)
    assert reply.rows == [] and reply.started is None
    for queue, job_id in ids.items():
        assert node.hget(keys.CLUSTER.job(job_id, queue), "status") == b"finished"
        assert node.llen(keys.CLUSTER.active("w", queue)) == 0


def test_scripts_run_as_functions_on_their_slots_master_and_load_where_missing(cproject, redis_cluster, monkeypatch):
    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    import sample_jobs

    jobctl.connect(redis_cluster.urls[0], cproject.path / "queue.yml")
    sample_jobs.add.options(queue="emails").enqueue(1, 2)
    masters = redis_cluster.masters()
    # loaded on every master at the first call, not only on the one it needed
    assert all(master.ask("FUNCTION", "LIST") for master in masters)
    home = redis_cluster.master_of(keys.CLUSTER.queue("reports"))
    home.ask("FUNCTION", "FLUSH")  # a master that lost them: a new one after a resharding, a flush
    for master in masters:
        master.ask("CONFIG", "RESETSTAT")
    handles = [sample_jobs.add.options(queue="reports").enqueue(n, n) for n in range(3)]
    handles += sample_jobs.add.options(queue="emails").enqueue_many([(5, 6)])
    assert home.ask("FUNCTION", "LIST")

    calls = {}
    for master in masters:
        for name, counts in master.info("commandstats").items():
            calls[name] = calls.get(name, 0) + counts["calls"]
    # each call an FCALL sent straight to its slot's master: no redirection, no keys asked for,
    # one call refused where the function was missing and made again after the load
    assert calls.get("cmdstat_fcall") == 5, calls
    assert calls.get("cmdstat_function|load") == 3, calls
    assert not any(name in calls for name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_command|getkeys"))
    burst = cproject.run("work", "--burst", "--queue", "reports", "--queue", "emails")
    assert burst.returncode == 0, burst.stderr
    assert [handle.result(timeout=30) for handle in handles] == [0, 2, 4, 11]


def replica_has(redis_cluster, key: str) -> bool:
    """Whether the replica of the master serving `key` has it now."""
    replica = redis_cluster.replica_of(redis_cluster.master_of(key))
    with replica.client() as client:
        client.execute_command("READONLY")
        return bool(client.exists(key))


def test_enqueues_wait_for_replicas_when_asked(cproject, redis_cluster, monkeypatch):
    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    import sample_jobs

    # each master has one replica: an enqueue the replica acknowledged is on it when it returns
    one = {"JOBCTL_ENQUEUE_REPLICAS": "1"}
    job_id = cproject.enqueue("add", "1", "2", "--queue", "emails", env=one)
    assert replica_has(redis_cluster, keys.CLUSTER.job(job_id, "emails"))

    # two asked for, one there: the caller is told, the job is stored on its master (and runs)
    two = {"JOBCTL_ENQUEUE_REPLICAS": "2", "JOBCTL_ENQUEUE_REPLICAS_TIMEOUT": "200ms"}
    refused = cproject.run("enqueue", "add", "3", "4", "--queue", "reports", env=two)
    assert refused.returncode == 1, refused.stderr
    assert "1 of the 2 replicas asked for (JOBCTL_ENQUEUE_REPLICAS) had it after 200ms" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    monkeypatch.setenv("JOBCTL_ENQUEUE_REPLICAS", "2")
    monkeypatch.setenv("JOBCTL_ENQUEUE_REPLICAS_TIMEOUT", "100ms")
    jobctl.connect(redis_cluster.urls[1], cproject.path / "queue.yml")
    with pytest.raises(jobctl.NotReplicated, match=r"^job [\w-]+ stored on the master, but 1 of the 2"):
        sample_jobs.add.options(queue="bulk").enqueue(5, 6)
    with pytest.raises(jobctl.NotReplicated, match=r"^the jobs of queue 'bulk' stored on the master"):
        sample_jobs.add.options(queue="bulk").enqueue_many([(7, 8), (9, 10)])
    monkeypatch.setenv("JOBCTL_ENQUEUE_REPLICAS", "1")
    jobctl.connect(redis_cluster.urls[1], cproject.path / "queue.yml")
    many = sample_jobs.add.options(queue="bulk").enqueue_many([(11, 12)])
    assert replica_has(redis_cluster, keys.CLUSTER.job(many[0].id, "bulk"))

    burst = cproject.run("work", "--burst", "--queue", "emails", "--queue", "reports", "--queue", "bulk")
    assert burst.returncode == 0, burst.stderr
    status = json.loads(cproject.run("status", "--json").stdout)
    assert {q["name"]: q["finished"] for q in status["queues"]} == {"default": 0, "emails": 1, "reports": 1, "bulk": 4}


def test_enqueues_wait_for_replicas_on_one_redis_too(tmp_path, redis_url, db, monkeypatch):
    # the embedded test Redis has no replica: WAIT answers 0 at once with 0 asked for, after the timeout with 1
    monkeypatch.setenv("JOBCTL_ENQUEUE_REPLICAS", "1")
    monkeypatch.setenv("JOBCTL_ENQUEUE_REPLICAS_TIMEOUT", "50ms")
    (tmp_path / "queue.yml").write_text("default: {}\n")
    jobctl.connect(redis_url, tmp_path / "queue.yml")

    @jobctl.job(name="replicated_add")
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(jobctl.NotReplicated, match="0 of the 1 replicas asked for"):
        add.enqueue(1, 2)
    assert db.llen(keys.queue("default")) == 1


def test_logs_read_a_jobs_output_in_its_queues_slot(cproject, tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("")
    job_id = cproject.enqueue("gated", str(tmp_path / "marker"), str(gate), "hello from emails", "--queue", "emails")
    assert cproject.run("work", "--burst").returncode == 0
    logs = cproject.run("logs", job_id[:8])
    assert logs.returncode == 0, logs.stderr
    assert "hello from emails" in logs.stdout


def test_a_job_of_a_configured_queue_rq_does_not_list_is_still_found(cproject, redis_cluster, node, monkeypatch):
    """A job's keys name its queue on a cluster, so an id alone is looked up on the known queues:
    RQ's set of them and queue.yml's. With that set emptied or rewritten (by hand, by another
    tool) `show`, `logs`, `cancel` and jobctl.get still find a job of a configured queue."""
    job_id = cproject.enqueue("add", "1", "2", "--queue", "reports")
    queued = cproject.enqueue("add", "3", "4", "--queue", "bulk")
    assert cproject.run("work", "--burst", "--queue", "reports").returncode == 0
    node.delete(keys.QUEUES)
    node.set(keys.QUEUES, "not a set")
    shown = cproject.show(job_id)
    assert (shown["state"], shown["queue"], shown["result"]) == ("finished", "reports", 3)
    assert cproject.run("logs", job_id).returncode == 0
    monkeypatch.chdir(cproject.path)
    jobctl.connect(redis_cluster.urls[2], cproject.path / "queue.yml")
    assert jobctl.get(job_id).result(timeout=5) == 3
    canceled = cproject.run("cancel", queued[:8])
    assert canceled.returncode == 0, canceled.stderr
    assert job_state(node, queued) == "canceled"


def test_a_url_of_several_nodes_finds_the_cluster_with_the_first_one_down(cproject, redis_cluster, node):
    master = redis_cluster.master_of(keys.CLUSTER.queue("emails"))
    replica = redis_cluster.replica_of(master)
    os.kill(replica.pid, signal.SIGKILL)  # the first node named: down when the processes start
    replica.process.wait()
    several = {"REDIS_URL": f"redis://{replica.address},{master.address}"}
    job_id = cproject.enqueue("add", "1", "2", "--queue", "emails", env=several)
    burst = cproject.run("work", "--burst", "--queue", "emails", env=several)
    assert burst.returncode == 0, burst.stderr
    assert cproject.show(job_id, env=several)["result"] == 3

    bad = cproject.run("status", env={"REDIS_URL": f"redis://{master.address},nowhere"})
    assert bad.returncode == 2
    expected = (
        f"jobctl: error: invalid Redis URL 'redis://{master.address},nowhere': "
        "bad cluster node 'nowhere': expected host:port, as in redis://host1:7000,host2:7000"
    )
    assert bad.stderr.strip().splitlines() == [expected]


def test_breakers_are_kept_per_queue_and_shown_with_it(cproject, tmp_path):
    """A breaker used in a job's code (`with jobctl.breaker`) and one attached with @job(breaker=)
    count on the job's queue's slot; `status` names the queue a breaker is open on."""
    cproject.write(
        "queue.yml",
        QUEUES_YML + "breakers:\n  store: {failures: 2, window: 60s, cooldown: 1h, on: [ConnectionError]}\n",
    )
    shutil.copy(TESTS / "breaker_jobs.py", cproject.path / "breaker_jobs.py")
    mode, log = tmp_path / "mode", tmp_path / "log"
    mode.write_text("fail")
    jobs = {"JOBCTL_JOBS": "breaker_jobs"}
    # two failures on emails open it (one process for both enqueues, one worker: the jobs' queue's)
    cproject.write("calls.jsonl", (json.dumps({"args": [str(mode), str(log)]}) + "\n") * 2)
    failing = cproject.run("enqueue", "store_block", "--from", "calls.jsonl", "--queue", "emails", env=jobs)
    assert failing.returncode == 0, failing.stderr
    assert cproject.run("work", "--burst", "--queue", "emails", env=jobs).returncode == 0
    held_back = cproject.run("enqueue", "store_call", str(mode), str(log), "--queue", "emails", env=jobs)
    elsewhere = cproject.run("enqueue", "store_call", str(mode), str(log), "--queue", "reports", env=jobs)
    status = cproject.run("status", "--json", env=jobs)
    assert status.returncode == 0, status.stderr
    shown = {(b["name"], b["queue"]): b["state"] for b in json.loads(status.stdout)["breakers"]}
    assert shown == {("store", "emails"): "open"}
    assert "store on emails" in cproject.run_here("status", env=jobs).stdout  # status imports no job module

    assert cproject.run("work", "--burst", "--queue", "reports", env=jobs).returncode == 0
    # open on emails only: the job on reports ran (and failed), the one on emails waits
    assert cproject.show(elsewhere.stdout.strip(), env=jobs)["state"] == "dead"
    assert cproject.show(held_back.stdout.strip(), env=jobs)["state"] in ("queued", "scheduled")


def test_the_in_process_test_worker_runs_jobs_of_several_queues(cproject, redis_cluster, monkeypatch):
    """jobctl.testing.Worker on a cluster client: due scheduled jobs promoted per queue, each
    queue's jobs run in this process."""
    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    import sample_jobs

    from jobctl import testing

    client = jobctl.connect(redis_cluster.urls[2], cproject.path / "queue.yml")
    now = sample_jobs.add.options(queue="emails").enqueue(1, 2)
    later = sample_jobs.add.options(queue="reports").enqueue_in(3600, 3, 4)
    worker = testing.Worker(client=client)
    assert worker.drain() == 1
    assert now.result(timeout=5) == 3 and later.status() == "scheduled"
    assert worker.drain(advance=3700) == 1
    assert later.result(timeout=5) == 7


def test_rqs_current_job_is_none_on_a_cluster(cproject, redis_cluster, monkeypatch):
    """RQ's Job reads RQ's key names, which a cluster's layout does not have: a job asking RQ for
    itself hears None instead of failing."""
    monkeypatch.chdir(cproject.path)
    monkeypatch.syspath_prepend(str(cproject.path))
    shutil.copy(TESTS / "rq_api_jobs.py", cproject.path / "rq_api_jobs.py")
    import rq_api_jobs

    from jobctl import testing

    client = jobctl.connect(redis_cluster.urls[0], cproject.path / "queue.yml")
    handle = rq_api_jobs.current_id_or_none.options(queue="emails").enqueue()
    assert testing.Worker(client=client).drain() == 1
    assert handle.result(timeout=5) is None
