"""Workers serving several queues (`jobctl work --queue a --queue b`): weighted or strict order."""

import json

from jobctl.store import keys
from jobctl.store.jobdata import parse_rq_time

JOBS_PER_QUEUE = 600


def run_both_queues(project, db, queue_yml: str, jobs: int = JOBS_PER_QUEUE) -> list[str]:
    """Fill both queues with `jobs` jobs each, run one worker serving both, and return the queue of
    each execution in order."""
    project.write("queue.yml", queue_yml)
    calls = project.write("calls.jsonl", '{"args": [1]}\n' * jobs)
    for queue in ("a", "b"):
        stored = project.run("enqueue", "add", "--from", str(calls), "--queue", queue, "--json")
        assert json.loads(stored.stdout)["stored"] == jobs, stored.stderr
    burst = project.run("work", "--queue", "a", "--queue", "b", "--burst")
    assert burst.returncode == 0, burst.stderr
    started, layout = [], keys.layout_of(db)
    for queue in ("a", "b"):
        started.extend(
            (parse_rq_time(db.hget(layout.job(job_id.decode(), queue), "started_at")), queue)
            for job_id in db.zrange(layout.finished(queue), 0, -1)
        )
    assert len(started) == 2 * jobs
    return [queue for _, queue in sorted(started)]


def test_weights_share_the_worker_in_proportion(project, db):
    order = run_both_queues(project, db, "a: {worker_count: 1, weight: 3}\nb: {worker_count: 0, weight: 1}\n")
    first = order[:JOBS_PER_QUEUE]  # both queues still had jobs for all of these
    share_of_a = first.count("a") / len(first)
    print(f"share of queue a (weight 3 of 4) while both had jobs: {share_of_a:.3f}")
    assert 0.68 <= share_of_a <= 0.82
    assert "b" in order[:50]  # the lighter queue is served from the start: it does not starve


def test_without_weights_the_order_is_strict(project, db):
    # no chance at play here: fewer jobs show the order (the weights' share needs its 600)
    order = run_both_queues(project, db, "a: {worker_count: 1}\nb: {worker_count: 0}\n", jobs=100)
    assert order == ["a"] * 100 + ["b"] * 100
