"""What spans queues on a Redis Cluster (tests/cluster.py's 3 masters), as a user runs it: recurring
jobs of two queues under two schedulers."""

import re
import signal

import pytest
from conftest import wait_for

from jobctl.store import keys

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
"""


@pytest.fixture
def cproject(cluster_project):
    cluster_project.write("queue.yml", QUEUES_YML)
    return cluster_project


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
