"""StatsD: what a worker sends, read from a UDP socket the test listens on."""

import contextlib
import socket
import time

import pytest


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def received(sock, until, timeout: float = 20) -> list[str]:
    """The metrics received until `until(metrics)` holds."""
    metrics: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(metrics):
        assert time.monotonic() < deadline, f"timed out; received {metrics}"
        with contextlib.suppress(TimeoutError):
            metrics += sock.recv(65536).decode().splitlines()
    return metrics


def test_timings_and_counters_per_job(project, listener):
    port = listener.getsockname()[1]
    project.enqueue("add", "1", "2")
    project.enqueue("always_fails", "--queue", "analytics")  # max_retries 1: failed twice, retried once, dead
    env = {"JOBCTL_STATSD": f"127.0.0.1:{port}", "JOBCTL_STATSD_PREFIX": "shop"}
    assert project.run("work", "--burst", env=env).returncode == 0
    metrics = received(listener, lambda m: "shop.job.always_fails.dead:1|c" in m and "shop.job.add.finished:1|c" in m)
    counters = sorted(m for m in metrics if m.endswith("|c"))
    assert counters == sorted(
        [
            "shop.job.add.finished:1|c",
            "shop.job.always_fails.failed:1|c",
            "shop.job.always_fails.failed:1|c",
            "shop.job.always_fails.retried:1|c",
            "shop.job.always_fails.dead:1|c",
        ]
    )
    timings = [m for m in metrics if m.endswith("|ms")]
    assert sorted(t.split(":")[0] for t in timings) == [
        "shop.job.add.run_time",
        "shop.job.always_fails.run_time",
        "shop.job.always_fails.run_time",
    ]
    assert all(0 <= float(t.split(":")[1][:-3]) < 5000 for t in timings)


def test_the_statsd_option_with_the_default_prefix(project, listener):
    port = listener.getsockname()[1]
    project.enqueue("add", "1", "2")
    assert project.run("work", "--burst", "--statsd", f"127.0.0.1:{port}").returncode == 0
    assert "jobctl.job.add.finished:1|c" in received(listener, lambda m: "jobctl.job.add.finished:1|c" in m)


def test_a_statsd_that_cannot_be_reached_never_affects_a_job(project):
    for address in ("statsd.invalid:8125", "127.0.0.1:9"):  # unresolvable; nothing listening
        job_id = project.enqueue("add", "1", "2")
        assert project.run("work", "--burst", env={"JOBCTL_STATSD": address}).returncode == 0
        assert project.show(job_id)["state"] == "finished"


def test_a_bad_statsd_address_is_refused(project):
    result = project.run("work", "--burst", "--statsd", "localhost")
    assert result.returncode == 2
    assert (
        "jobctl: error: --statsd / JOBCTL_STATSD: expected host:port like 127.0.0.1:8125, got 'localhost'"
        in result.stderr
    )
