"""/metrics scraped over HTTP and parsed with Prometheus' own text parser."""

import urllib.request

import pytest
import sample_jobs  # noqa: F401  (the exporter reports the registered job types)
from conftest import free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

from jobctl.config.queues import load_queues
from jobctl.web import metrics


def scrape(port: int) -> dict:
    """{(sample name, frozenset of labels): value}"""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def server(project):
    started = metrics.serve(project.env["REDIS_URL"], load_queues(project.path / "queue.yml"), 0, "127.0.0.1")
    yield started
    started.shutdown()


def test_metrics_after_a_burst(project, server):
    for args in (["add", "1"], ["add", "2"], ["always_fails"], ["add", "3", "--queue", "analytics"]):
        assert project.run("enqueue", *args).returncode == 0
    assert project.run("work", "--burst", "--queue", "default").returncode == 0

    samples = scrape(server.port)
    assert value(samples, "jobctl_redis_up") == 1
    assert value(samples, "jobctl_queue_jobs", queue="default", state="finished") == 2
    assert value(samples, "jobctl_queue_jobs", queue="default", state="dead") == 1
    assert value(samples, "jobctl_queue_jobs", queue="analytics", state="queued") == 1
    assert value(samples, "jobctl_queue_latency_seconds", queue="analytics") > 0
    assert value(samples, "jobctl_queue_latency_seconds", queue="default") == 0
    assert value(samples, "jobctl_jobs_processed_total", job_name="add", queue="default", outcome="finished") == 2
    assert (
        value(samples, "jobctl_jobs_processed_total", job_name="always_fails", queue="default", outcome="failed") == 3
    )
    assert (
        "jobctl_jobs_processed_total",
        frozenset({"job_name": "add", "queue": "analytics", "outcome": "finished"}.items()),
    ) not in samples  # the analytics job was not run
    assert value(samples, "jobctl_job_retries_total", job_name="always_fails") == 2
    assert value(samples, "jobctl_job_run_seconds_count", job_name="add") == 2
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "jobctl_job_run_seconds_bucket" and dict(labels)["job_name"] == "add"
    )
    assert buckets[-1] == (float("inf"), 2)
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    assert value(samples, "jobctl_workers", queue="default", state="busy") == 0


def test_metrics_command_sees_busy_workers(project, tmp_path):
    port = free_port()
    project.start("metrics", "--port", str(port), "--host", "127.0.0.1")
    project.start("work", "--queue", "default")  # two workers
    marker = tmp_path / "started"
    assert project.run("enqueue", "slow", str(marker), "3").returncode == 0
    wait_for(marker.exists, message="the slow job to start")

    def busy_and_idle():
        try:
            samples = scrape(port)
        except OSError:
            return None  # not listening yet
        counts = (
            value(samples, "jobctl_workers", queue="default", state="busy"),
            value(samples, "jobctl_workers", queue="default", state="idle"),
        )
        return counts == (1, 1)

    wait_for(busy_and_idle, timeout=10, interval=0.2, message="one busy and one idle worker in /metrics")


def test_redis_down_is_reported_not_raised(project):
    dead_end = metrics.serve(
        f"redis://127.0.0.1:{free_port()}/0", load_queues(project.path / "queue.yml"), 0, "127.0.0.1"
    )
    try:
        samples = scrape(dead_end.port)
    finally:
        dead_end.shutdown()
    assert samples == {("jobctl_redis_up", frozenset()): 0}


def test_port_in_use_is_a_one_line_error(project, server):
    taken = project.run("metrics", "--port", str(server.port), "--host", "127.0.0.1", timeout=20)
    assert taken.returncode == 2
    assert taken.stderr.strip().startswith(f"jobctl: error: metrics: cannot listen on 127.0.0.1:{server.port}:")
    assert scrape(server.port)  # the server that holds the port still answers


def test_unserved_queue_gauge(project, server, db):
    from rq import Queue
    from rq.serializers import JSONSerializer

    reports = Queue("reports", connection=db, serializer=JSONSerializer)  # RQ code; not in queue.yml
    reports.enqueue("reports.build", 1)
    reports.enqueue("reports.build", 2)
    samples = scrape(server.port)
    assert value(samples, "jobctl_unserved_jobs", queue="reports") == 2
    assert ("jobctl_queue_jobs", frozenset({"queue": "reports", "state": "queued"}.items())) not in samples


def test_worker_count_range_gauges(project):
    project.write("queue.yml", "default: {worker_count: 1..4}\nanalytics: {worker_count: 2}\n")
    started = metrics.serve(project.env["REDIS_URL"], load_queues(project.path / "queue.yml"), 0, "127.0.0.1")
    try:
        samples = scrape(started.port)
    finally:
        started.shutdown()
    assert value(samples, "jobctl_queue_min_workers", queue="default") == 1
    assert value(samples, "jobctl_queue_max_workers", queue="default") == 4
    assert value(samples, "jobctl_queue_min_workers", queue="analytics") == 2  # a fixed count is its own range
    assert value(samples, "jobctl_queue_max_workers", queue="analytics") == 2
