"""What spans queues on a Redis Cluster (tests/cluster.py's 3 masters), as a user runs it: recurring
jobs of two queues under two schedulers, dependencies whose parent and child are on different
queues (settled through the outboxes the promoter delivers), an outbox entry applied twice, and
batches whose jobs are on several queues."""

import asyncio
import json
import re
import shutil
import time

import pytest
import sample_jobs
from conftest import TESTS, cluster_queues_yml, stop, wait_for
from starlette.testclient import TestClient

import jobctl
from jobctl import testing
from jobctl.api import batches
from jobctl.api.client import Client
from jobctl.config.settings import Settings
from jobctl.errors import DuplicateJob
from jobctl.store import keys
from jobctl.store.connection import connect
from jobctl.store.transitions import Transitions
from jobctl.web.app import create_app
from jobctl.web.auth import Auth
from jobctl.web.board import Dashboard

QUEUES_YML = cluster_queues_yml(
    "worker_count: 1, max_retries: 0", "one: {worker_count: 1}\n", "three: {worker_count: 1}\n"
)


@pytest.fixture
def cproject(cluster_project):
    cluster_project.write("queue.yml", QUEUES_YML)
    return cluster_project


def state(node, job_id: str, queue: str) -> str | None:
    status = node.hget(keys.CLUSTER.job(job_id, queue), "status")
    return status.decode() if status is not None else None


def lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def parent_then_child_run(cproject, node, ran, parent: str, child: tuple[str, str]) -> None:
    """jobctl work until the child (id, queue) of `parent` (on emails) finished: the parent ran
    first and finished, leaving no list, and no worker died."""
    child_id, child_queue = child
    work = cproject.start("work")
    wait_for(lambda: state(node, child_id, child_queue) == "finished", timeout=30, message="the child to run")
    log = stop(work)
    assert "worker exited" not in log and "Traceback" not in log, log
    assert state(node, parent, "emails") == "finished"
    assert not node.zcard(keys.CLUSTER.started("emails"))
    assert lines(ran) == ["parent", "child"]


def test_two_schedulers_enqueue_each_due_time_of_each_queue_once(cproject, tmp_path, redis_cluster):
    ran = {name: tmp_path / f"{name}.txt" for name in ("tick", "tock")}
    cproject.write(
        "recurring.yml",
        "".join(
            f"{name}:\n  job: record\n  args: [{str(ran[name])!r}, {name!r}]\n  queue: {queue}\n"
            "  schedule: every 1 second\n"
            for name, queue in (("tick", "emails"), ("tock", "reports"))
        ),
    )
    # the two schedulers talk to two different nodes
    schedulers = [cproject.start("scheduler", env={"REDIS_URL": url}) for url in redis_cluster.urls[:2]]
    work = cproject.start("work")

    def runs(name: str) -> int:
        return len(ran[name].read_text().split()) if ran[name].exists() else 0

    wait_for(lambda: min(runs("tick"), runs("tock")) >= 4, timeout=30, message="four runs of each entry")
    logs = "".join(stop(s) for s in schedulers)
    for name in ("tick", "tock"):
        enqueued = [int(due) for due in re.findall(rf"enqueued cron-{name}-(\d+)", logs)]
        # each due time enqueued once, by one of the two, none skipped
        assert sorted(enqueued) == list(range(min(enqueued), min(enqueued) + len(enqueued))), enqueued
    assert {"tick", "tock"} <= set(re.findall(r"scheduler \S+: (\w+): enqueued", logs))
    wait_for(
        lambda: runs("tick") + runs("tock") == len(re.findall(r"enqueued cron-", logs)), message="every run to end"
    )
    stop(work)
    # a run is on its entry's queue: its claim and its record are in that queue's slot
    node = redis_cluster.client()
    due = int(re.findall(r"enqueued cron-tick-(\d+)", logs)[0])
    assert node.hget(keys.CLUSTER.job(f"cron-tick-{due}", "emails"), "status") == "finished"
    assert node.exists(keys.CLUSTER.scheduler_claim("tick", due, "emails")) == 1


def test_a_chain_across_three_queues_on_three_masters_runs_in_order(cproject, tmp_path, node):
    ran = tmp_path / "ran.txt"
    assert (
        len({node.get_node_from_key(keys.CLUSTER.queue(q)).name for q in ("emails", "one", "three")}) == 3
    )  # three masters
    first = cproject.enqueue("record", str(ran), "first", "--queue", "emails", "--in", "1s")
    second = cproject.enqueue("record", str(ran), "second", "--queue", "one", "--depends-on", first)
    third = cproject.enqueue("record", str(ran), "third", "--queue", "three", "--depends-on", second)
    assert (state(node, second, "one"), state(node, third, "three")) == ("deferred", "deferred")
    work = cproject.start("work")
    wait_for(lambda: state(node, third, "three") == "finished", timeout=30, message="the chain to finish")
    stop(work)
    assert lines(ran) == ["first", "second", "third"]
    # every entry delivered and removed; no remote parent left waiting
    assert not any(node.llen(keys.CLUSTER.outbox(q)) for q in ("emails", "one", "three"))
    assert not node.exists(keys.CLUSTER.remote_parents(third, "three"))


def test_a_dead_parent_cancels_its_children_across_queues_but_not_one_that_allows_failure(cproject, tmp_path, node):
    ran = tmp_path / "ran.txt"
    parent = cproject.enqueue("always_fails", "--queue", "emails")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    grandchild = cproject.enqueue("record", str(ran), "grandchild", "--queue", "bulk", "--depends-on", child)
    tolerant = cproject.enqueue(
        "record", str(ran), "tolerant", "--queue", "bulk", "--depends-on", parent, "--allow-failure"
    )
    work = cproject.start("work")
    wait_for(
        lambda: state(node, grandchild, "bulk") == "canceled" and state(node, tolerant, "bulk") == "finished",
        timeout=30,
        message="the cancellations to reach bulk",
    )
    # a parent that ended before its child was enqueued: the child hears of it all the same
    late = cproject.enqueue("record", str(ran), "late", "--queue", "reports", "--depends-on", tolerant)
    doomed = cproject.enqueue("record", str(ran), "doomed", "--queue", "reports", "--depends-on", parent)
    wait_for(
        lambda: state(node, late, "reports") == "finished" and state(node, doomed, "reports") == "canceled",
        timeout=30,
        message="the children of ended parents to settle",
    )
    stop(work)
    assert lines(ran) == ["tolerant", "late"]
    shown = cproject.show(child)
    assert (shown["state"], state(node, parent, "emails")) == ("canceled", "failed")
    reasons = {
        job_id: node.hget(keys.CLUSTER.job(job_id, queue), "jobctl_reason").decode()
        for job_id, queue in ((child, "reports"), (grandchild, "bulk"))
    }
    assert reasons == {child: f"parent {parent} is dead", grandchild: f"parent {child} is canceled"}


def test_requeue_dead_of_a_parent_brings_back_the_children_its_death_canceled_on_other_queues(cproject, tmp_path, node):
    ran, later = tmp_path / "ran.txt", tmp_path / "later"
    parent = cproject.enqueue("record", str(later / "ran.txt"), "parent", "--queue", "emails")  # no such directory
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    grandchild = cproject.enqueue("record", str(ran), "grandchild", "--queue", "bulk", "--depends-on", child)
    sibling = cproject.enqueue("record", str(ran), "sibling", "--queue", "emails", "--depends-on", parent)
    work = cproject.start("work")
    wait_for(lambda: state(node, grandchild, "bulk") == "canceled", timeout=30, message="the cascade to reach bulk")
    assert (state(node, parent, "emails"), state(node, sibling, "emails")) == ("failed", "canceled")
    later.mkdir()
    assert cproject.run("requeue-dead", "--job-id", parent).returncode == 0
    wait_for(lambda: state(node, grandchild, "bulk") == "finished", timeout=30, message="the children to come back")
    stop(work)
    assert lines(later / "ran.txt") == ["parent"]
    assert lines(ran) in (
        ["child", "grandchild", "sibling"],
        ["sibling", "child", "grandchild"],
        ["child", "sibling", "grandchild"],
    )
    assert state(node, child, "reports") == state(node, sibling, "emails") == "finished"


def test_requeue_dead_brings_back_a_child_that_joined_its_parent_after_the_death(cproject, tmp_path, node):
    """A child of another queue whose link reaches its parent after the parent died (enqueued
    then, or linked by a promoter pass slower than the parent's worker) is canceled with it, and
    comes back with it: requeue-dead finds it among the parent's remote dependents."""
    ran, later = tmp_path / "ran.txt", tmp_path / "later"
    work = cproject.start("work")
    parent = cproject.enqueue("record", str(later / "ran.txt"), "parent", "--queue", "emails")  # no such directory
    wait_for(lambda: state(node, parent, "emails") == "failed", timeout=30, message="the parent to die")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    wait_for(lambda: state(node, child, "reports") == "canceled", timeout=30, message="the child canceled with it")
    later.mkdir()
    assert cproject.run("requeue-dead", "--job-id", parent).returncode == 0
    wait_for(lambda: state(node, child, "reports") == "finished", timeout=30, message="the child to come back")
    stop(work)
    assert (lines(later / "ran.txt"), lines(ran)) == (["parent"], ["child"])


def test_an_outbox_entry_applied_twice_runs_nothing_twice(cproject, tmp_path, node):
    """What a promoter killed -9 between applying entries and removing them leaves: the entries,
    applied again by the next promoter."""
    ran = tmp_path / "ran.txt"
    parent = cproject.enqueue("record", str(ran), "parent", "--queue", "emails")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    scripts = Transitions(node)

    def deliver_twice(queue: str) -> tuple[int, int]:
        entries = node.lrange(keys.CLUSTER.outbox(queue), 0, -1)
        assert entries
        first = scripts.deliver(queue, time.time())
        node.rpush(keys.CLUSTER.outbox(queue), *entries)  # as if never removed
        return first, scripts.deliver(queue, time.time())

    assert deliver_twice("reports") == (1, 0)  # the child joins its parent's remote dependents once
    assert cproject.run("work", "--burst", "--queue", "emails").returncode == 0
    # the parent's outcome, delivered by the burst's own promoter or, if it stopped first, here
    assert scripts.deliver("emails", time.time()) in (0, 1)
    assert node.lrange(keys.CLUSTER.queue("reports"), 0, -1) == [child.encode()]
    settled = {"kind": "settle", "job": child, "queue": "reports", "parent": parent, "parent_queue": "emails"}
    node.rpush(keys.CLUSTER.outbox("emails"), json.dumps({**settled, "status": "finished"}))  # delivered again
    assert scripts.deliver("emails", time.time()) == 0
    assert node.lrange(keys.CLUSTER.queue("reports"), 0, -1) == [child.encode()]
    assert cproject.run("work", "--burst", "--queue", "reports").returncode == 0
    assert lines(ran) == ["parent", "child"]
    assert scripts.deliver("reports", time.time()) == scripts.deliver("emails", time.time()) == 0


def test_a_stale_promoter_applies_no_death_after_the_revival_that_followed_it(cproject, tmp_path, node):
    """A promoter that read its outbox (a parent's death, for a child on another queue), stalled
    past its lease and applies what it read after the next promoter went on: the parent was
    requeued meanwhile and its child came back; the stale death must not cancel the child again
    (it would never run, though its parent finishes)."""
    from jobctl.config.queues import load_queues
    from jobctl.runtime.worker import Worker

    ran, later = tmp_path / "ran.txt", tmp_path / "later"
    parent = cproject.enqueue("record", str(later / "ran.txt"), "parent", "--queue", "emails")  # no such directory
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    scripts = Transitions(node)
    scripts.deliver("reports", time.time())  # the child's link: the parent knows of it
    config = load_queues(cproject.path / "queue.yml")
    # the parent dies in a worker of this process: no promoter delivers its death yet
    Worker(node, config.select(["emails"]), config=config, burst=True, capture_output=False).run()
    assert state(node, parent, "emails") == "failed"
    read_by_the_stale_promoter = node.lrange(keys.CLUSTER.outbox("emails"), 0, -1)
    assert read_by_the_stale_promoter
    assert scripts.deliver("emails", time.time()) == 1
    assert state(node, child, "reports") == "canceled"
    later.mkdir()
    assert cproject.run("requeue-dead", "--job-id", parent).returncode == 0
    assert scripts.deliver("emails", time.time()) == 1  # the revival: the child waits on it again
    assert state(node, child, "reports") == "deferred"
    node.rpush(keys.CLUSTER.outbox("emails"), *read_by_the_stale_promoter)  # applied late
    assert scripts.deliver("emails", time.time()) == 0
    assert state(node, child, "reports") == "deferred"
    work = cproject.start("work")
    wait_for(lambda: state(node, child, "reports") == "finished", timeout=30, message="the child to run")
    stop(work)
    assert (lines(later / "ran.txt"), lines(ran)) == (["parent"], ["child"])


def test_an_entry_for_a_job_deleted_since_writes_nothing(cproject, node):
    """A settle or revive that reaches a job's slot after the job was deleted (its record swept,
    or another tool's entry) changes nothing and leaves no key behind."""
    scripts = Transitions(node)
    for kind, status in (("settle", "failed"), ("revive", "queued")):
        entry = {"kind": kind, "job": "gone", "queue": "reports", "parent": "p", "parent_queue": "emails"}
        node.rpush(keys.CLUSTER.outbox("emails"), json.dumps({**entry, "status": status, "revivals": 3}))
        assert scripts.deliver("emails", time.time()) == 0
    assert node.keys(keys.CLUSTER.job("gone", "reports") + "*") == []


# --- batches: the batch in its own slot, its jobs on any queue --------------------------------


@pytest.fixture
def app(cproject, redis_cluster):
    """The application's side in this process: a client of the cluster with the project's
    queue.yml, and the sample jobs registered (the callbacks are echo_kwargs: its result is what
    it was called with)."""
    import sample_jobs  # noqa: F401  (registers the sample jobs, as the project's processes do)

    client = Client(redis_cluster.url, cproject.path / "queue.yml")
    with testing.default_client(client):
        yield client
    client.close()


def callback(cproject, batch_id: str, kind: str, generation: int) -> dict | None:
    """The arguments a batch callback (echo_kwargs) ran with, once it finished; None before."""
    job_id = keys.batch_callback_id(batch_id, kind, generation)
    shown = cproject.run_here("show", job_id, "--json")
    if shown.returncode != 0 or json.loads(shown.stdout)["state"] != "finished":
        return None
    return json.loads(json.loads(shown.stdout)["result"])


def finished_callback(cproject, batch_id: str, kind: str, generation: int = 1) -> dict:
    """The arguments of a batch callback once it finished, waited for by reading its status on
    one client (a `show` per poll, even in this process, made a cluster client each time), then
    read with `show`."""
    job = keys.CLUSTER.job(keys.batch_callback_id(batch_id, kind, generation), "default")
    reader = connect(cproject.env["REDIS_URL"])
    try:
        wait_for(lambda: reader.hget(job, "status") == b"finished", timeout=30, message=f"on_{kind}")
    finally:
        reader.close()
    found = callback(cproject, batch_id, kind, generation)
    assert found is not None
    return found


def test_a_batch_over_three_masters_completes_once_with_its_callbacks(cproject, app, tmp_path, node):
    ran = tmp_path / "ran.txt"
    queues = ("emails", "one", "three")
    (tmp_path / "calls.jsonl").write_text("".join(json.dumps({"args": [str(ran), f"from-{n}"]}) + "\n" for n in (1, 2)))
    with jobctl.batch(on_complete="echo_kwargs", on_success="echo_kwargs", description="spread") as b:
        handles = [sample_jobs.record.options(queue=q).enqueue(str(ran), q) for q in queues]
        handles += sample_jobs.record.options(queue="bulk").enqueue_many([(str(ran), f"many-{n}") for n in (1, 2)])
        by_cli = cproject.enqueue("record", str(ran), "cli", "--queue", "reports", "--batch", b.id)
        from_file = cproject.run(
            "enqueue", "record", "--from", "calls.jsonl", "--queue", "bulk", "--batch", b.id, "--json"
        )
        assert from_file.returncode == 0, from_file.stderr
    slots = {node.get_node_from_key(key).name for key in (keys.CLUSTER.batch(b.id), *map(keys.CLUSTER.queue, queues))}
    assert len(slots) >= 3  # the jobs' queues on three masters, the batch in a slot of its own
    assert (b.show().total, b.show().pending, b.show().sealed) == (8, 8, True)
    work = cproject.start("work")
    done = finished_callback(cproject, b.id, "complete")
    assert done["kwargs"] == {"batch_id": b.id, "total": 8, "succeeded": 8, "failed": 0}
    assert finished_callback(cproject, b.id, "success")["kwargs"] == done["kwargs"]
    time.sleep(1)  # a few promoter passes more: nothing completes a second time
    stop(work)
    assert sorted(lines(ran)) == sorted([*queues, "many-1", "many-2", "cli", "from-1", "from-2"])
    view = b.show()
    assert (view.complete, view.generation, view.pending, view.succeeded) == (True, 1, 0, 8)
    callbacks = [
        keys.CLUSTER.job(keys.batch_callback_id(b.id, kind, n), "default")
        for kind in ("complete", "success")
        for n in (1, 2)
    ]
    assert [node.exists(key) for key in callbacks] == [1, 0, 1, 0]
    assert not any(node.llen(keys.CLUSTER.outbox(q)) for q in (*queues, "reports", "bulk"))
    assert {h.id for h in handles} | {by_cli, *json.loads(from_file.stdout)["ids"]} == set(b.job_ids())
    # what a user reads: batch show, and the batch a job names
    shown = cproject.run_here("batch", "show", b.id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert {k: json.loads(shown.stdout)[k] for k in ("total", "succeeded", "failed", "complete")} == {
        "total": 8,
        "succeeded": 8,
        "failed": 0,
        "complete": True,
    }
    assert cproject.show(handles[1].id)["batch"] == b.id


def test_a_job_of_the_batch_adds_jobs_to_it_from_its_worker(cproject, app, node):
    import batch_jobs

    shutil.copy(TESTS / "batch_jobs.py", cproject.path / "batch_jobs.py")
    cproject.env["JOBCTL_JOBS"] = "sample_jobs,batch_jobs"
    with jobctl.batch(on_complete="echo_kwargs") as b:
        batch_jobs.batch_nester.options(queue="three").enqueue(3)  # its 3 jobs go to 'default'
    work = cproject.start("work")
    done = finished_callback(cproject, b.id, "complete")
    stop(work)
    assert done["kwargs"] == {"batch_id": b.id, "total": 4, "succeeded": 4, "failed": 0}
    assert b.show().generation == 1


def test_a_batch_under_the_in_process_test_worker(cproject, app, node):
    """jobctl.testing.Worker stores a completed batch's callbacks as the supervisor does; an
    enqueue refused after its job joined the batch leaves it again."""
    with jobctl.batch(on_complete="echo_kwargs", on_success="echo_kwargs") as b:
        handles = [sample_jobs.add.options(queue=q).enqueue(n, 1) for n, q in enumerate(("emails", "one"))]
        handles.append(sample_jobs.add.options(queue="three", unique=True).enqueue(2, 1))
        with pytest.raises(DuplicateJob):  # a copy of an active unique job: joined, refused, left
            sample_jobs.add.options(queue="three", unique=True).enqueue(2, 1)
        with pytest.raises(DuplicateJob):  # an id already of the batch: joins once, and stays
            sample_jobs.add.options(queue="one", job_id=handles[1].id).enqueue(9, 9)
    assert (b.show().total, b.show().pending, len(b.job_ids())) == (3, 3, 3)
    worker = testing.Worker(client=app)
    worker.drain()
    assert [h.result(timeout=5) for h in handles] == [1, 2, 3]
    worker.drain()  # the last outcome delivered, the callbacks stored and run
    for kind in ("complete", "success"):
        assert callback(cproject, b.id, kind, 1)["kwargs"] == {
            "batch_id": b.id,
            "total": 3,
            "succeeded": 3,
            "failed": 0,
        }


def test_a_failed_job_is_counted_and_requeue_dead_reopens_the_batch(cproject, app, tmp_path, node, redis_cluster):
    ran = tmp_path / "ran.txt"
    with jobctl.batch(on_complete="echo_kwargs", on_success="echo_kwargs") as b:
        sample_jobs.record.options(queue="emails").enqueue(str(ran), "emails")
        dead = sample_jobs.always_fails.options(queue="one").enqueue()
    work = cproject.start("work")
    done = finished_callback(cproject, b.id, "complete")
    assert done["kwargs"] == {"batch_id": b.id, "total": 2, "succeeded": 1, "failed": 1}
    view = b.show()
    assert (view.failed, view.failed_ids, view.complete) == (1, [dead.id], True)
    assert callback(cproject, b.id, "success", 1) is None and not node.exists(
        keys.CLUSTER.job(f"batch-{b.id}-success-1", "default")
    )
    # the dashboard: the dead job's page links to its batch's, which lists it
    settings = Settings(
        redis_url=redis_cluster.url, config_path=str(cproject.path / "queue.yml"), job_modules="sample_jobs"
    )
    with TestClient(
        create_app(Dashboard(settings, Auth("test-token-0123456789"), read_only=True)), base_url="http://localhost:9181"
    ) as web:
        web.post("/login", data={"token": "test-token-0123456789", "next": "/"})
        assert f'href="/batches/{b.id}"' in web.get(f"/jobs/{dead.id}").text
        page = web.get(f"/batches/{b.id}")
        assert page.status_code == 200
        assert f'href="/jobs/{dead.id}"' in page.text and f"batch-{b.id}-complete-1" in page.text
    # the dead job back: the batch is open again, and its next completion calls on_complete again
    assert cproject.run("requeue-dead", "--job-id", dead.id).returncode == 0
    again = finished_callback(cproject, b.id, "complete", 2)
    stop(work)
    assert again["kwargs"] == {"batch_id": b.id, "total": 2, "succeeded": 1, "failed": 1}
    assert (b.show().generation, b.show().failed_ids) == (2, [dead.id])


def test_a_batch_sealed_after_its_jobs_ended_completes_at_its_seal(cproject, app, tmp_path, node):
    ran = tmp_path / "ran.txt"
    work = cproject.start("work")
    with jobctl.batch(on_complete="echo_kwargs") as b:
        handles = [sample_jobs.record.options(queue=q).enqueue(str(ran), q) for q in ("emails", "three")]
        wait_for(lambda: b.show().pending == 0, timeout=30, message="both outcomes to reach the batch")
        assert not b.show().complete  # not sealed yet
    done = finished_callback(cproject, b.id, "complete")
    stop(work)
    assert done["kwargs"] == {"batch_id": b.id, "total": 2, "succeeded": 2, "failed": 0}
    assert all(h.status() == "finished" for h in handles)


def test_a_batch_entry_delivered_twice_changes_nothing(cproject, app, tmp_path, node):
    ran = tmp_path / "ran.txt"
    with jobctl.batch(on_complete="echo_kwargs") as b:
        job = sample_jobs.record.options(queue="emails").enqueue(str(ran), "emails")
        other = sample_jobs.record.options(queue="one").enqueue(str(ran), "one")
    scripts = Transitions(node)
    assert cproject.run("work", "--burst", "--queue", "emails").returncode == 0
    entry = {"kind": "batch", "op": "succeeded", "job": job.id, "batch": b.id}
    # the outcome, delivered by the burst's own promoter or, if it stopped first, here
    scripts.deliver("emails", time.time())
    counted = b.show()
    assert (counted.pending, counted.succeeded) == (1, 1)
    for replayed in (entry, {**entry, "op": "failed"}, {**entry, "op": "reopened"}):
        node.rpush(keys.CLUSTER.outbox("emails"), json.dumps(replayed))
        assert scripts.deliver("emails", time.time()) == 0
    assert b.show() == counted
    assert cproject.run("work", "--burst", "--queue", "one").returncode == 0
    scripts.deliver("one", time.time())
    assert (b.show().complete, b.show().generation) == (True, 1)
    node.rpush(keys.CLUSTER.outbox("one"), json.dumps({**entry, "job": other.id}))
    assert scripts.deliver("one", time.time()) == 0
    assert (b.show().generation, b.show().succeeded, b.show().pending) == (1, 2, 0)
    # on_complete stored once (by the burst's promoter, or here), and nothing is due any more
    assert batches.enqueue_due(node, app.config, "test") in (0, 1)
    assert batches.enqueue_due(node, app.config, "test") == 0
    stored = [keys.CLUSTER.job(keys.batch_callback_id(b.id, "complete", n), "default") for n in (1, 2)]
    assert [node.exists(key) for key in stored] == [1, 0]


def test_a_foreign_field_among_a_childs_remote_parents_spoils_no_outcome(cproject, tmp_path, node):
    """Another tool's fields in the hash of a child's parents of other queues, which its parent's
    outcome script reads to settle it: skipped, the parent finishes (and leaves no list), the
    child runs."""
    ran = tmp_path / "ran.txt"
    parent = cproject.enqueue("record", str(ran), "parent", "--queue", "emails")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "emails", "--depends-on", parent)
    spoiled = {"not json": "failed", '["only one"]': "failed", "[1, 2]": "canceled"}
    node.hset(keys.CLUSTER.remote_parents(child, "emails"), mapping=spoiled)
    parent_then_child_run(cproject, node, ran, parent, (child, "emails"))


def test_aenqueue_finds_a_parent_on_another_queue(cproject, app, tmp_path, node):
    ran = tmp_path / "ran.txt"
    parent = sample_jobs.record.options(queue="emails").enqueue(str(ran), "parent")

    async def enqueue_child():
        async with jobctl.batch(on_complete="echo_kwargs") as b:
            child = await sample_jobs.record.options(queue="three", depends_on=parent).aenqueue(str(ran), "child")
        return b, child

    b, child = asyncio.run(enqueue_child())
    assert state(node, child.id, "three") == "deferred"
    work = cproject.start("work")
    assert finished_callback(cproject, b.id, "complete")["kwargs"]["succeeded"] == 1
    stop(work)


def test_a_foreign_member_among_a_parents_remote_dependents_spoils_no_outcome(cproject, tmp_path, node):
    """Another tool's member in the set the parent's outcome script reads: skipped, the parent
    finishes (and leaves no list), its real child across queues still runs."""
    ran = tmp_path / "ran.txt"
    parent = cproject.enqueue("record", str(ran), "parent", "--queue", "emails")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    Transitions(node).deliver("reports", time.time())  # the child's link: it joins the remote dependents
    node.sadd(keys.CLUSTER.remote_dependents(parent, "emails"), "not json", '["only one"]', "[1, 2]")
    parent_then_child_run(cproject, node, ran, parent, (child, "reports"))
