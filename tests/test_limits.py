"""Rate and concurrency limits, held in Redis across supervisors and with several jobs in flight
per worker process (a queue's rate limit with the in-process worker); a worker killed while
holding a slot gives it back; queue.yml's max_size."""

import json
import os
import signal
from pathlib import Path

from conftest import child_pids, state, wait_for
from test_worker import max_overlap

from jobctl.api import records
from jobctl.store import keys

TWO_HOSTS_QUEUE_YML = """\
defaults: {retry_delay: 100ms, backoff: fixed, timeout: 30s, shutdown_timeout: 10s}
default: {worker_count: 1, concurrency: 3, max_retries: 2}
"""


def all_finished(db, ids) -> bool:
    """Read from Redis: polling with `jobctl show` would start a process per job and look."""
    found = records.jobs(db, ids)
    return len(found) == len(ids) and {view.state for view in found} == {"finished"}


def enqueue_many(project, tmp_path, job: str, calls: list[list]) -> list[str]:
    """Enqueue one job per argument list in one `jobctl enqueue --from`; returns their ids."""
    source = tmp_path / f"{job}.jsonl"
    source.write_text("".join(json.dumps({"args": args}) + "\n" for args in calls))
    result = project.run("enqueue", job, "--from", str(source), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["ids"]


def shown(db, job_id: str) -> dict:
    return records.job(db, job_id).to_dict()


def started_at(db, ids) -> list[float]:
    return sorted(shown(db, job_id)["started_at"] for job_id in ids)


def test_max_concurrency_holds_across_supervisors_and_threads(project, db, tmp_path):
    project.write("queue.yml", TWO_HOSTS_QUEUE_YML)
    log = tmp_path / "overlap.log"
    ids = enqueue_many(project, tmp_path, "limited_overlap", [[str(log), 0.4]] * 6)
    project.start("work")
    project.start("work")  # 2 supervisors x 3 jobs in flight each: room for all 6, the job allows 2
    wait_for(lambda: all_finished(db, ids), timeout=60, message="every limited job finished")
    peak, _ = max_overlap(log)
    assert peak == 2
    assert {shown(db, i)["attempts"] for i in ids} == {1}  # held back without using an attempt


def test_rate_limit_spreads_starts_and_does_not_block_the_queue(project, db, tmp_path):
    project.write("queue.yml", TWO_HOSTS_QUEUE_YML)
    limited = enqueue_many(project, tmp_path, "rate_limited", [[n] for n in range(12)])
    others = enqueue_many(project, tmp_path, "add", [[n, 1] for n in range(6)])
    project.start("work")
    project.start("work")
    wait_for(lambda: all_finished(db, limited + others), timeout=60, message="every job finished")
    starts = started_at(db, limited)
    # 5 per second: any 6 consecutive starts span at least a second
    assert all(later - earlier >= 0.999 for earlier, later in zip(starts, starts[5:]))
    assert starts[-1] - starts[0] >= 2
    # the other jobs of the queue did not wait behind the limited ones
    assert max(shown(db, i)["ended_at"] for i in others) < starts[-1]


def test_a_queue_rate_limit(project, in_process, db, tmp_path):
    project.write("queue.yml", "default: {worker_count: 2, concurrency: 2, rate_limit: 4/s}\n")
    ids = enqueue_many(project, tmp_path, "add", [[n, 1] for n in range(10)])
    assert in_process(concurrency=4).drain(wait=60) == 10  # as many in flight as the two workers of 2
    assert all_finished(db, ids)
    starts = started_at(db, ids)
    assert all(later - earlier >= 0.999 for earlier, later in zip(starts, starts[4:]))


def test_a_worker_killed_holding_a_slot_gives_it_back(project, db, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 2}\n")
    marker = tmp_path / "marker"
    holder = project.enqueue("limited_once_slow", str(marker))
    waiting = project.enqueue("limited_once_slow", str(marker))
    project.start("work")
    wait_for(marker.exists, message="the first job running")
    wait_for(lambda: state(db, holder) == "started", message="the first job started")
    assert project.show(waiting)["state"] in ("queued", "scheduled")  # max_concurrency 1: it waits
    os.kill(int(marker.read_text()), signal.SIGKILL)
    wait_for(lambda: all_finished(db, [holder, waiting]), timeout=30, message="both jobs finished")
    assert db.hlen(keys.layout_of(db).slots("limited_once_slow", "default")) == 0


def test_a_slot_ends_with_its_workers_lease_when_the_whole_host_is_gone(project, db, tmp_path):
    project.write("queue.yml", "default: {worker_count: 1, concurrency: 2}\n")
    lease = {"JOBCTL_LEASE_TTL": "3"}
    marker = tmp_path / "marker"
    holder = project.enqueue("limited_once_slow", str(marker))
    first_host = project.start("work", env=lease)
    wait_for(marker.exists, message="the first job running")
    workers = child_pids(first_host.pid)
    first_host.kill()  # kill -9: nothing on that host gives anything back; its workers die with it
    first_host.wait()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), message="its workers gone")
    assert db.hlen(keys.layout_of(db).slots("limited_once_slow", "default")) == 1
    # another job of the type, on another host: the slot counts no more once the lease lapsed
    waiting = project.enqueue("limited_once_slow", str(marker))
    project.start("work", env=lease)
    wait_for(lambda: all_finished(db, [holder, waiting]), timeout=30, message="both jobs finished")


# --- queue.yml max_size -----------------------------------------------------------------------------


def test_a_full_queue_refuses_more(project, db, tmp_path):
    project.write("queue.yml", "default: {max_size: 3}\n")
    for n in range(3):
        project.enqueue("add", str(n))
    refused = project.run("enqueue", "add", "9")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "jobctl: error: queue 'default' is full (3 queued)"
    assert db.llen(keys.layout_of(db).queue("default")) == 3


def test_enqueue_from_refuses_the_whole_file_when_it_would_overflow(project, db, tmp_path):
    project.write("queue.yml", "default: {max_size: 5}\n")
    project.enqueue("add", "1")
    source = tmp_path / "calls.jsonl"
    source.write_text("".join(json.dumps({"args": [n]}) + "\n" for n in range(5)))
    refused = project.run("enqueue", "add", "--from", str(source))
    assert refused.returncode == 1
    assert (
        "queue 'default' is full (1 queued): 5 more would exceed its max_size of 5; nothing enqueued" in refused.stderr
    )
    assert db.llen(keys.layout_of(db).queue("default")) == 1
    source.write_text("".join(json.dumps({"args": [n]}) + "\n" for n in range(4)))
    assert project.run("enqueue", "add", "--from", str(source)).returncode == 0
    assert db.llen(keys.layout_of(db).queue("default")) == 5


def test_bad_limits_in_queue_yml(project):
    for settings, message in [
        (
            "{rate_limit: fast}",
            "queue 'default': key 'rate_limit': expected a rate like 10/s, 600/m or 1000/h, got 'fast'",
        ),
        ("{max_size: 0}", "queue 'default': key 'max_size': expected a whole number >= 1, got 0"),
    ]:
        project.write("queue.yml", f"default: {settings}\n")
        result = project.run("enqueue", "add", "1")
        assert result.returncode == 2
        assert message in result.stderr


def test_a_limited_job_reserved_and_given_back_releases_its_slot(project, db, tmp_path):
    """concurrency 1: a max_concurrency job reserved behind a long job is given back, and another
    worker runs the job while the long one still runs (a reservation holds no slot: its limits
    are checked as it starts)."""
    project.write("queue.yml", "default: {worker_count: 1}\n")
    log, marker = tmp_path / "log", tmp_path / "marker"
    marker.write_text("")  # limited_once_slow returns at once
    project.enqueue("add", "1", "2")
    long = project.enqueue("ticking", str(log), "60")
    limited = project.enqueue("limited_once_slow", str(marker))
    project.start("work")
    wait_for(log.exists, message="the long job to start")
    wait_for(
        lambda: db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [limited.encode()],
        message="the reservation given back",
    )
    project.start("work")  # another worker, free
    wait_for(lambda: all_finished(db, [limited]), timeout=30, message="the limited job to run elsewhere")
    assert shown(db, long)["state"] == "started"
