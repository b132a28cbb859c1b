"""Every reader survives every record: malformed and foreign values written into every field of
every kind of key jobctl reads, and every reader run over them (`status`, `status --json`,
`show`, `logs`, `stats`, `health`, `requeue-dead --dry-run`, the dashboard's pages and JSON
API, the metrics exporter). Each shows what it can, and never answers with a traceback or a 500.

The records start as real ones: jobs run by a real worker (finished, retried, dead, scheduled,
deferred, canceled, and one running while the keys are copied, so its worker, lease and
in-flight list are live), RQ jobs run by RQ's own worker (pickled, with their results stream),
an RQ worker and the scheduler's keys. Every key is copied once (DUMP) and put back (RESTORE)
before each pass; each pass corrupts one thing (a field, a foreign field, a member, a score, the
value, or the key's type) of every key of every kind, and runs every reader. The readers run in
this process (the Typer app, the Starlette app, the Prometheus collector); a few real `jobctl`
runs at the end check what a user sees."""

from __future__ import annotations

import base64
import functools
import json
import pickle
import re
import shutil
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
import sample_jobs  # noqa: F401  (registers the sample jobs in this process)
from conftest import ON_CLUSTER, QUEUE_YML, TESTS, Project, client_of, wait_for
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from jobctl.api import admin
from jobctl.api.producer import enqueue
from jobctl.cli import app
from jobctl.config import queues as queues_module
from jobctl.config.queues import load_queues
from jobctl.config.settings import Settings
from jobctl.errors import JobctlError
from jobctl.store import keys
from jobctl.web.app import create_app
from jobctl.web.auth import Auth
from jobctl.web.board import Dashboard
from jobctl.web.metrics import JobctlCollector

TOKEN = "fuzz-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# RQ's own records too, on one Redis: a cluster refuses `engine: rq` queues, and RQ does not run there
FUZZ_QUEUE_YML = QUEUE_YML + ("" if ON_CLUSTER else "legacy: {engine: rq, worker_count: 1, max_retries: 2}\n")

# What another tool, an older version or a hand may leave in a field: empty, not UTF-8, not a
# number, numbers out of range, JSON of the wrong shape, RQ's pickle, RQ's time without
# microseconds, markup, and a zlib bomb's little sister.
MARKUP = "<script>alert(1)</script>"
BAD_VALUES: list[bytes] = [
    b"",
    b"\xff\xfe not utf-8 \x80",
    b"abc",
    b"-1",
    b"nan",
    b"inf",
    b"1e999",
    b"99999999999999999999999999",
    b"2024-01-01T00:00:00Z",
    b'{"a": [1, {"b": null}]}',
    b"[1, 2, 3]",
    b"null",
    b'"text"',
    pickle.dumps({"pickled": 1}),
    b"\x80\x05garbage-pickle",
    base64.b64encode(b"\x80\x05garbage"),
    zlib.compress(b"[1, 2"),
    zlib.compress(b"\x80\x05garbage-pickle"),
    MARKUP.encode() + b"[bold]x[/bold]\x1b[31m",
]
BAD_SCORES = [float("inf"), float("-inf"), 0.0, -1.0, 1e300]
# the Typer app as a click command, built once: CliRunner.invoke builds it anew from every
# command's signature on each call, which was half of this test's time
COMMAND = get_command(app)


# --- the records: made by real workers, copied once --------------------------------------------


@dataclass
class Fleet:
    """The copied keys and what the readers are asked about."""

    dump: dict[bytes, bytes]  # key -> its DUMP
    job_ids: list[str]  # one job of each state, and RQ's
    running: str  # the job its worker was running when the keys were copied
    project: Project


def restore(db: redis.Redis, dump: dict[bytes, bytes]) -> None:
    db.flushdb()
    with db.pipeline(transaction=False) as pipe:
        for key, value in dump.items():
            pipe.restore(key, 0, value)  # no expiry: the copy holds still while the readers look
        pipe.execute()


def write_rq_records(db: redis.Redis) -> list[str]:
    """An RQ job run by RQ's own worker (pickled payload, result in its results stream), one RQ
    failed the same way, and an RQ worker registered the way RQ registers it."""
    import rq

    queue = rq.Queue("legacy", connection=db)
    ran = [queue.enqueue("operator.add", 2, 3), queue.enqueue("math.sqrt", -1)]
    worker = rq.SimpleWorker([queue], connection=db)
    for job in ran:  # what worker.work(burst=True) does, without its minute of waiting at the end
        queue.remove(job)
        worker.execute_job(job, queue)
    rq.Worker([queue], connection=db, name="rq-worker-fuzz").register_birth()
    return [job.id for job in ran]


def write_scheduler_keys(db: redis.Redis, now: float) -> None:
    due = int(now) - 60
    db.hset(keys.SCHEDULER_NEXT_RUNS, mapping={"nightly": now + 3600, "hourly": now + 60})
    db.hset(keys.SCHEDULER_LAST_RUNS, mapping={"nightly": due})
    db.set(keys.SCHEDULER_HEARTBEAT, now)
    db.set(keys.scheduler_last("nightly"), due)
    db.set(keys.scheduler_claim("nightly", due), "scheduler-1")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, session_redis) -> Iterator[Fleet]:
    path = tmp_path_factory.mktemp("fuzz-project")
    project = Project(path, session_redis)
    project.write("queue.yml", FUZZ_QUEUE_YML)
    project.write("recurring.yml", "nightly:\n  job: add\n  args: [40, 2]\n  schedule: '0 3 * * *'\n")
    shutil.copy(TESTS / "sample_jobs.py", path / "sample_jobs.py")
    db = client_of(session_redis)
    db.flushdb()
    config = load_queues(path / "queue.yml")
    try:
        ended = [
            enqueue(db, config, "add", [1], {"b": 2}).id,
            enqueue(db, config, "refuses").id,
            enqueue(db, config, "always_fails", queue="analytics").id,
            enqueue(db, config, "flaky", [str(path / "counter"), 1]).id,
        ]
        burst = project.run("work", "--burst")
        assert burst.returncode == 0, burst.stderr
        waiting = [enqueue(db, config, "add", [5], run_at=time.time() + 3600).id]
        running = enqueue(db, config, "gated", [str(path / "marker"), str(path / "gate"), "printed line"]).id
        waiting.append(enqueue(db, config, "add", [7], depends_on=[running]).id)
        waiting.append(enqueue(db, config, "add", [8], queue="analytics").id)
        canceled = enqueue(db, config, "add", [9], queue="analytics").id
        assert admin.cancel(db, canceled).canceled
        rq_ids = [] if ON_CLUSTER else write_rq_records(db)
        write_scheduler_keys(db, time.time())
        project.start("work", "--queue", "default")
        wait_for(lambda: (path / "marker").exists(), timeout=30, message="the gated job running")
        # the worker's current job is flushed with its tracking, about once a second
        wait_for(
            lambda: any(db.hget(k, "current_job") for k in db.smembers(keys.WORKERS)),
            message="the worker's current job in its hash",
        )
        dump = {key: db.dump(key) for key in db.scan_iter("*")}
        (path / "gate").write_text("")
        project.stop_all()
        yield Fleet(dump, [*ended, running, *waiting, canceled, *rq_ids], running, project)
    finally:
        project.stop_all()
        db.flushdb()


# --- the readers --------------------------------------------------------------------------------


def raised_at(error: BaseException) -> str:
    """Where in jobctl an exception was raised: the innermost frame of jobctl's own code."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if "/jobctl/" in frame.filename]
    return f"{frames[-1].filename.rsplit('/jobctl/', 1)[1]}:{frames[-1].lineno}" if frames else "?"


@dataclass
class Readers:
    """Every reader, run in this process against the test's Redis."""

    url: str
    project: Project
    web: TestClient
    collector: CollectorRegistry
    cli: CliRunner

    def run_cli(self, *args: str) -> tuple[int, str]:
        """As CliRunner.invoke runs it: the exit code, and stdout and stderr as one text."""
        with self.cli.isolation(env=self.project.env | {"REDIS_URL": self.url}) as (_, _, output):
            try:
                COMMAND.main(args=list(args), prog_name="jobctl")
                code = 0
            except SystemExit as exited:
                code = 0 if exited.code is None else exited.code if isinstance(exited.code, int) else 1
            except JobctlError:
                code = 1
            except Exception as error:
                raise AssertionError(f"jobctl {' '.join(args)} raised {error!r} at {raised_at(error)}") from error
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            return code, output.getvalue().decode(errors="replace")

    def run_all(self, job_ids: list[str]) -> None:
        failures = []
        for check in self.checks(job_ids):
            try:
                check()
            except AssertionError as exc:
                failures.append(str(exc)[:2000])
        assert not failures, "\n".join(failures)

    def checks(self, job_ids: list[str]) -> Iterator[Callable[[], None]]:
        for args in (["status"], ["status", "--json"], ["stats"], ["stats", "--json"]):
            yield lambda args=args: self.expect_cli(0, *args)
        yield lambda: self.expect_cli((0, 1), "health")
        yield lambda: self.expect_cli(0, "requeue-dead", "--all", "--dry-run")
        for job_id in job_ids:
            for args in (["show", job_id], ["show", job_id, "--json"], ["logs", job_id]):
                yield lambda args=args: self.expect_cli((0, 2), *args)
        pages = ["/", "/queues", "/recurring", "/workers", "/stats", "/api/status", "/api/stats"]
        pages += [f"/jobs?state={state}" for state in ("queued", "scheduled", "deferred", "started")]
        pages += [f"/jobs?state={state}" for state in ("finished", "dead", "canceled")]
        pages += [f"/jobs/{job_id}" for job_id in job_ids] + [f"/api/jobs/{job_id}" for job_id in job_ids]
        for page in pages:
            yield lambda page=page: self.expect_page(page)
        yield self.expect_metrics

    def expect_cli(self, codes: int | tuple[int, ...], *args: str) -> None:
        code, output = self.run_cli(*args)
        allowed = codes if isinstance(codes, tuple) else (codes,)
        assert code in allowed, f"jobctl {' '.join(args)} exited {code}: {output[-1500:]}"

    def expect_page(self, path: str) -> None:
        try:
            answer = self.web.get(path, headers=BEARER)
        except Exception as exc:  # the TestClient raises what the app did not handle: a 500
            raise AssertionError(f"GET {path} raised {exc!r} at {raised_at(exc)}") from exc
        assert answer.status_code in (200, 404), f"GET {path}: {answer.status_code} {answer.text[:500]}"
        if not path.startswith("/api/"):
            assert MARKUP not in answer.text, f"GET {path}: a record's markup reached the page unescaped"

    def expect_metrics(self) -> None:
        try:
            text = generate_latest(self.collector).decode()
        except Exception as exc:
            raise AssertionError(f"/metrics raised {exc!r} at {raised_at(exc)}") from exc
        assert "jobctl_redis_up 1.0" in text, text[:500]


def dashboard_client(settings: Settings) -> TestClient:
    """The dashboard in this process; what it does not handle is raised here (a 500)."""
    return TestClient(create_app(Dashboard(settings, Auth(TOKEN))), base_url="http://localhost:9181")


@pytest.fixture
def readers(fleet, session_redis, monkeypatch) -> Iterator[Readers]:
    monkeypatch.chdir(fleet.project.path)
    # queue.yml is not what is corrupted: each in-process command reads it once per pass
    # (thousands of YAML parses of the same file were a tenth of the test's time)
    monkeypatch.setattr(queues_module, "load_queues", functools.cache(load_queues))
    settings = Settings(
        redis_url=session_redis,
        config_path=str(fleet.project.path / "queue.yml"),
        recurring_path=str(fleet.project.path / "recurring.yml"),
        job_modules="sample_jobs",
    )
    collector = CollectorRegistry(auto_describe=False)
    collector.register(JobctlCollector(lambda: settings.connection, settings.queues))
    with dashboard_client(settings) as web:
        yield Readers(session_redis, fleet.project, web, collector, CliRunner())


# --- what gets corrupted: every field of every kind of key --------------------------------------

_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
_NAMED = re.compile(
    rb"^(rq:worker|rq:workers|rq:queue|rq:wip|rq:scheduled|rq:deferred|rq:finished|rq:failed|"
    rb"rq:canceled|jobctl:active|jobctl:stats:job|jobctl:stats:queue|jobctl:runtime:job|"
    rb"jobctl:history:job|jobctl:minutes|jobctl:throughput|jobctl:scheduler:last):[^:]+"
)
# fields the readers read that no record of the fleet happens to have
_ABSENT_FIELDS = {
    "rq:job:<id>": [
        *("jobctl_progress", "jobctl_progress_message", "jobctl_crashes", "jobctl_canceled_by"),
        *("jobctl_callback_error", "jobctl_retries", "retries_left", "jobctl_queue_retries"),
    ],
    "rq:worker:<name>": ["jobctl_cpu_percent", "jobctl_rss_bytes"],
}
# hashes whose field names are data (job names, buckets, minutes, labels), not a fixed set
_DATA_FIELDS = re.compile(r"job-paths|stats:processed|minutes|runtime|scheduler:(next|ran)")


def kind_of(key: bytes) -> str:
    """A key with its ids, names and numbers replaced: the kind of record it holds (on a cluster
    without its queue's hash tag: rq:job:{default}:<id> is an rq:job:<id>)."""
    key = re.sub(rb"\{([^}]*)\}(:?)", lambda m: b"" if m.group(2) else m.group(1), key)
    kind = _NAMED.sub(lambda m: m.group(1) + b":<name>", _ID.sub(b"<id>", key))
    return re.sub(rb":\d+(?=:|$)", b":<n>", kind).decode()


def targets(db: redis.Redis, dump: dict[bytes, bytes]) -> dict[str, list[str]]:
    """Kind of key -> what can be corrupted in it: each field (a hash's, a stream entry's), a
    foreign field, the members, the scores, the value."""
    restore(db, dump)
    found = {kind: {f"field {name}" for name in names} for kind, names in _ABSENT_FIELDS.items()}
    for key in dump:
        kind, key_type = kind_of(key), db.type(key).decode()
        what = found.setdefault(kind, {"another type"})
        if key_type == "hash":
            what.update({"all fields", "foreign field"} if _DATA_FIELDS.search(kind) else {"foreign field"})
            if not _DATA_FIELDS.search(kind):
                what.update(f"field {name.decode()}" for name in db.hkeys(key))
        elif key_type == "stream":
            what.update(f"entry {name.decode()}" for _id, fields in db.xrange(key) for name in fields)
        elif key_type == "zset":
            what.update({"member", "score"})
        else:  # string, list, set
            what.add(key_type)
    return {kind: sorted(what) for kind, what in sorted(found.items())}


def corrupt(db: redis.Redis, keys_of_kind: list[bytes], what: str, offset: int) -> None:
    """Write bad values into `what` of each key of a kind: the n-th key gets the (offset + n)-th
    value, so that passes with different offsets put every value somewhere."""
    for index, key in enumerate(keys_of_kind):
        value = BAD_VALUES[(offset + index) % len(BAD_VALUES)]
        key_type = db.type(key).decode()
        if what == "another type":  # a key of the name holding another kind of value
            db.delete(key)
            if key_type == "string":
                db.rpush(key, value)
            else:
                db.set(key, value)
        elif what == "foreign field":
            db.hset(key, value or b"-", value)
        elif what == "all fields":
            db.hset(key, mapping=dict.fromkeys(db.hkeys(key), value))
        elif what.startswith("field "):
            db.hset(key, what.removeprefix("field "), value)
        elif what.startswith("entry "):
            for _entry_id, fields in db.xrange(key):
                db.xadd(key, {**fields, what.removeprefix("entry ").encode(): value})
        elif what == "member":
            db.zadd(key, {value or b"-": time.time()})
        elif what == "score":
            db.zadd(key, {member: BAD_SCORES[(offset + index) % len(BAD_SCORES)] for member in db.zrange(key, 0, -1)})
        elif key_type == "list":
            db.lpush(key, value)
            db.rpush(key, value)
        elif key_type == "set":
            db.sadd(key, value or b"-")
        else:
            db.set(key, value)


# the passes, dealt out to this many tests that xdist can run side by side (a test process makes
# the records once for those it runs): one test of every pass held one process for 15 s
PARTS = 2


@pytest.mark.parametrize("part", range(PARTS))
def test_every_reader_survives_every_field_of_every_key(fleet, readers, db, part):
    """Pass p corrupts, in every kind of key, the p-th thing it holds (round robin), with values
    rotating by pass and by key: every field of every kind meets a bad value, and each field
    several different ones. Part k runs the passes p with p % PARTS == k."""
    plan = targets(db, fleet.dump)
    keys_of = {kind: [key for key in sorted(fleet.dump) if kind_of(key) == kind] for kind in plan}
    passes = max(len(what) for what in plan.values())
    failures = []
    for number in range(part, passes, PARTS):
        restore(db, fleet.dump)
        done = []
        for kind, what in plan.items():
            target = what[number % len(what)]
            corrupt(db, keys_of[kind], target, number)
            done.append(f"{kind} {target}")
        try:
            readers.run_all(fleet.job_ids)
        except AssertionError as exc:
            failures.append(f"pass {number} ({'; '.join(done)}):\n{exc}")
    assert not failures, "\n\n".join(failures)
    if (passes - 1) % PARTS != part:
        return
    # what a user sees, as the last pass left the records: no traceback of jobctl's own
    running = fleet.running
    for args in (["status"], ["status", "--json"], ["stats"], ["show", running], ["logs", running]):
        result = fleet.project.run(*args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
def test_an_rq_worker_born_without_microseconds_is_shown(project, db, monkeypatch):
    """RQ's utcparse reads a time without microseconds (its older format); so do the readers.
    A real `jobctl` run each: status, status --json and health; and the dashboard and metrics."""
    import rq

    worker = rq.Worker([rq.Queue("default", connection=db)], connection=db, name="rq-old-birth")
    worker.register_birth()
    born = time.time() - 3600
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(born))
    db.hset(keys.worker("rq-old-birth"), mapping={"birth": moment, "last_heartbeat": moment})

    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    [shown] = json.loads(status.stdout)["workers"]
    assert shown["birth"] == pytest.approx(int(born)) and shown["last_heartbeat"] == pytest.approx(int(born))
    table = project.run("status")
    assert table.returncode == 0 and "rq-old-birth" not in table.stderr and "1h" in table.stdout, table.stderr
    health = project.run("health")  # the worker's heartbeat is an hour old: unhealthy, said in one line
    assert (health.returncode, health.stdout) == (1, "") and "Traceback" not in health.stderr
    assert health.stderr.startswith("jobctl: unhealthy: no worker of host")

    monkeypatch.chdir(project.path)
    settings = Settings(redis_url=project.env["REDIS_URL"], config_path=str(project.path / "queue.yml"))
    with dashboard_client(settings) as web:
        for path in ("/", "/workers", "/queues", "/api/status"):
            assert web.get(path, headers=BEARER).status_code == 200, path
        assert "1h00m" in web.get("/workers", headers=BEARER).text  # up for an hour
    collector = CollectorRegistry(auto_describe=False)
    collector.register(JobctlCollector(lambda: db, settings.queues))
    assert 'jobctl_workers{queue="default",state="idle"} 1.0' in generate_latest(collector).decode()
