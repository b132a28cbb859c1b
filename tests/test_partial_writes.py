"""No partial writes: every transition script, given a record with any field spoiled (not JSON,
the wrong type, huge, empty: hand-edited, or another tool's), leaves each job it touches in exactly
one place that matches its status, and raises nothing (Redis keeps the writes a script made
before an error: a job could be left outside every list). On the tests' real Redis (7: the
scripts run as functions); fakeredis's Lua differs in what raises."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis
from stored import store_job

from jobctl.runtime.fetched import job_from_row
from jobctl.store import keys
from jobctl.store.jobdata import rq_time
from jobctl.store.transitions import Finished, GoOn, Transitions

WORKER, TOKEN, QUEUE = "host.1", "lease", "default"
NOW = time.time()
PAYLOAD = zlib.compress(b'["add", null, [1, 2], {}]')
LIMITS = {keys.job_concurrency_limit("add"): "5"}  # so that taking a job reads and writes its slot

# Every field of a job's record a script reads (lua/*.lua).
FIELDS = [
    "status",
    "origin",
    "data",
    "created_at",
    "enqueued_at",
    "timeout",
    "jobctl_timeout",
    "jobctl_attempts",
    "jobctl_max_retries",
    "jobctl_progress",
    "jobctl_stop_requested",
    "jobctl_job",
    "jobctl_slot",
    "jobctl_unique",
    "jobctl_dependents",
    "jobctl_errors",
    "jobctl_crashes",
    "jobctl_crash_limit",
    "jobctl_keep_dead",
    "jobctl_allow_failure",
    "allow_dependency_failures",
    "jobctl_reason",
    "jobctl_canceled_by",
    "jobctl_retries",
    "jobctl_deadline",
    "jobctl_dead",
    "jobctl_scheduled_for",
    "jobctl_batch",
    "jobctl_breaker",
    "worker_name",
    "result_ttl",
    "failure_ttl",
    "ttl",
    "retries_left",
    "retry_intervals",
    "success_callback_name",
    "failure_callback_name",
    "stopped_callback_name",
]

# Fields whose mere presence changes where a job goes (an operator's stop request) or that say
# where it is: spoiled, they may rightly change the outcome.
PRESENCE_MATTERS = {"status", "jobctl_stop_requested"}

SPOILED = {
    "not JSON": b"\x80{not json",
    "wrong type": b'{"a": [1, 2]}',
    "huge": b"9" * 100_000,  # a number past a double's range, and a string of 100 KB
    "empty": b"",
    "not a number": b"nan",
}

# A job's places by status: the keys it must be in (an in-flight list with RQ's started
# registry for a started job; its queue, or a worker's in-flight list when reserved, for a
# queued one). A record whose status is none of these is in no place.
PLACES = {
    "queued": [["queue"], ["active"]],
    "started": [["active", "wip"]],
    "scheduled": [["scheduled"]],
    "deferred": [["deferred"]],
    "finished": [["finished"]],
    "failed": [["failed"]],
    "canceled": [["canceled"]],
}
KINDS = {
    "rq:queue:": "queue",
    "jobctl:active:": "active",
    "rq:wip:": "wip",
    "rq:scheduled:": "scheduled",
    "rq:deferred:": "deferred",
    "rq:finished:": "finished",
    "rq:failed:": "failed",
    "rq:canceled:": "canceled",
}


def places(db: redis.Redis, job_id: str) -> list[tuple[str, bytes]]:
    """The kinds of keys the job is in, each with the queue (or worker) the key is of."""
    found = []
    for key in db.keys("*"):
        prefix = next((prefix for prefix in KINDS if key.startswith(prefix.encode())), None)
        if prefix is None:
            continue
        kind, owner = KINDS[prefix], key[len(prefix) :]
        kind_of_key = db.type(key)
        if kind_of_key == b"list":
            found += [(kind, owner)] * db.lrange(key, 0, -1).count(job_id.encode())
        elif kind_of_key == b"zset":
            members = db.zrange(key, 0, -1)
            hits = sum(
                m == job_id.encode() or (kind == "wip" and m.rsplit(b":", 1)[0] == job_id.encode()) for m in members
            )
            found += [(kind, owner)] * hits
    return found


def assert_in_one_place(db: redis.Redis, job_id: str, spoiled_origin: bool) -> None:
    """`spoiled_origin`: the record's origin was changed where it rested, which moves the job by
    name only: a script that finds it by its origin cannot see the entries under the old name (a
    worker drops a stale queue entry when it takes it), one that knows the queue (the worker's
    outcome) leaves it there; either way the job is in one place under one of the two names."""
    status = db.hget(keys.job(job_id), "status")
    where = places(db, job_id)
    views = [where]
    if spoiled_origin:  # in-flight lists are the worker's, under either name
        views = [
            [(kind, owner) for kind, owner in where if kind == "active" or owner == QUEUE.encode()],
            [(kind, owner) for kind, owner in where if kind == "active" or owner != QUEUE.encode()],
        ]
    kinds = [sorted(kind for kind, _ in view) for view in views]
    if status is None or status.decode(errors="replace") not in PLACES:
        # a record whose status was spoiled where it rests: left there, never copied elsewhere
        assert any(len(set(view) - {"wip"}) <= 1 for view in kinds), f"{job_id} ({status!r}) is in {where}"
        return
    assert any(view in PLACES[status.decode()] for view in kinds), f"{job_id} ({status!r}) is in {where or 'no place'}"


@dataclass
class Jobs:
    """A scenario's records and scripts, on a real Redis."""

    db: redis.Redis
    t: Transitions

    def record(self, job_id: str, **fields) -> None:
        self.db.hset(
            keys.job(job_id),
            mapping={
                "status": "queued",
                "origin": QUEUE,
                "data": PAYLOAD,
                "jobctl_job": "add",
                "created_at": rq_time(NOW),
                "timeout": 30,
                "failure_ttl": 600,
                "result_ttl": 600,
                **fields,
            },
        )

    def queued(self, job_id: str, **fields) -> None:
        self.record(job_id, **fields)
        self.db.rpush(keys.queue(QUEUE), job_id)
        self.db.sadd(keys.QUEUES, keys.queue(QUEUE))

    def started(self, job_id: str, **fields) -> None:
        """Queued, then taken by the worker with its own fetch (slot, attempt, registry entry)."""
        self.queued(job_id, **fields)
        (row,) = self.t.fetch(WORKER, TOKEN, [QUEUE], NOW, 1, LIMITS)
        assert row[0] == job_id.encode()

    def reserved(self, job_id: str, behind: str) -> None:
        """`behind` started and `job_id` reserved behind it, by the outcome of a job before them."""
        self.started("before")
        self.queued(behind)
        self.queued(job_id)
        self.t.succeed("before", QUEUE, WORKER, 1, NOW, b"3", GoOn([QUEUE], LIMITS, reserve=1))

    def dead(self, job_id: str) -> None:
        self.started(job_id)
        self.fail(job_id, "dead", GoOn([]))

    def fail(self, job_id: str, verdict: str, go_on: GoOn) -> object:
        entry = {"attempt": 1, "at": NOW, "error": "ValueError: no", "worker": WORKER}
        return self.t.fail(
            job_id,
            QUEUE,
            WORKER,
            1,
            NOW,
            verdict=verdict,
            retry_at=NOW + 60,
            error_entry=entry,
            exc_info=zlib.compress(b"Traceback"),
            reason="no",
            go_on=go_on,
        )


def rows_of(reply: object) -> list:
    """The job rows a script replied (fetch's list, an outcome's Next), for the worker to read."""
    if isinstance(reply, list):  # fetch's rows (overdue's and heartbeat's lists are not rows)
        return [row for row in reply if isinstance(row, list)]
    replied = (getattr(reply, "row", None), *getattr(reply, "more", ()), *getattr(reply, "reserved", ()))
    return [row for row in replied if row]


# Each scenario: (set up the jobs before the script runs, run the script, the status the first
# job must end in whatever its other fields say (None: it depends on them), the jobs to check).
Setup = Callable[[Jobs], None]
Run = Callable[[Jobs], object]
SCENARIOS: dict[str, tuple[Setup, Run, str | None, list[str]]] = {
    "fetch": (
        lambda j: j.queued("a"),
        lambda j: j.t.fetch(WORKER, TOKEN, [QUEUE], NOW, 2, LIMITS),
        "started",
        ["a"],
    ),
    "succeed, starting the next": (
        lambda j: (j.started("a"), j.queued("b"), j.queued("c")),
        lambda j: j.t.succeed("a", QUEUE, WORKER, 1, NOW, b"3", GoOn([QUEUE], LIMITS, reserve=1)),
        "finished",
        ["a", "b", "c"],
    ),
    "succeed, two together, starting two": (
        lambda j: (j.started("a"), j.started("x"), j.queued("b"), j.queued("c")),
        lambda j: j.t.succeed_many(
            WORKER, NOW, [Finished("a", QUEUE, 1, b"3"), Finished("x", QUEUE, 1, b"4")], GoOn([QUEUE], LIMITS), 2
        ),
        "finished",
        ["a", "x", "b", "c"],
    ),
    "succeed, starting the reserved one": (
        lambda j: (j.reserved("b", behind="a"), j.queued("c")),
        lambda j: j.t.succeed("a", QUEUE, WORKER, 1, NOW, b"3", GoOn([QUEUE], LIMITS, ("b", QUEUE), reserve=1)),
        None,  # the job behind it started first, its outcome not sent yet
        ["a", "b", "c"],
    ),
    "fail to retry": (
        lambda j: (j.started("a"), j.queued("b")),
        lambda j: j.fail("a", "retry", GoOn([QUEUE], LIMITS)),
        "scheduled",
        ["a", "b"],
    ),
    "fail dead, with a dependent": (
        lambda j: (j.started("a"), deferred(j, "child", parent="a")),
        lambda j: j.fail("a", "dead", GoOn([QUEUE], LIMITS)),
        "failed",
        ["a", "child"],
    ),
    "fail canceled": (
        lambda j: j.started("a"),
        lambda j: j.fail("a", "canceled", GoOn([])),
        "canceled",
        ["a"],
    ),
    "recover after a crash": (
        lambda j: j.reserved("b", behind="a"),
        lambda j: j.t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="killed"),
        None,
        ["a", "b"],
    ),
    "recover burying at crash_limit": (
        lambda j: j.started("a"),
        lambda j: j.t.recover(WORKER, NOW, cause="crash", crash_limit=1, how="killed"),
        "failed",
        ["a"],
    ),
    "sweep of a lost worker": (
        lambda j: (j.started("a"), j.db.delete(keys.worker(WORKER))),
        lambda j: j.t.sweep([], [QUEUE], NOW, crash_limit=3),
        "queued",
        ["a"],
    ),
    "release of a reservation": (
        lambda j: j.reserved("b", behind="a"),
        lambda j: j.t.release(WORKER, "b", QUEUE, NOW),
        None,
        ["a", "b"],
    ),
    "cancel queued": (
        lambda j: j.queued("a"),
        lambda j: j.t.cancel("a", NOW, "by hand"),
        None,
        ["a"],
    ),
    "cancel started": (
        lambda j: j.started("a"),
        lambda j: j.t.cancel("a", NOW, "by hand"),
        "started",
        ["a"],
    ),
    "requeue-dead, with a dependent": (
        lambda j: (deferred(j, "child", parent="a"), j.dead("a")),
        lambda j: j.t.requeue_dead(["a"], NOW),
        None,
        ["a", "child"],
    ),
    "enqueue-now": (
        lambda j: (j.record("a", status="scheduled"), j.db.zadd(keys.scheduled(QUEUE), {"a": NOW + 60})),
        lambda j: j.t.enqueue_now("a", NOW),
        None,
        ["a"],
    ),
    "promote": (
        lambda j: (
            j.record("a", status="scheduled"),
            j.db.zadd(keys.scheduled(QUEUE), {"a": NOW - 1}),
            j.db.sadd(keys.QUEUES, keys.queue(QUEUE)),
        ),
        lambda j: j.t.promote("me", 5000, NOW),
        None,
        ["a"],
    ),
    "promote, adopting a child RQ deferred": (
        lambda j: (deferred(j, "child", parent="a"), j.db.zadd(keys.deferred(QUEUE), {"child": NOW}), j.dead("a")),
        lambda j: j.t.promote("me", 5000, NOW),
        None,
        ["child", "a"],
    ),
    "sweep of a job RQ canceled": (
        lambda j: (
            deferred(j, "child", parent="a"),
            j.record("a", status="canceled"),
            j.db.zadd(keys.canceled(QUEUE), {"a": NOW - 1}),
        ),
        lambda j: j.t.sweep([], [QUEUE], NOW, crash_limit=3),
        None,
        ["a", "child"],
    ),
    "purge": (
        lambda j: (j.started("a"), j.t.succeed("a", QUEUE, WORKER, 1, NOW - 10_000, b"3", GoOn([]))),
        lambda j: j.t.purge(QUEUE, "finished", ["a"], NOW, dry_run=False),
        None,
        ["a"],
    ),
    "overdue": (
        lambda j: j.started("a"),
        lambda j: j.t.overdue([WORKER], NOW + 1000),
        "started",
        ["a"],
    ),
    "heartbeat": (
        lambda j: j.started("a"),
        lambda j: j.t.heartbeat(WORKER, TOKEN, rq_time(NOW), 20, 1.0, 1000),
        "started",
        ["a"],
    ),
    "enqueue, reusing an ended job's id": (
        lambda j: (j.started("a"), j.t.succeed("a", QUEUE, WORKER, 1, NOW, b"3", GoOn([]))),
        lambda j: store_job(j.t, "a", QUEUE, {"data": PAYLOAD, "jobctl_job": "add"}, now=NOW),
        "queued",
        ["a"],
    ),
}


def deferred(j: Jobs, child: str, parent: str) -> None:
    """`child` deferred behind `parent`, as enqueue.lua leaves it."""
    j.record(child, status="deferred")
    j.db.zadd(keys.deferred(QUEUE), {child: "+inf"})
    j.db.sadd(keys.dependencies(child), parent)
    j.db.sadd(keys.dependents(parent), child)
    j.db.hset(keys.job(parent), "jobctl_dependents", 1)


def spoil(db: redis.Redis, field: str, value: bytes) -> None:
    for key in db.keys("rq:job:*"):
        if db.type(key) == b"hash":
            db.hset(key, field, value)


def snapshot(db: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: db.dump(key) for key in db.keys("*")}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_spoiled_field_leaves_every_job_in_one_place(db, scenario, field):
    setup, run, ends_as, jobs = SCENARIOS[scenario]
    for kind, value in SPOILED.items():
        db.flushdb()
        db.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": QUEUE})
        db.sadd(keys.ACTIVE_WORKERS, WORKER)
        j = Jobs(db, Transitions(db))
        setup(j)
        spoil(db, field, value)
        before = snapshot(db)
        try:
            reply = run(j)
        except redis.ResponseError as exc:
            # a script may refuse, but only before it writes anything
            assert snapshot(db) == before, f"{scenario}, {field} {kind}: raised after writing: {exc}"
            continue
        for row in rows_of(reply):
            job_from_row(row)  # the worker reads what it was given without raising
        for job_id in jobs:
            assert_in_one_place(db, job_id, spoiled_origin=field == "origin")
        if ends_as is not None and field not in PRESENCE_MATTERS:
            assert db.hget(keys.job(jobs[0]), "status") == ends_as.encode(), (scenario, field, kind)


@pytest.mark.parametrize("kind", SPOILED)
def test_spoiled_limit_registries_and_worker_fields_stop_no_job(db, kind):
    """What limits keep (a job type's slots, a rate's window and next return) and a worker's own
    fields, spoiled: a limited job is still taken, and a crashed worker's jobs still go back."""
    value = SPOILED[kind]
    db.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": value})
    db.sadd(keys.ACTIVE_WORKERS, WORKER)
    rate = keys.job_rate_limit("add")
    db.hset(keys.slots("add"), mapping={"ghost": value, value: WORKER})
    db.set(keys.rate_next(rate), value)
    db.zadd(keys.rate_window(rate), {value: NOW - 100})
    j = Jobs(db, Transitions(db))
    j.queued("a")
    limits = {**LIMITS, rate: "5 1"}
    (row,) = j.t.fetch(WORKER, TOKEN, [QUEUE], NOW, 1, limits)
    assert row[0] == b"a" and db.hget(keys.job("a"), "status") == b"started"
    j.t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="killed")
    assert db.hget(keys.job("a"), "status") == b"queued"
    assert_in_one_place(db, "a", spoiled_origin=False)
    assert not db.hexists(keys.slots("add"), "a")
