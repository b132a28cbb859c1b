"""jobctl riding through what a Redis Cluster does under it, as users run it: `jobctl work` with
REDIS_URL naming one node, jobs enqueued from Python with jobctl.connect() and the @job object.
A master killed with SIGKILL mid-run, and a queue's slot moved to another master while the
workers run: every job ends, none is lost, none runs twice at once (seen from the jobs' side:
each appends "start NAME" and "end NAME" to one file, and "overlap NAME" when another run of it
holds its lock), and nobody restarts the workers."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cluster import slot_of
from conftest import Project, wait_for
from redis.cluster import RedisCluster

import jobctl
from jobctl.api.client import set_default

# their hash tags fall on the three masters of redis-cli's slot split (0-5460, 5461-10922,
# 10923-16383): one queue per master
QUEUES = ("emails", "images", "billing")
QUEUE_YML = """\
defaults:
  retry_delay: 100ms
  backoff: fixed
  timeout: 30s
  shutdown_timeout: 5s
  max_retries: 3
emails:  {worker_count: 1, concurrency: 4}
images:  {worker_count: 1, concurrency: 4}
billing: {worker_count: 1, concurrency: 4}
"""
JOBCTL_LINE = re.compile(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ")  # logs.PlainFormatter's


@pytest.fixture
def jobctl_cluster(cluster_project, redis_cluster):
    """The cluster's project with the queues above, and jobctl.connect() to the cluster in this
    process; skipped while jobctl does not see the cluster (cluster mode)."""
    config = cluster_project.write("queue.yml", QUEUE_YML)
    client = jobctl.connect(redis_cluster.url, config)
    if not isinstance(client.connection, RedisCluster):
        client.close()
        pytest.skip("needs cluster mode: jobctl does not detect the Redis Cluster at REDIS_URL yet")
    yield cluster_project
    set_default(None)
    client.close()


def enqueue(log: Path, queue: str, names: range) -> None:
    import sample_jobs

    sample_jobs.span.options(queue=queue).enqueue_many((str(log), f"{queue}-{n}", 0.002) for n in names)


class Spans:
    """What the jobs wrote to their file: which ended, and whether two runs of one overlapped."""

    def __init__(self, log: Path):
        self.log = log

    def lines(self) -> list[tuple[str, str]]:
        if not self.log.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in self.log.read_text().splitlines()]  # type: ignore[misc]

    def ended(self) -> set[str]:
        return {name for mark, name in self.lines() if mark == "end"}

    def overlapping(self) -> list[str]:
        """Names of jobs a run of which started while another run of theirs was going on."""
        return [name for mark, name in self.lines() if mark == "overlap"]


def test_spans_tell_two_runs_of_a_job_at_once_from_two_in_turn(tmp_path):
    import sample_jobs

    spans = Spans(tmp_path / "spans")
    sample_jobs.span(str(spans.log), "in-turn")
    sample_jobs.span(str(spans.log), "in-turn")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: sample_jobs.span(str(spans.log), "at-once", 0.5), range(2)))
    assert spans.ended() == {"in-turn", "at-once"}
    assert spans.overlapping() == ["at-once"]


def assert_every_job_ended_once_at_a_time(project: Project, spans: Spans, expected: set[str], work) -> None:
    wait_for(lambda: spans.ended() >= expected, timeout=240, interval=0.2, message="every job to end")
    assert spans.ended() == expected
    assert spans.overlapping() == []
    # what jobctl says of them (a job's outcome is stored just after its end line): every job
    # finished, none waiting, none dead
    expected_per_queue = Counter(name.rsplit("-", 1)[0] for name in expected)
    wanted = {queue: {"finished": expected_per_queue[queue], "queued": 0, "dead": 0} for queue in QUEUES}

    def counts() -> dict[str, dict[str, int]]:
        status = json.loads(project.run("status", "--json").stdout)
        return {
            queue["name"]: {state: queue[state] for state in ("finished", "queued", "dead")}
            for queue in status["queues"]
        }

    wait_for(lambda: counts() == wanted, timeout=30, interval=0.2, message="status to count every job finished")
    # the supervisor rode through it and stops as asked
    assert work.poll() is None, work.stderr.read()
    work.send_signal(signal.SIGTERM)
    assert work.wait(timeout=30) == 0
    # one line per trouble, each jobctl's (no traceback, no line of redis-py's own)
    stderr = work.stderr.read()
    assert all(JOBCTL_LINE.match(line) for line in stderr.splitlines()), stderr


def test_failover_under_load_loses_no_job(jobctl_cluster, redis_cluster, tmp_path):
    """3 queues of 2,000 jobs each, one master killed with SIGKILL a quarter of the way in."""
    spans = Spans(tmp_path / "spans")
    for queue in QUEUES:
        enqueue(spans.log, queue, range(2000))
    # every enqueue is on the replicas: what the failover may lose is only what the workers did
    redis_cluster.wait_replicated()
    work = jobctl_cluster.start("work")
    wait_for(lambda: len(spans.ended()) >= 1500, timeout=120, interval=0.1, message="1,500 jobs to end")
    # the master of one of the queues, not the node REDIS_URL names: a process that starts while
    # that one is down (a worker the supervisor recycles) could not find the cluster
    url_node = next(node for node in redis_cluster.nodes if node.url == redis_cluster.url)
    victim = next(master for queue in QUEUES if (master := redis_cluster.master_of(f"{{{queue}}}")) is not url_node)
    redis_cluster.kill_master(victim)
    assert len(spans.ended()) < 6000, "the run was over before the master was killed"
    expected = {f"{queue}-{n}" for queue in QUEUES for n in range(2000)}
    assert_every_job_ended_once_at_a_time(jobctl_cluster, spans, expected, work)


def test_a_queue_slot_moved_while_workers_run_loses_nothing(jobctl_cluster, redis_cluster, tmp_path):
    spans = Spans(tmp_path / "spans")
    for queue in QUEUES:
        enqueue(spans.log, queue, range(500))
    work = jobctl_cluster.start("work")
    wait_for(lambda: len(spans.ended()) >= 300, timeout=120, interval=0.2, message="300 jobs to end")
    slot = slot_of("{emails}")
    source = redis_cluster.master_of_slot(slot)
    target = next(master for master in redis_cluster.masters() if master is not source)
    # more jobs of the queue enqueued while its slot moves
    with ThreadPoolExecutor(1) as pool:
        enqueuing = pool.submit(enqueue, spans.log, "emails", range(500, 1000))
        redis_cluster.move_slot(slot, target, batch=20, pause=0.01)
        enqueuing.result(timeout=60)
    assert redis_cluster.master_of_slot(slot) is target
    expected = {f"{queue}-{n}" for queue in QUEUES for n in range(500)} | {f"emails-{n}" for n in range(500, 1000)}
    assert_every_job_ended_once_at_a_time(jobctl_cluster, spans, expected, work)


def test_a_fleet_stopped_while_its_cluster_is_away_stops_without_it(own_cluster, tmp_path):
    """SIGTERM while every node is away: the supervisor and its worker make no more tries (on a
    cluster each can take seconds: the client looks for the nodes again; the four they made, the
    worker's last flush and give-back and the supervisor's recovery and goodbye, took ~8 s), and
    the outage is jobctl's one line per process, not the cluster client's error on every look."""
    project = Project(tmp_path, own_cluster.url)
    project.write("queue.yml", "default: {worker_count: 1, shutdown_timeout: 60}\n")
    shutil.copy(Path(__file__).parent / "sample_jobs.py", tmp_path / "sample_jobs.py")
    try:
        work = project.start("work")
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(work.stderr), daemon=True).start()
        job_id = project.enqueue("add", "1")
        wait_for(lambda: project.show(job_id)["state"] == "finished", message="a job done")
        own_cluster.stop()
        wait_for(lambda: sum("lost Redis" in line for line in lines) == 2, message="the outage, seen by both")
        work.send_signal(signal.SIGTERM)
        assert work.wait(timeout=6) == 0  # a try under way ends first; the four tries took ~8 s
        wait_for(lambda: any("supervisor " in line and "stopped" in line for line in lines), message="the last line")
        assert all(JOBCTL_LINE.match(line) for line in lines), lines
    finally:
        project.stop_all(grace=0.5)
