"""What spans queues on a Redis Cluster (tests/cluster.py's 3 masters), as a user runs it: recurring
jobs of two queues under two schedulers, dependencies whose parent and child are on different
queues (settled through the outboxes the promoter delivers), and an outbox entry applied twice."""

import json
import re
import signal
import time

import pytest
from conftest import wait_for

from jobctl.store import keys
from jobctl.store.connection import connect
from jobctl.store.transitions import Transitions

QUEUES_YML = """\
defaults:
  retry_delay: 100ms
  backoff: fixed
  timeout: 30s
  shutdown_timeout: 5s
default: {worker_count: 1, max_retries: 0}
emails:  {worker_count: 1, max_retries: 0}
reports: {worker_count: 1, max_retries: 0}
bulk:    {worker_count: 1, max_retries: 0}
one:     {worker_count: 1}
three:   {worker_count: 1}
"""


@pytest.fixture
def cproject(cluster_project):
    cluster_project.write("queue.yml", QUEUES_YML)
    return cluster_project


@pytest.fixture
def node(redis_cluster):
    """A cluster client of the test's own."""
    client = connect(redis_cluster.urls[0])
    yield client
    client.close()


def state(node, job_id: str, queue: str) -> str | None:
    status = node.hget(keys.CLUSTER.job(job_id, queue), "status")
    return status.decode() if status is not None else None


def lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def stop(process) -> str:
    """SIGTERM a process of the test's; it must exit 0. Returns what it logged."""
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=30)
    assert process.returncode == 0, log
    return log


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

    wait_for(lambda: min(runs("tick"), runs("tock")) >= 6, timeout=30, message="six runs of each entry")
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


def test_a_foreign_member_among_a_parents_remote_dependents_spoils_no_outcome(cproject, tmp_path, node):
    """Another tool's member in the set the parent's outcome script reads: skipped, the parent
    finishes (and leaves no list), its real child across queues still runs."""
    ran = tmp_path / "ran.txt"
    parent = cproject.enqueue("record", str(ran), "parent", "--queue", "emails", "--in", "2s")
    child = cproject.enqueue("record", str(ran), "child", "--queue", "reports", "--depends-on", parent)
    Transitions(node).deliver("reports", time.time())  # the child's link: it joins the remote dependents
    node.sadd(keys.CLUSTER.remote_dependents(parent, "emails"), "not json", '["only one"]', "[1, 2]")
    work = cproject.start("work")
    wait_for(lambda: state(node, child, "reports") == "finished", timeout=30, message="the child to run")
    log = stop(work)
    assert "worker exited" not in log and "Traceback" not in log, log
    assert state(node, parent, "emails") == "finished"
    assert not node.zcard(keys.CLUSTER.started("emails"))
    assert lines(ran) == ["parent", "child"]
