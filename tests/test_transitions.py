"""Every transition script as a table of (state, event) -> next state and the keys it touches,
on fakeredis with Lua: fast unit tests of the scripts' logic. The integration tests run the
same scripts on a real Redis through real workers."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence

import fakeredis
import pytest
from stored import new_job_fields, store_job

from jobctl.errors import LeaseLost
from jobctl.store import keys
from jobctl.store.transitions import Finished, GoOn, Row, Transitions

NOW = 1_800_000_000.0
WORKER, TOKEN = "host.1", "lease-token"


@pytest.fixture
def redis_():
    return fakeredis.FakeRedis()


@pytest.fixture
def t(redis_) -> Transitions:
    redis_.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": "q"})
    redis_.sadd(keys.ACTIVE_WORKERS, WORKER)
    return Transitions(redis_)


def enqueue(
    t: Transitions,
    job_id: str,
    *,
    run_at: float = 0,
    parents: Sequence[str] = (),
    crash_limit: int = 3,
    unique_claim: str = "",
    outcome: str = "ok",
) -> str:
    """Store a job (the enqueue's outcome must be `outcome`); returns its state."""
    fields = new_job_fields(
        "add", [1], {}, "q", now=NOW, timeout=30, result_ttl=60, failure_ttl=600, max_retries=2, crash_limit=crash_limit
    )
    replied, _, state = store_job(
        t, job_id, "q", fields, now=NOW, run_at=run_at, parents=parents, unique_claim=unique_claim
    )
    assert replied == outcome
    return state


def status(redis_, job_id: str) -> str:
    return redis_.hget(keys.job(job_id), "status").decode()


def start(t: Transitions, job_id: str) -> Row:
    (row,) = t.fetch(WORKER, TOKEN, ["q"], NOW)
    assert row[0].decode() == job_id
    return row


def fail(t: Transitions, row: Row, verdict: str, retry_at: float | None = None) -> None:
    """The worker's outcome for a failed attempt of the started job `row`, going on with nothing."""
    t.fail(
        row[0].decode(),
        "q",
        WORKER,
        int(row[2]),
        NOW,
        verdict=verdict,
        retry_at=retry_at,
        error_entry={"attempt": 1, "at": NOW, "error": "E: x", "worker": WORKER},
        exc_info=b"tb",
        reason="why",
        go_on=GoOn([]),
    )


@pytest.mark.parametrize(
    "run_at, parents, state, where",
    [
        (0, [], "queued", keys.queue("q")),
        (NOW + 60, [], "scheduled", keys.scheduled("q")),
        (0, ["parent"], "deferred", keys.deferred("q")),
    ],
)
def test_enqueue(t, redis_, run_at, parents, state, where):
    if parents:
        enqueue(t, "parent")
    assert enqueue(t, "j", run_at=run_at, parents=parents) == state
    assert status(redis_, "j") == state
    members = redis_.lrange(where, 0, -1) if where == keys.queue("q") else redis_.zrange(where, 0, -1)
    assert b"j" in members


def test_fetch_moves_the_job_into_the_workers_in_flight_list(t, redis_):
    enqueue(t, "j")
    row = start(t, "j")
    assert (status(redis_, "j"), int(row[2])) == ("started", 1)
    assert redis_.lrange(keys.active(WORKER), 0, -1) == [b"j"]
    assert redis_.zrange(keys.started("q"), 0, -1) == [b"j:1"]
    assert redis_.llen(keys.queue("q")) == 0


def test_fetch_needs_the_lease(t, redis_):
    enqueue(t, "j")
    with pytest.raises(LeaseLost):
        t.fetch(WORKER, "stale", ["q"], NOW)
    assert redis_.llen(keys.queue("q")) == 1


def test_succeed_finishes_starts_the_next_and_queues_a_dependent(t, redis_):
    enqueue(t, "j")
    enqueue(t, "child", parents=["j"])
    enqueue(t, "next")
    row = start(t, "j")
    following = t.succeed("j", "q", WORKER, int(row[2]), NOW, b"2", GoOn(["q"])).row
    assert status(redis_, "j") == "finished" and redis_.hget(keys.job("j"), "result") == b"2"
    assert redis_.zscore(keys.finished("q"), "j") == NOW + 60
    assert redis_.xlen(keys.results("j")) == 1
    assert following[0] == b"next" and status(redis_, "next") == "started"
    assert status(redis_, "child") == "queued"
    assert redis_.lrange(keys.active(WORKER), 0, -1) == [b"next"]


def test_go_on_after_an_outcome_recorded_alone_starts_the_reserved_job_then(t, redis_):
    """A job with hooks: its outcome is recorded going on with nothing, the hooks run, and only
    then is the job reserved behind it started (its deadline from that moment), with the lease."""
    for job_id in ("before", "j", "reserved", "after"):
        enqueue(t, job_id)
    start(t, "before")
    reply = t.succeed("before", "q", WORKER, 1, NOW, b"2", GoOn(["q"], reserve=1))
    assert (reply.row[0], reply.reserved[0][0]) == (b"j", b"reserved")
    t.succeed("j", "q", WORKER, 1, NOW + 1, b"2", GoOn([]))
    assert status(redis_, "reserved") == "queued"  # not started while the hooks run
    with pytest.raises(LeaseLost):
        t.go_on(WORKER, "stale", GoOn(["q"], start=("reserved", "q"), reserve=1), NOW + 30)
    assert status(redis_, "reserved") == "queued"
    reply = t.go_on(WORKER, TOKEN, GoOn(["q"], start=("reserved", "q"), reserve=1), NOW + 30)
    assert (reply.started, reply.reserved[0][0]) == (1, b"after")
    assert status(redis_, "reserved") == "started"
    assert float(redis_.hget(keys.job("reserved"), "jobctl_deadline")) == NOW + 30 + 30


def test_an_outcome_for_a_recovered_job_is_refused(t, redis_):
    enqueue(t, "j")
    row = start(t, "j")
    t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="worker killed by signal 9 (SIGKILL)")
    with pytest.raises(LeaseLost):
        t.succeed("j", "q", WORKER, int(row[2]), NOW, b"2", GoOn(["q"]))
    assert status(redis_, "j") == "queued"


@pytest.mark.parametrize(
    "verdict, state, registry",
    [
        ("retry", "scheduled", keys.scheduled),
        ("dead", "failed", keys.dead),
        ("canceled", "canceled", keys.canceled),
    ],
)
def test_fail(t, redis_, verdict, state, registry):
    enqueue(t, "j")
    enqueue(t, "child", parents=["j"])
    fail(t, start(t, "j"), verdict, retry_at=NOW + 10 if verdict == "retry" else None)
    assert status(redis_, "j") == state
    assert redis_.zscore(registry("q"), "j") is not None
    assert redis_.llen(keys.active(WORKER)) == 0
    assert status(redis_, "child") == ("deferred" if verdict == "retry" else "canceled")


def test_recover_puts_the_job_back_at_the_front_and_buries_it_at_the_crash_limit(t, redis_):
    enqueue(t, "j", crash_limit=2)
    enqueue(t, "other")
    for crash in (1, 2):
        redis_.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": "q"})
        start(t, "j")
        requeued, buried = t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="worker exited (status 0)")
        assert redis_.hget(keys.job("j"), "jobctl_crashes") == str(crash).encode()
    assert (requeued, buried) == (0, 1) and status(redis_, "j") == "failed"
    assert redis_.hget(keys.job("j"), "jobctl_reason") == b"worker exited (status 0) 2 times"
    assert not redis_.exists(keys.worker(WORKER)) and not redis_.sismember(keys.ACTIVE_WORKERS, WORKER)


def test_recover_blames_only_the_culprits(t, redis_):
    for job_id in ("stuck", "bystander"):
        enqueue(t, job_id)
    t.fetch(WORKER, TOKEN, ["q"], NOW, count=2)
    t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="killed", culprits=["stuck"])
    assert redis_.hget(keys.job("stuck"), "jobctl_crashes") == b"1"
    assert redis_.hget(keys.job("bystander"), "jobctl_crashes") is None
    assert redis_.lrange(keys.queue("q"), 0, -1) == [b"stuck", b"bystander"]


def test_promote_queues_due_jobs_once_per_promoter(t, redis_):
    enqueue(t, "j", run_at=NOW + 5)
    assert t.promote("sup-a", 2000, NOW) == 0
    assert t.promote("sup-b", 2000, NOW + 6) is None  # sup-a holds the promoter lease
    assert t.promote("sup-a", 2000, NOW + 6) == 1 and status(redis_, "j") == "queued"


@pytest.mark.parametrize("state", ["queued", "scheduled", "deferred", "started"])
def test_cancel(t, redis_, state):
    enqueue(t, "parent")
    enqueue(t, "j", run_at=NOW + 60 if state == "scheduled" else 0, parents=["parent"] if state == "deferred" else [])
    if state == "started":
        redis_.lrem(keys.queue("q"), 0, "parent")
        start(t, "j")
    assert t.cancel("j", NOW, "by an operator") == state
    if state == "started":  # its worker is asked to stop it
        assert status(redis_, "j") == "started" and redis_.hget(keys.job("j"), "jobctl_stop_requested")
    else:
        assert status(redis_, "j") == "canceled" and redis_.zscore(keys.canceled("q"), "j") is not None


def test_requeue_dead(t, redis_):
    enqueue(t, "j")
    fail(t, start(t, "j"), "dead")
    redis_.hset(keys.job("foreign"), "status", "failed")  # another tool's dead record, without a queue
    assert t.requeue_dead(["foreign", "j", "nope"], NOW) == ["j"] and t.requeue_dead(["j"], NOW) == []
    assert status(redis_, "j") == "queued" and redis_.hget(keys.job("j"), "jobctl_attempts") == b"0"
    assert status(redis_, "foreign") == "failed"


def test_requeue_dead_brings_back_only_the_dependents_no_other_parent_dooms(t, redis_):
    """A job waiting for two parents is canceled when one dies: requeueing that parent while the
    other one is dead too must not bring it back to wait for a parent that is still dead."""
    for parent in ("p1", "p2"):
        enqueue(t, parent)
        fail(t, start(t, parent), "dead")
    assert enqueue(t, "child", parents=["p1", "p2"]) == "canceled"
    culprit = redis_.hget(keys.job("child"), "jobctl_canceled_by").decode()  # the first found dead
    other = {"p1": "p2", "p2": "p1"}[culprit]
    assert t.requeue_dead([culprit], NOW)
    assert status(redis_, "child") == "canceled" and redis_.zscore(keys.canceled("q"), "child") is not None
    assert redis_.hget(keys.job("child"), "jobctl_canceled_by") == other.encode()  # what still dooms it
    assert t.requeue_dead([other], NOW)
    assert status(redis_, "child") == "deferred" and redis_.zscore(keys.deferred("q"), "child") is not None


def test_requeue_dead_keeps_a_unique_job_unique(t, redis_):
    """A unique job requeued from the dead set (or a unique dependent its death canceled) holds its
    claim again, so a copy is refused while it is active; and it is not requeued while a copy
    enqueued after its death is active."""
    claim = keys.unique("u")
    enqueue(t, "a", unique_claim=claim)
    fail(t, start(t, "a"), "dead")
    assert t.requeue_dead(["a"], NOW)
    enqueue(t, "copy", unique_claim=claim, outcome="duplicate")
    fail(t, start(t, "a"), "dead")
    enqueue(t, "copy", unique_claim=claim)
    assert not t.requeue_dead(["a"], NOW)
    assert status(redis_, "a") == "failed" and redis_.get(claim) == b"copy"
    # a unique dependent its parent's death canceled comes back with its claim too
    other = keys.unique("v")
    enqueue(t, "p")
    assert enqueue(t, "child", parents=["p"], unique_claim=other) == "deferred"
    redis_.lrem(keys.queue("q"), 0, "copy")  # so that p is the next job started
    fail(t, start(t, "p"), "dead")
    assert status(redis_, "child") == "canceled" and redis_.get(other) is None
    assert t.requeue_dead(["p"], NOW)
    assert status(redis_, "child") == "deferred" and redis_.get(other) == b"child"


def test_sweep_recovers_lost_workers_and_deletes_expired_jobs(t, redis_):
    enqueue(t, "j")
    enqueue(t, "done")
    redis_.hset(keys.job("done"), "status", "finished")
    redis_.zadd(keys.finished("q"), {"done": NOW - 1})
    start(t, "j")
    redis_.delete(keys.worker(WORKER))  # its lease lapsed
    assert t.sweep([], ["q"], NOW, crash_limit=3) == (1, 1, 0, 1)
    assert status(redis_, "j") == "queued" and not redis_.exists(keys.job("done"))


def test_heartbeat_renews_the_lease_and_reports_stop_requests(t, redis_):
    enqueue(t, "j")
    start(t, "j")
    t.cancel("j", NOW, "by an operator")
    assert t.heartbeat(WORKER, TOKEN, "now", 20, 1.0, 1) == ["j"]
    assert 0 < redis_.ttl(keys.worker(WORKER)) <= 20
    with pytest.raises(LeaseLost):
        t.heartbeat(WORKER, "stale", "now", 20, 1.0, 1)


def test_overdue_lists_jobs_past_their_grace(t, redis_):
    enqueue(t, "j")
    start(t, "j")  # timeout 30 s: grace 10 s
    assert t.overdue([WORKER], NOW + 39) == []
    assert [(w, j) for w, j, _ in t.overdue([WORKER], NOW + 41)] == [(WORKER, "j")]


# how the worker starts a reserved job: with its reservation's attempt and timeout (no limit may
# hold it back), or reading them from its record (GoOn.started_with)
STARTED_WITH = pytest.mark.parametrize("started_with", [(1, 30.0), None], ids=["as reserved", "from its record"])


@STARTED_WITH
def test_an_outcome_reserves_the_next_job_and_the_following_outcome_starts_it(t, redis_, started_with):
    """Concurrency 1 pipelining (go_on in lib.lua): a reserved job stays 'queued' in the worker's
    in-flight list until the outcome of the job before it starts it."""
    for job_id in ("a", "b", "c"):
        enqueue(t, job_id)
    row = start(t, "a")
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], reserve=1))
    assert reply.row[0] == b"b" and reply.reserved[0][0] == b"c" and reply.started is None
    assert status(redis_, "b") == "started" and status(redis_, "c") == "queued"
    assert redis_.lrange(keys.active(WORKER), 0, -1) == [b"b", b"c"]
    assert redis_.llen(keys.queue("q")) == 0
    assert (int(reply.reserved[0][2]), float(reply.reserved[0][4])) == (1, 30.0)  # its attempt and timeout
    go_on = GoOn(["q"], start=("c", "q"), reserve=1, started_with=started_with)
    reply = t.succeed("b", "q", WORKER, int(reply.row[2]), NOW + 1, b"2", go_on)
    assert reply.started == 1 and reply.row is None and reply.reserved == ()
    assert status(redis_, "c") == "started" and float(redis_.hget(keys.job("c"), "jobctl_deadline")) == NOW + 1 + 30
    assert redis_.hget(keys.job("c"), "jobctl_attempts") == b"1"
    assert redis_.zscore(keys.started("q"), "c:1") == NOW + 1 + 30 + 60


@pytest.mark.parametrize("as_reserved", [True, False], ids=["as reserved", "from its record"])
def test_a_reserved_job_without_a_timeout_starts_without_a_deadline(t, redis_, as_reserved):
    """RQ's job_timeout -1 (no timeout): started from its reservation's row as the worker does, the
    job has no deadline and waits in the started registry for ever, as when read from its record."""
    for job_id in ("a", "b", "c"):
        enqueue(t, job_id)
    redis_.hset(keys.job("c"), mapping={"timeout": "-1", "jobctl_timeout": "-1"})
    row = start(t, "a")
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], reserve=1))
    (reserved,) = reply.reserved
    started_with = (int(reserved[2]), float(reserved[4])) if as_reserved else None
    go_on = GoOn(["q"], start=("c", "q"), started_with=started_with)
    assert t.succeed("b", "q", WORKER, int(reply.row[2]), NOW + 1, b"2", go_on).started == 1
    assert redis_.hget(keys.job("c"), "jobctl_deadline") == b"+inf"
    assert redis_.zscore(keys.started("q"), "c:1") == float("inf")


def test_a_reserved_job_starts_without_what_its_previous_attempt_left(t, redis_):
    """A job's progress and stop request are its attempt's: one taken again, here as a reservation
    started by the next outcome, shows none of the last attempt's (its start does not read them:
    they go as it is reserved)."""
    for job_id in ("a", "b", "c"):
        enqueue(t, job_id)
    left = {"jobctl_progress": "40", "jobctl_progress_message": "half way", "jobctl_stop_requested": "by hand"}
    redis_.hset(keys.job("c"), mapping=left)
    row = start(t, "a")
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], reserve=1))
    assert reply.reserved[0][0] == b"c" and status(redis_, "c") == "queued"
    assert redis_.hmget(keys.job("c"), *left) == [None, None, None]
    redis_.hset(keys.job("b"), mapping=left)  # b is started: what it writes stays its own
    reply = t.succeed("b", "q", WORKER, int(reply.row[2]), NOW + 1, b"2", GoOn(["q"], start=("c", "q")))
    assert reply.started == 1 and status(redis_, "c") == "started"
    assert redis_.hmget(keys.job("c"), *left) == [None, None, None]
    assert redis_.hget(keys.job("b"), "jobctl_progress") == b"40"


def test_scripts_redis_lost_are_loaded_again_by_the_next_call(t, redis_):
    """A restart without persistence (here FUNCTION FLUSH) loses the library of functions: the
    next call loads it again, an outcome sent without waiting for its reply too."""
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    redis_.function_flush()
    row = start(t, "a")
    redis_.function_flush()
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"]), wait=False)()
    assert reply.row[0] == b"b"
    assert (status(redis_, "a"), status(redis_, "b")) == ("finished", "started")


@STARTED_WITH
def test_a_reserved_job_canceled_before_it_starts_is_not_started(t, redis_, started_with):
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    row = start(t, "a")
    redis_.sadd(keys.workers_of_queue("q"), keys.worker(WORKER))
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn([], reserve=1))
    assert reply.row is None and reply.reserved == ()  # a worker that stops starts and reserves nothing
    redis_.lmove(keys.queue("q"), keys.active(WORKER), "LEFT", "RIGHT")  # b reserved
    pubsub = redis_.pubsub()
    pubsub.subscribe(keys.commands(WORKER))
    assert t.cancel("b", NOW, "by an operator") == "queued"
    messages = [m for m in iter(lambda: pubsub.get_message(timeout=0.1), None) if m["type"] == "message"]
    assert [m["data"] for m in messages] == [b'{"command":"stop-job","job_id":"b"}']
    enqueue(t, "c")
    (row,) = t.fetch(WORKER, TOKEN, ["q"], NOW)
    reply = t.succeed(
        "c", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], start=("b", "q"), started_with=started_with)
    )
    assert reply.started is None and status(redis_, "b") == "canceled"
    assert redis_.llen(keys.active(WORKER)) == 0


def test_a_reservation_holds_no_limit_until_it_starts(t, redis_):
    """A reserved job takes no concurrency slot (nor rate-window entry, nor breaker trial): its
    limits are checked as it starts. Held back then, it waits in the scheduled set, its attempt
    unused, out of the worker's in-flight list (the reply's started: 0); canceled before, it is
    dropped (started: None)."""
    limits = {keys.job_concurrency_limit("add"): "1"}
    for job_id in ("a", "b", "c", "d"):
        enqueue(t, job_id)
    (row,) = t.fetch(WORKER, TOKEN, ["q"], NOW, limits=limits)
    reply = t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], limits, reserve=2))
    assert reply.row[0] == b"b" and [r[0] for r in reply.reserved] == [b"c", b"d"]  # b started, c and d reserved
    assert set(redis_.hgetall(keys.slots("add"))) == {b"b"}
    assert redis_.hget(keys.job("c"), "jobctl_deadline") is None
    assert t.cancel("c", NOW, "by an operator") == "queued"
    reply = t.go_on(WORKER, TOKEN, GoOn(["q"], limits, start=("c", "q")), NOW)
    assert reply.started is None and redis_.lrange(keys.active(WORKER), 0, -1) == [b"b", b"d"]
    reply = t.go_on(WORKER, TOKEN, GoOn(["q"], limits, start=("d", "q")), NOW)  # b holds the one slot
    assert reply.started == 0 and status(redis_, "d") == "scheduled"
    assert (
        redis_.zscore(keys.scheduled("q"), "d") == NOW + 0.5 and redis_.hget(keys.job("d"), "jobctl_attempts") == b"0"
    )
    assert redis_.lrange(keys.active(WORKER), 0, -1) == [b"b"] and set(redis_.hgetall(keys.slots("add"))) == {b"b"}


def test_outcomes_recorded_together_start_a_job_for_each_or_none_is_recorded(t, redis_):
    """succeed_many: each job's outcome written as alone, then `starts` jobs started; one job
    recovered from the worker meanwhile fences the whole call, which writes nothing."""
    for job_id in ("a", "b", "c", "d", "e"):
        enqueue(t, job_id)
    rows = t.fetch(WORKER, TOKEN, ["q"], NOW, 3)
    done = [Finished(row[0].decode(), "q", int(row[2]), b"1") for row in rows[:2]]
    reply = t.succeed_many(WORKER, NOW, done, GoOn(["q"]), 2)
    assert [row[0] for row in reply.rows] == [b"d", b"e"]
    assert (status(redis_, "a"), status(redis_, "b"), status(redis_, "c")) == ("finished", "finished", "started")
    assert redis_.lrange(keys.active(WORKER), 0, -1) == [b"c", b"d", b"e"]
    assert redis_.zrange(keys.started("q"), 0, -1) == [b"c:1", b"d:1", b"e:1"]
    assert [entry[1][b"return_value"] for entry in redis_.xrange(keys.results("a"))] == [b"MQ=="]
    redis_.lrem(keys.active(WORKER), 1, "d")  # as if recovered
    before = {key: redis_.dump(key) for key in redis_.keys("*")}
    with pytest.raises(LeaseLost):
        t.succeed_many(WORKER, NOW, [Finished("c", "q", 1, b"1"), Finished("d", "q", 1, b"1")], GoOn(["q"]), 2)
    assert {key: redis_.dump(key) for key in redis_.keys("*")} == before


def test_a_reserved_job_goes_back_to_the_front_when_released_or_its_worker_dies(t, redis_):
    for job_id in ("a", "b", "c"):
        enqueue(t, job_id)
    row = start(t, "a")
    t.succeed("a", "q", WORKER, int(row[2]), NOW, b"1", GoOn(["q"], reserve=1))  # starts b, reserves c
    assert t.release(WORKER, "c", "q", NOW) and not t.release(WORKER, "c", "q", NOW)
    assert redis_.lrange(keys.queue("q"), 0, -1) == [b"c"] and status(redis_, "c") == "queued"
    redis_.lmove(keys.queue("q"), keys.active(WORKER), "LEFT", "RIGHT")  # c reserved again
    t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="worker killed by signal 9 (SIGKILL)")
    assert redis_.lrange(keys.queue("q"), 0, -1) == [b"b", b"c"]  # in the order they were taken
    assert redis_.hget(keys.job("c"), "jobctl_crashes") is None  # it never ran: no crash counts against it
    assert redis_.hget(keys.job("b"), "jobctl_crashes") == b"1"


def test_a_reserved_job_without_an_origin_is_given_its_queue_and_never_lost(t, redis_):
    """A record another tool wrote without `origin`, reserved behind the running job: a crash
    gives it back to the queue it was taken from (it was once left `queued` in no list)."""
    for job_id in ("before", "j", "foreign"):
        enqueue(t, job_id)
    redis_.hdel(keys.job("foreign"), "origin")
    start(t, "before")
    reply = t.succeed("before", "q", WORKER, 1, NOW, b"2", GoOn(["q"], reserve=1))
    assert (reply.row[0], reply.reserved[0][0]) == (b"j", b"foreign")
    assert redis_.hget(keys.job("foreign"), "origin") == b"q"
    t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="killed")
    assert status(redis_, "foreign") == "queued" and b"foreign" in redis_.lrange(keys.queue("q"), 0, -1)


def test_requeue_dead_never_writes_a_claim_field_that_names_another_key(t, redis_):
    """A hand-edited `jobctl_unique` naming another of jobctl's keys (the promoter's lease) or a
    key of another type: requeue-dead neither overwrites it nor stops halfway."""
    redis_.set(keys.PROMOTER, "a supervisor", ex=10)
    enqueue(t, "a")
    fail(t, start(t, "a"), "dead")
    redis_.hset(keys.job("a"), "jobctl_unique", keys.PROMOTER)
    assert t.requeue_dead(["a"], NOW) == ["a"]
    assert redis_.get(keys.PROMOTER) == b"a supervisor" and redis_.ttl(keys.PROMOTER) > 0
    claim = keys.unique("wrong-type")
    redis_.rpush(claim, "x")
    fail(t, start(t, "a"), "dead")
    redis_.hset(keys.job("a"), "jobctl_unique", claim)
    assert t.requeue_dead(["a"], NOW) == ["a"] and status(redis_, "a") == "queued"


def test_a_connection_and_its_kept_transitions_are_freed_together():
    """Transitions.of keeps one Transitions per connection (it learns once that a server has no
    functions): an application making a connection per request must not keep them all."""
    connections = [fakeredis.FakeRedis() for _ in range(3)]
    for connection in connections:
        assert Transitions.of(connection) is Transitions.of(connection)
    alive = [weakref.ref(connection) for connection in connections]
    del connection, connections
    gc.collect()
    assert [ref() for ref in alive] == [None, None, None]


# --- circuit breakers (config/limits.py) ---------------------------------------------------------

BREAKER = {keys.job_breaker("add"): "store", keys.breaker_settings("store"): "2 60.0 30.0"}


def fail_counted(t: Transitions, job_id: str, now: float, counted: bool | None = True) -> str:
    """Start `job_id` (the next job) and fail it for good, its breaker counting the failure; returns
    what the breaker did."""
    (row,) = t.fetch(WORKER, TOKEN, ["q"], now, limits=BREAKER)
    assert row[0].decode() == job_id
    reply = t.fail(
        job_id,
        "q",
        WORKER,
        int(row[2]),
        now,
        verdict="dead",
        retry_at=None,
        error_entry={},
        exc_info=b"tb",
        reason="why",
        go_on=GoOn([], BREAKER),
        breaker=counted,
    )
    return reply.breaker


def test_a_breaker_opens_at_its_failures_and_holds_its_jobs_back_without_an_attempt(t, redis_):
    for job_id in ("a", "b", "c"):
        enqueue(t, job_id)
    assert fail_counted(t, "a", NOW) == ""
    assert fail_counted(t, "b", NOW + 1) == "opened store"
    assert redis_.hget(keys.breaker("store"), "state") == b"open"
    assert float(redis_.hget(keys.breaker("store"), "open_until")) == NOW + 31
    assert t.fetch(WORKER, TOKEN, ["q"], NOW + 2, limits=BREAKER) == []
    # c waits for the end of the cool-down, its attempt unused
    assert status(redis_, "c") == "scheduled" and redis_.zscore(keys.scheduled("q"), "c") == NOW + 31
    assert redis_.hget(keys.job("c"), "jobctl_attempts") in (None, b"0")


@pytest.mark.parametrize("spoil", ["opens", "failures key", "breaker key"])
def test_a_spoiled_breaker_never_stops_an_outcome_halfway(t, redis_, spoil):
    # another tool's value in the breaker's hash or under its names: the failed job still ends
    # in its place (dead, in the failed registry) rather than in no list at all
    if spoil == "opens":
        redis_.hset(keys.breaker("store"), "opens", "abc")
    elif spoil == "failures key":
        redis_.set(keys.breaker_failures("store"), "not a sorted set")
    else:
        redis_.set(keys.breaker("store"), "not a hash")
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    fail_counted(t, "a", NOW)
    fail_counted(t, "b", NOW + 1)
    for job_id in ("a", "b"):
        assert status(redis_, job_id) == "failed" and redis_.zscore(keys.dead("q"), job_id) is not None


def test_a_failure_the_breaker_does_not_count_leaves_it_closed(t, redis_):
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    assert fail_counted(t, "a", NOW, counted=False) == ""
    assert fail_counted(t, "b", NOW, counted=False) == ""
    assert redis_.hget(keys.breaker("store"), "state") is None


def test_failures_older_than_the_window_do_not_count(t, redis_):
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    assert fail_counted(t, "a", NOW) == ""
    assert fail_counted(t, "b", NOW + 61) == ""
    assert redis_.zcard(keys.breaker_failures("store")) == 1


def open_breaker(redis_, until: float) -> None:
    redis_.hset(keys.breaker("store"), mapping={"state": "open", "opened_at": until - 30, "open_until": until})


def test_half_open_one_trial_decides_success_closes(t, redis_):
    open_breaker(redis_, NOW)
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    rows = t.fetch(WORKER, TOKEN, ["q"], NOW, count=2, limits=BREAKER)
    assert [row[0] for row in rows] == [b"a"]  # the trial; b waits for its verdict
    assert redis_.hget(keys.breaker("store"), "trial") == b"a"
    assert status(redis_, "b") == "scheduled"
    reply = t.succeed("a", "q", WORKER, int(rows[0][2]), NOW, b"1", GoOn([], BREAKER))
    assert reply.breaker == "closed store"
    assert redis_.hget(keys.breaker("store"), "state") == b"closed"
    assert redis_.hget(keys.breaker("store"), "trial") is None


def test_half_open_a_failed_trial_opens_it_for_another_cooldown(t, redis_):
    open_breaker(redis_, NOW)
    enqueue(t, "a")
    assert fail_counted(t, "a", NOW + 5) == "opened store"
    assert float(redis_.hget(keys.breaker("store"), "open_until")) == NOW + 35
    assert redis_.hget(keys.breaker("store"), "opens") == b"1"


def test_a_trial_whose_worker_is_gone_no_longer_holds_the_breaker(t, redis_):
    """A trial is held like a concurrency slot: recovery of its worker (kill -9) frees it, so the
    next job becomes the trial instead of the breaker staying half-open for good."""
    open_breaker(redis_, NOW)
    for job_id in ("a", "b"):
        enqueue(t, job_id)
    (row,) = t.fetch(WORKER, TOKEN, ["q"], NOW, limits=BREAKER)
    assert row[0] == b"a"
    t.recover(WORKER, NOW, cause="crash", crash_limit=3, how="worker killed by signal 9 (SIGKILL)")
    redis_.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": "q"})  # a new worker
    assert redis_.hget(keys.breaker("store"), "trial") == b"a"
    assert t.cancel("a", NOW, "by an operator") == "queued"
    redis_.zrem(keys.scheduled("q"), "b")  # b, held back behind the trial, comes back
    redis_.rpush(keys.queue("q"), "b")
    redis_.hset(keys.job("b"), "status", "queued")
    (row,) = t.fetch(WORKER, TOKEN, ["q"], NOW + 1, limits=BREAKER)
    assert row[0] == b"b" and redis_.hget(keys.breaker("store"), "trial") == b"b"


def test_a_deferred_job_goes_back_to_the_scheduled_set_with_its_attempt_unused(t, redis_):
    enqueue(t, "a")
    row = start(t, "a")
    assert row[2] in (1, b"1")
    t.fail(
        "a",
        "q",
        WORKER,
        1,
        NOW,
        verdict="deferred",
        retry_at=NOW + 30,
        error_entry={},
        exc_info=b"",
        reason="",
        go_on=GoOn([]),
    )
    assert status(redis_, "a") == "scheduled" and redis_.zscore(keys.scheduled("q"), "a") == NOW + 30
    assert redis_.hget(keys.job("a"), "jobctl_attempts") == b"0"
    assert redis_.hget(keys.job("a"), "jobctl_errors") is None


def test_a_block_is_refused_while_open_and_holds_the_trial_when_half_open(t, redis_):
    open_breaker(redis_, NOW + 10)
    assert t.breaker_enter("store", "2 60.0 30.0", "j", WORKER, NOW) == NOW + 10
    redis_.rpush(keys.active(WORKER), "j")
    assert t.breaker_enter("store", "2 60.0 30.0", "j", WORKER, NOW + 10) is None
    assert redis_.hget(keys.breaker("store"), "trial") == b"j"
    assert t.breaker_enter("store", "2 60.0 30.0", "other", WORKER, NOW + 10) == NOW + 11
    assert t.breaker_record("store", "2 60.0 30.0", "j", WORKER, NOW + 10, failed=False) == "closed store"
