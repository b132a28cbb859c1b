"""/metrics scraped over HTTP and parsed with Prometheus' own text parser; who may scrape it."""

import base64
import logging
import socket
import urllib.error
import urllib.request

import pytest
import sample_jobs  # noqa: F401  (the exporter reports the registered job types)
from conftest import free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

from jobctl.config.queues import load_queues
from jobctl.web import metrics

TOKEN = "scrape-token-6f1c2a9e"
WITH_TOKEN = {"JOBCTL_METRICS_TOKEN": TOKEN}


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(port: int, headers: dict, host: str = "127.0.0.1") -> tuple[int, dict, str]:
    """(status, headers as {name: [values]}, body) of GET /metrics"""
    request = urllib.request.Request(f"http://{host}:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            status, message, body = reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        status, message, body = error.code, error.headers, error.read()
    return status, {name.lower(): message.get_all(name) for name in message}, body.decode()


def scrape(port: int, headers: dict | None = None) -> dict:
    """{(sample name, frozenset of labels): value}"""
    status, _, text = get(port, bearer() if headers is None else headers)
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def serve(project, url: str | None = None, **options) -> metrics.MetricsServer:
    queues = load_queues(project.path / "queue.yml")
    return metrics.serve(url or project.env["REDIS_URL"], queues, 0, **{"token": TOKEN, **options})


@pytest.fixture
def server(project):
    started = serve(project)
    yield started
    started.shutdown()


def test_metrics_after_a_burst(project, server):
    for args in (["add", "1"], ["add", "2"], ["always_fails"], ["add", "3", "--queue", "analytics"]):
        project.enqueue(*args)  # in this process where it enqueues as a new one does
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
    project.start("metrics", "--port", str(port), env=WITH_TOKEN)
    project.start("work", "--queue", "default")  # two workers
    marker = tmp_path / "started"
    project.enqueue("slow", str(marker), "3")
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
    dead_end = serve(project, f"redis://127.0.0.1:{free_port()}/0")
    try:
        samples = scrape(dead_end.port)
    finally:
        dead_end.shutdown()
    assert samples == {("jobctl_redis_up", frozenset()): 0}


def test_port_in_use_is_a_one_line_error(project, server):
    taken = project.run("metrics", "--port", str(server.port), timeout=20, env=WITH_TOKEN)
    assert taken.returncode == 2
    assert taken.stderr.strip().startswith(f"jobctl: error: metrics: cannot listen on 127.0.0.1:{server.port}:")
    assert scrape(server.port)  # the server that holds the port still answers


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
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
    started = serve(project)
    try:
        samples = scrape(started.port)
    finally:
        started.shutdown()
    assert value(samples, "jobctl_queue_min_workers", queue="default") == 1
    assert value(samples, "jobctl_queue_max_workers", queue="default") == 4
    assert value(samples, "jobctl_queue_min_workers", queue="analytics") == 2  # a fixed count is its own range
    assert value(samples, "jobctl_queue_max_workers", queue="analytics") == 2


# --- who may scrape ------------------------------------------------------------------------------


def test_a_scrape_without_the_token_gets_401_and_the_challenges(server):
    for headers in ({}, bearer("scrape-token-6f1c2a9X"), bearer(""), basic("prometheus", "wrong-password-123456")):
        status, reply_headers, body = get(server.port, headers)
        assert status == 401, headers
        assert reply_headers["www-authenticate"] == [
            'Bearer realm="jobctl metrics"',
            'Basic realm="jobctl metrics", charset="UTF-8"',
        ]
        assert "jobctl_" not in body  # not a single metric
    for broken in ("Basic !!not-base64!!", "Basic " + base64.b64encode(TOKEN.encode()).decode(), TOKEN):
        assert get(server.port, {"Authorization": broken})[0] == 401, broken  # no colon, no scheme


def test_the_token_as_bearer_or_as_basic_password_with_any_user(server):
    for headers in (bearer(), {"Authorization": f"bearer  {TOKEN}"}, basic("prometheus", TOKEN), basic("", TOKEN)):
        assert value(scrape(server.port, headers), "jobctl_redis_up") == 1, headers


def test_forwarded_headers_change_nothing_and_the_token_is_never_logged(server):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("jobctl").addHandler(handler)
    forwarded = {
        "X-Forwarded-For": "127.0.0.1, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "metrics.example",
        "X-Real-IP": "203.0.113.9",
        "Forwarded": "for=203.0.113.9;proto=https",
    }
    try:
        assert get(server.port, forwarded)[0] == 401
        assert get(server.port, {**forwarded, **bearer(TOKEN[:-1] + "X")})[0] == 401
        assert value(scrape(server.port, {**forwarded, **bearer()}), "jobctl_redis_up") == 1
    finally:
        logging.getLogger("jobctl").removeHandler(handler)
    assert lines == ["jobctl metrics: wrong token from 127.0.0.1"]  # the peer, not a forwarded address


def listens(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def test_it_listens_on_127_0_0_1_unless_told_otherwise(project, server):
    # 127.0.0.2 is this host too (Linux routes 127/8 to lo): a socket on every interface answers it
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert listens("127.0.0.1", server.port)
    assert not listens("127.0.0.2", server.port)
    everywhere = serve(project, host="0.0.0.0")
    try:
        assert listens("127.0.0.2", everywhere.port)
    finally:
        everywhere.shutdown()

    for command in (["metrics", "--port"], ["work", "--queue", "default", "--metrics-port"]):
        port = free_port()
        process = project.start(*command, str(port), env=WITH_TOKEN)
        wait_for(lambda: listens("127.0.0.1", port), message=f"jobctl {command[0]} serving metrics")  # noqa: B023
        assert not listens("127.0.0.2", port)
        assert value(scrape(port), "jobctl_redis_up") == 1
        assert get(port, {})[0] == 401
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert f"jobctl: serving metrics on http://127.0.0.1:{port}/metrics (token: $JOBCTL_METRICS_TOKEN" in stderr
        assert TOKEN not in stderr


@pytest.mark.parametrize("command", [["metrics"], ["work", "--burst", "--metrics-port", "0"]])
def test_without_a_token_it_refuses_to_start_in_one_line(project, command):
    refused = project.run(*command, timeout=20)
    assert refused.returncode == 2
    flag = "--no-auth" if command == ["metrics"] else "--metrics-no-auth"
    assert refused.stderr == (
        "jobctl: error: /metrics needs a token: set JOBCTL_METRICS_TOKEN (at least 16 characters, e.g. "
        f"$(openssl rand -hex 16)) and give Prometheus the same, or pass {flag} to serve on a loopback address "
        "without one\n"
    )
    short = project.run(*command, timeout=20, env={"JOBCTL_METRICS_TOKEN": "short"})
    assert short.returncode == 2
    assert short.stderr.startswith("jobctl: error: $JOBCTL_METRICS_TOKEN has 5 characters: it needs at least 16 ")
    assert short.stderr.count("\n") == 1


def test_no_auth_serves_on_loopback_only(project):
    beyond = project.run("metrics", "--no-auth", "--host", "0.0.0.0", timeout=20)
    assert beyond.returncode == 2
    assert beyond.stderr == (
        "jobctl: error: --no-auth serves /metrics without a token on a loopback address only (127.0.0.1, ::1), "
        "not on 0.0.0.0: set JOBCTL_METRICS_TOKEN instead\n"
    )
    both = project.run("metrics", "--no-auth", timeout=20, env=WITH_TOKEN)
    assert both.returncode == 2
    assert "--no-auth with $JOBCTL_METRICS_TOKEN set" in both.stderr
    alone = project.run("work", "--burst", "--metrics-no-auth", timeout=20)
    assert alone.returncode == 2
    assert alone.stderr == (
        "jobctl: error: --metrics-no-auth without --metrics-port: there is no exporter to serve without a token\n"
    )

    port = free_port()
    project.start("metrics", "--no-auth", "--port", str(port))
    wait_for(lambda: listens("127.0.0.1", port), message="jobctl metrics --no-auth serving")
    assert value(scrape(port, {}), "jobctl_redis_up") == 1
