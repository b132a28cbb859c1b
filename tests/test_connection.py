import json
import os
import shutil
import signal
import subprocess

import pytest
from conftest import TESTS, Project, kill_quietly, wait_for

from jobctl.errors import RedisUnavailable
from jobctl.store.connection import connect, mask_url, where


def test_mask_url_hides_the_password():
    assert mask_url("redis://:hunter2@cache:6380/1") == "redis://:***@cache:6380/1"
    assert mask_url("rediss://admin:hunter2@cache.example.com/0") == "rediss://admin:***@cache.example.com/0"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert where("rediss://admin:hunter2@cache.example.com/0") == "cache.example.com:6379"


def test_connect_error_is_one_line_without_password():
    with pytest.raises(RedisUnavailable) as error:
        connect("redis://user:hunter2@127.0.0.1:1/0")
    assert str(error.value).startswith("cannot reach Redis at 127.0.0.1:1: ")
    assert "hunter2" not in str(error.value)


def test_password_urls_work(redis_url, db):
    """A password-protected Redis (an ACL user made for this test) is reached through its URL."""
    db.acl_setuser("jobctl-test", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    try:
        url = redis_url.replace("redis://", "redis://jobctl-test:s3cret@")
        assert connect(url).ping()
        with pytest.raises(RedisUnavailable, match="refused the credentials"):
            connect(redis_url.replace("redis://", "redis://jobctl-test:wrong@"))
    finally:
        db.acl_deluser("jobctl-test")


@pytest.fixture
def embedded_project(tmp_path):
    project = Project(tmp_path, redis_url=None)
    project.write("queue.yml", "default: {worker_count: 1}\n")
    shutil.copy(TESTS / "sample_jobs.py", tmp_path / "sample_jobs.py")
    yield project
    project.stop_all()
    pidfile = tmp_path / ".jobctl" / "redis.pid"
    if pidfile.exists():
        kill_quietly(int(pidfile.read_text()), signal.SIGKILL)


def test_embedded_redis_is_started_once_and_shared(embedded_project):
    project = embedded_project
    enqueued = project.run("enqueue", "add", "20", "22")
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    server = int((project.path / ".jobctl" / "redis.pid").read_text())

    worked = project.run("work", "--burst")  # another process finds the same server
    assert worked.returncode == 0, worked.stderr
    shown = json.loads(project.run("show", job_id, "--json").stdout)
    assert shown["state"] == "finished" and shown["result"] == 42
    assert int((project.path / ".jobctl" / "redis.pid").read_text()) == server
    os.kill(server, 0)  # still running after every jobctl process exited


def exited(pid: int) -> bool:
    """Whether process `pid` has ended: gone, or a zombie (a daemon is its init's child, reaped
    whenever the init gets to it: seconds later in some containers)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_embedded_redis_keeps_queued_jobs_across_a_restart(embedded_project):
    project = embedded_project
    job_id = project.run("enqueue", "add", "1").stdout.strip()
    pidfile = project.path / ".jobctl" / "redis.pid"
    server = int(pidfile.read_text())
    os.kill(server, signal.SIGTERM)
    wait_for(lambda: exited(server), message="the embedded Redis to stop")

    shown = project.run("show", job_id, "--json")  # starts it again, from its append-only file
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "queued"
    assert int(pidfile.read_text()) != server


def test_concurrent_first_use_starts_one_server(embedded_project):
    project = embedded_project
    starts = [project.start("status", "--json") for _ in range(4)]
    for process in starts:
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    servers = [p for p in os.listdir("/proc") if p.isdigit() and _is_redis_of(p, project.path)]
    assert len(servers) == 1


def _is_redis_of(pid: str, home) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline") as file:
            cmdline = file.read()
    except OSError:
        return False
    return "redis-server" in cmdline and str(home) in cmdline


def test_tls_and_password(project, redis_server, tmp_path):
    """rediss:// with a password: jobs flow, and a wrong password is reported without echoing it."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not found: apt-get install openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",  # an elliptic-curve key: made at once, where an RSA key took a few tenths of a second
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    server = redis_server(
        "--requirepass",
        "tls-pass",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
        tls=True,
    )
    tls_port = server.port
    url = f"rediss://:tls-pass@localhost:{tls_port}/0?ssl_ca_certs={cert}"

    job_id = project.run("enqueue", "add", "1", "2", env={"REDIS_URL": url}).stdout.strip()
    assert project.run("work", "--burst", env={"REDIS_URL": url}).returncode == 0
    shown = project.run_here("show", job_id, "--json", env={"REDIS_URL": url})
    assert json.loads(shown.stdout)["result"] == 3

    wrong = project.run("status", env={"REDIS_URL": url.replace("tls-pass", "not-the-pass")})
    assert wrong.returncode == 2
    assert "not-the-pass" not in wrong.stderr and "tls-pass" not in wrong.stderr
    assert f"localhost:{tls_port}" in wrong.stderr
