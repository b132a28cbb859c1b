"""A model of jobctl's core, checked mechanically against the real transition scripts.

A Hypothesis rule-based state machine drives the scripts of lua/ (through transitions.py, and the
producer, admin and worker functions that call them) on this test process's real Redis, through
random interleavings of: enqueue (plain, scheduled, unique, with dependencies across queues,
limited by rate and by concurrency), fetch and reservations (up to a worker's prefetch, none of
them holding a limit until it starts), success, failure and retry, successes of a pool's threads
recorded together, a worker crashing, a lease expiring and the sweep, a frozen worker waking,
cancel (queued, reserved, running), requeue-dead, pause and resume, promotion, a batch (jobs
joining it, its seal), and a script interrupted midway (a reply lost with its connection; a
malformed field). Alongside, a Python model says where every job must be.

After every step it checks:
- Redis holds exactly what the model says: each job's status, the order of every queue, every
  worker's in-flight list, the scheduled, deferred, started and ended registries, the
  concurrency slots and the uniqueness claims;
- every job is in exactly one place, the one its status names (a queued job in its queue or, as a
  reservation, in one worker's in-flight list; a started one in its worker's list and the started
  registry; and so on), and every record has a status;
- every in-flight list belongs to a worker the sweep looks at, and right after a sweep only to
  workers whose lease is alive;
- no concurrency slot is held by a live worker for a job it no longer holds;
- a deferred job has a parent still to end and none that dooms it, and a job that waited for its
  parents is released only once they all finished (or, with allow_failure, ended);
- at most one active job holds a uniqueness claim;
- the batch's counts are its jobs' final outcomes (pending + succeeded + failed == total), it is
  complete exactly while sealed with nothing pending, and its callbacks are due once per
  completion (on_complete each generation, on_success at most once, with nothing failed).
A worker that lost its lease and whose jobs were recovered is fenced: each of its calls is
refused and the whole database is compared before and after it (nothing changed); so is the
retry of an outcome whose reply was lost, and a script that raises on a malformed field.

Time: the scripts take the time as an argument, so the model has a clock of its own, given to
them, and to the producer and admin functions in place of time.time(); every step moves it on a
little, some steps a lot (retries, rate windows, ttls falling due). Job ids are numbers, so that
Redis keeps every set of them as an intset and iterates it in order (as the model does).

Bounded for CI: 50 examples of up to 30 steps each (a few seconds). To run as long as you want:
    JOBCTL_MODEL_EXAMPLES=2000 python -m pytest -q tests/test_model.py
(JOBCTL_MODEL_STEPS sets the steps per example; the test prints how many examples and steps ran
and what they did with -s.) A failure prints the shortest sequence of steps Hypothesis found that
breaks an invariant.
"""

from __future__ import annotations

import dataclasses
import json
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
import redis
from conftest import run_model
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import jobctl
from jobctl.api import admin, producer
from jobctl.config import limits
from jobctl.config.queues import BreakerConfig, QueueConfig, QueuesConfig
from jobctl.errors import DuplicateJob, LeaseLost, UnknownBatch, UnknownJob, UsageError
from jobctl.jobs import catalogue
from jobctl.options.liveness import DEFAULT_LEASE_TTL
from jobctl.options.rates import parse_rate
from jobctl.runtime.worker import Worker
from jobctl.store import keys
from jobctl.store.transitions import Finished, GoOn, Next, Transitions

EXAMPLES, STEPS = 50, 30  # by default (conftest.run_model)

NOW = 1_800_000_000.0
SUPERVISOR = "model-supervisor"
ACTIVE = ("queued", "scheduled", "deferred", "started")
ENDED = ("finished", "failed", "canceled")
CRASH_LIMIT = 2
RESULT_TTL, FAILURE_TTL = 60, 600
MQ1 = QueueConfig(
    "mq1", max_retries=1, crash_limit=CRASH_LIMIT, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, timeout=30
)
QUEUE_RATE, JOB_RATE = parse_rate("3/10s"), parse_rate("2/10s")
QUEUES = {"mq1": MQ1, "mq2": dataclasses.replace(MQ1, name="mq2", rate_limit=QUEUE_RATE)}
CONFIG = QueuesConfig("model queue.yml", QUEUES)
RATES = {keys.queue_rate_limit("mq2"): QUEUE_RATE, keys.job_rate_limit("model_rated"): JOB_RATE}
LIMITED = "model_limited"
MALFORMED = b"not json"
CONCURRENCY_RECHECK = 0.5  # lib.lua: a job held back by max_concurrency is tried again this much later
# A circuit breaker on model_breaker's jobs: every worker is given its limits as if its queue.yml
# declared it and the job named it (the job is registered without breaker=: this process's
# catalogue is shared with tests whose queue.yml declares no breaker). Every failure counts.
BREAKER_JOB, BREAKER = "model_breaker", "mbreaker"
BREAKER_SETTINGS = BreakerConfig(BREAKER, failures=2, window=60.0, cooldown=3.0)
BREAKER_LIMITS = {
    keys.job_breaker(BREAKER_JOB): BREAKER,
    keys.breaker_settings(BREAKER): limits.breaker_field(BREAKER_SETTINGS),
}
BREAKER_RECHECK = 1.0  # lib.lua: a job held back behind another's trial is tried again this much later


@jobctl.job("model_plain")
def model_plain(n: int) -> int:
    return n


@jobctl.job(LIMITED, max_concurrency=1)
def model_limited(n: int) -> int:
    return n


@jobctl.job("model_rated", rate_limit=str(JOB_RATE))
def model_rated(n: int) -> int:
    return n


@jobctl.job("model_unique", unique=True)
def model_unique(n: int) -> int:
    return n


@jobctl.job(BREAKER_JOB)
def model_breaker(n: int) -> int:
    return n


KINDS = ["model_plain", LIMITED, "model_rated", "model_unique", BREAKER_JOB]
BATCH = "model-batch"


class Clock:
    """The model's time, given to the producer and admin functions in place of time.time()."""

    def __init__(self) -> None:
        self.now = NOW
        self.next_id = 1000

    def time(self) -> float:
        return self.now

    def new_job_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


CLOCK = Clock()
EVENTS: Counter[str] = Counter()  # what the steps did, for the summary the test prints


@dataclass
class Job:
    id: str
    kind: str
    queue: str
    status: str
    parents: list[str]
    allow_failure: bool
    claim: str = ""
    attempts: int = 0
    crashes: int = 0
    due: float | None = None  # scheduled for
    ended_score: float | None = None  # its ended registry's score
    stop_requested: bool = False
    canceled_by: str | None = None
    children: list[str] = field(default_factory=list)
    deleted: bool = False
    released_when: str = ""  # the parents' statuses when it left deferred (checked once)
    under_breaker: bool = False  # started under the breaker (its record's jobctl_breaker)
    taken_at: float | None = None  # when it last went into a worker's in-flight list


@dataclass
class ModelBreaker:
    """lib.lua's breaker hash and failures window (keys.breaker)."""

    state: str = "closed"
    opened_at: float = 0.0
    open_until: float = 0.0
    trial: str | None = None
    trial_worker: str | None = None
    failures: list[float] = field(default_factory=list)


@dataclass
class ModelWorker:
    """A worker process as the model sees it: the real Worker object (its registration, limits and
    fetch order), what Redis should hold for it, and what the process believes it runs."""

    worker: Worker
    name: str
    concurrency: int
    lease: bool = True  # its hash (the lease) exists
    listed: bool = True  # in ACTIVE_WORKERS: the sweep looks at it
    exited: bool = False  # the process is gone (crashed, or fenced itself)
    active: list[str] = field(default_factory=list)  # jobctl:active:<name>, in order
    running: dict[str, int] = field(default_factory=dict)  # job id -> attempt, as the process believes
    prefetch: int = 1  # concurrency 1: how many jobs it keeps reserved (queue.yml's prefetch)
    reserved: list[tuple[str, str]] = field(default_factory=list)  # (id, queue) of its reservations, in order


# which workers a step can act on
def alive(w: ModelWorker) -> bool:
    return not w.exited


def has_room(w: ModelWorker) -> bool:
    return not w.exited and len(w.running) < w.concurrency and not w.reserved


def runs_jobs(w: ModelWorker) -> bool:
    return not w.exited and bool(w.running)


def holds_lease(w: ModelWorker) -> bool:
    return w.lease


def is_listed(w: ModelWorker) -> bool:
    return w.listed


def lost_its_lease(w: ModelWorker) -> bool:
    return not w.exited and not w.lease


def reserves(w: ModelWorker) -> bool:
    return not w.exited and w.lease and bool(w.reserved)


def pipelines(w: ModelWorker) -> bool:
    """A worker of concurrency 1, which sends its outcomes without waiting (Worker._finish)."""
    return not w.exited and w.lease and w.concurrency == 1 and bool(w.running)


def snapshot(connection: redis.Redis) -> dict[bytes, Any]:
    """Every key and its value: a call that must change nothing is checked against it."""
    found: dict[bytes, Any] = {}
    for key in connection.scan_iter(count=1000):
        kind = connection.type(key)
        if kind == b"hash":
            found[key] = connection.hgetall(key)
        elif kind == b"list":
            found[key] = connection.lrange(key, 0, -1)
        elif kind == b"set":
            found[key] = connection.smembers(key)
        elif kind == b"zset":
            found[key] = connection.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            found[key] = connection.xrange(key)
        else:
            found[key] = connection.get(key)
    return found


def number_order(ids: list[str] | set[str]) -> list[str]:
    """How Redis iterates an intset: in numeric order."""
    return sorted(ids, key=int)


SERVED = st.sampled_from([["mq1", "mq2"], ["mq2", "mq1"], ["mq1"], ["mq2"]])  # a worker's queues, in order
CONCURRENCY = st.sampled_from([1, 1, 3])
PREFETCH = st.sampled_from([1, 1, 2, 3, 0])


class CoreModel(RuleBasedStateMachine):
    """Each example starts from an empty database; each step calls the real code, then works out
    in the model what that call must have done, and checks its reply against it."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        # a client of its own, closed at teardown: the pipelined outcome takes a connection of its
        # own from the pool (Transitions._send) and keeps it
        self.db = redis.Redis.from_url(redis_url)
        self.db.flushdb()
        self.t = Transitions(self.db)
        CLOCK.now, CLOCK.next_id = NOW, 1000
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.queues: dict[str, list[str]] = {q: [] for q in QUEUES}
        self.paused: set[str] = set()
        self.slots: dict[str, str] = {}  # job id -> worker name (jobctl:slots:model_limited)
        self.claims: dict[str, str] = {}  # unique claim key -> job id
        self.rate_starts: dict[str, list[float]] = {name: [] for name in RATES}
        self.breaker = ModelBreaker()
        self.worker_numbers = iter(range(1, 1_000_000))
        EVENTS["examples"] += 1
        self.swept = False
        # one batch per example, as api/batches.py makes it; its callbacks are only marked due here
        # (their enqueue, api/batches.enqueue_due, is not a transition)
        self.db.hset(
            keys.batch(BATCH),
            mapping={
                "total": 0,
                "pending": 0,
                "succeeded": 0,
                "failed": 0,
                "sealed": 0,
                "complete": 0,
                "generation": 0,
                "on_complete": "model_plain",
                "on_success": "model_plain",
            },
        )
        self.batch_members: set[str] = set()
        self.batch_sealed = self.batch_complete = False
        self.batch_completions = 0

    # --- the model's transitions (what lua/*.lua must do) ------------------------------------------

    @property
    def now(self) -> float:
        return CLOCK.now

    def tick(self) -> None:
        """Every step happens a little later than the previous one."""
        CLOCK.now += 0.01
        self.swept = False

    def live(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job if job and not job.deleted else None

    def push_queued(self, job: Job, front: bool = False) -> None:
        job.status, job.due = "queued", None
        if front:
            self.queues[job.queue].insert(0, job.id)
        else:
            self.queues[job.queue].append(job.id)

    def release_unique(self, job: Job) -> None:
        if job.claim and self.claims.get(job.claim) == job.id:
            del self.claims[job.claim]

    def end(self, job: Job, status: str) -> None:
        job.status = status
        job.ended_score = self.now + (RESULT_TTL if status == "finished" else FAILURE_TTL)
        job.due = None
        self.release_unique(job)

    def cancel(self, job: Job) -> None:
        """lib.lua's cancel: out of its queue, scheduled and deferred sets, and a reservation's
        slot given back (the in-flight list keeps the reservation: its worker drops it)."""
        self.queues[job.queue] = [i for i in self.queues[job.queue] if i != job.id]
        self.release_slot(job)
        self.end(job, "canceled")

    def parents_verdict(self, job: Job) -> tuple[str, str | None]:
        verdict = "ready"
        for parent_id in number_order(job.parents):
            parent = self.live(parent_id)
            if parent and parent.status != "finished":
                if parent.status in ("failed", "canceled"):
                    if not job.allow_failure:
                        return "doomed", parent_id
                else:
                    verdict = "waiting"
        return verdict, None

    def cancel_for_parent(self, job: Job, culprit: str) -> None:
        self.cancel(job)
        job.canceled_by = culprit

    def settle_dependents(self, parent_id: str) -> None:
        pending = [parent_id]
        while pending:
            parent = self.jobs[pending.pop()]
            for child_id in number_order(parent.children):
                child = self.live(child_id)
                if child and child.status == "deferred":
                    verdict, culprit = self.parents_verdict(child)
                    EVENTS[f"dependent {verdict}"] += 1
                    if verdict == "ready":
                        child.released_when = ",".join(self.jobs[p].status for p in child.parents)
                        self.push_queued(child)
                    elif verdict == "doomed":
                        assert culprit
                        self.cancel_for_parent(child, culprit)
                        pending.append(child_id)

    def bury(self, job: Job) -> None:
        self.end(job, "failed")
        self.settle_dependents(job.id)

    def window(self, limit: str) -> list[float]:
        starts = self.rate_starts[limit] = [t for t in self.rate_starts[limit] if t > self.now - RATES[limit].period]
        return starts

    def rate_full(self, limit: str, limits: dict[str, str]) -> bool:
        return limit in limits and len(self.window(limit)) >= RATES[limit].count

    def slots_held(self) -> int:
        for job_id, worker in list(self.slots.items()):
            if not self.workers[worker].lease:
                del self.slots[job_id]
        return len(self.slots)

    def may_start(self, job: Job, queue: str, worker: ModelWorker) -> float | None:
        """None when the job may start now (counted against its limits), else when to try again
        (None for a rate: Redis's spread of returns is read back by the caller)."""
        limits = worker.worker.limits
        if job.kind == BREAKER_JOB and (wait := self.breaker_wait(job)) is not None:
            return wait
        limited = keys.job_concurrency_limit(job.kind) in limits
        if limited and self.slots_held() >= int(limits[keys.job_concurrency_limit(job.kind)]):
            return self.now + CONCURRENCY_RECHECK
        job_rate = keys.job_rate_limit(job.kind)
        if job_rate in limits:
            if self.rate_full(job_rate, limits):
                return -1.0  # held back by its rate: the time is read from Redis
            self.rate_starts[job_rate].append(self.now)
        queue_rate = keys.queue_rate_limit(queue)
        if queue_rate in limits:
            self.window(queue_rate)
            self.rate_starts[queue_rate].append(self.now)
        if limited:
            self.slots[job.id] = worker.name
        if job.kind == BREAKER_JOB:
            if self.breaker.state == "open":  # half-open: it is the trial
                self.breaker.trial, self.breaker.trial_worker = job.id, worker.name
            job.under_breaker = True
        return None

    def breaker_wait(self, job: Job) -> float | None:
        """lib.lua's breaker_wait: None when the breaker lets the job start, else when to try again."""
        b = self.breaker
        if b.state != "open":
            return None
        if self.now < b.open_until:
            return b.open_until
        if b.trial is not None and b.trial != job.id:
            holder = self.workers[str(b.trial_worker)]
            if holder.lease and b.trial in holder.active:
                return self.now + BREAKER_RECHECK
            b.trial = b.trial_worker = None  # its holder is gone: dropped
        return None

    def breaker_outcome(self, job: Job, failed: bool | None) -> str:
        """lib.lua's breaker_outcome for an attempt of `job`: every failure counts, a cancel has no
        verdict. Returns what the outcome script replies."""
        b = self.breaker
        if not job.under_breaker:
            return ""
        trial = b.trial == job.id
        if trial:
            b.trial = b.trial_worker = None
        if failed is None or (b.state == "open" and not trial):
            return ""
        if b.state == "open" and not failed:
            b.state = "closed"
            EVENTS["breaker closed by its trial"] += 1
            return f"closed {BREAKER}"
        if b.state != "open":
            if not failed:
                return ""
            b.failures = [at for at in [*b.failures, self.now] if at > self.now - BREAKER_SETTINGS.window]
            if len(b.failures) < BREAKER_SETTINGS.failures:
                return ""
        EVENTS["breaker opened"] += 1
        b.state, b.opened_at, b.open_until, b.failures = "open", self.now, self.now + BREAKER_SETTINGS.cooldown, []
        return f"opened {BREAKER}"

    def take_next(self, worker: ModelWorker, queues: list[str], start: bool = True) -> Job | None:
        """lib.lua's take_next: the next job the worker may start, into its in-flight list; its
        limits are checked only when it `start`s (a reservation holds none)."""
        while True:
            source = next(
                (
                    q
                    for q in queues
                    if not self.rate_full(keys.queue_rate_limit(q), worker.worker.limits) and self.queues[q]
                ),
                None,
            )
            if source is None:
                return None
            job = self.jobs[self.queues[source].pop(0)]
            hold = self.may_start(job, source, worker) if job.status == "queued" and start else None
            if hold is None and job.status == "queued":
                worker.active.append(job.id)
                job.taken_at = self.now
                return job
            if hold is not None:
                self.hold_back(job, hold)

    def hold_back(self, job: Job, hold: float) -> None:
        """lib.lua's hold_back, `hold` as may_start said."""
        held_by = "breaker" if job.kind == BREAKER_JOB else "concurrency limit"
        EVENTS["held back by a " + ("rate" if hold < 0 else held_by)] += 1
        job.status = "scheduled"
        job.due = hold if hold > 0 else self.redis_due(job)
        assert job.due > self.now, (job.id, job.due, self.now)

    def redis_due(self, job: Job) -> float:
        score = self.db.zscore(keys.scheduled(job.queue), job.id)
        assert score is not None, f"job {job.id} held back by a rate is not scheduled"
        return float(score)

    def job_start(self, job: Job, worker: ModelWorker) -> int:
        job.status, job.stop_requested = "started", False
        job.attempts += 1
        worker.running[job.id] = job.attempts
        return job.attempts

    def go_on(self, worker: ModelWorker, go_on: GoOn) -> tuple[int | None, str | None, list[str]]:
        started: int | None = None
        row, reserved = None, []
        if go_on.start:
            job = self.jobs[go_on.start[0]]
            hold = self.may_start(job, go_on.start[1], worker) if job.status == "queued" else None
            EVENTS["reservation found canceled" if job.status != "queued" else "reservation started"] += hold is None
            if job.status != "queued" or hold is not None:
                worker.active.remove(job.id)
            if hold is not None:  # its limits hold it back as it starts
                self.hold_back(job, hold)
                started = 0
            elif job.status == "queued":
                started = self.job_start(job, worker)
        elif go_on.queues:
            taken = self.take_next(worker, go_on.queues)
            if taken:
                self.job_start(taken, worker)
                row = taken.id
        for _ in range(go_on.reserve if go_on.queues else 0):
            taken = self.take_next(worker, go_on.queues, start=False)
            if taken is None:
                break
            reserved.append(taken.id)
        return started, row, reserved

    def release_slot(self, job: Job) -> None:
        self.slots.pop(job.id, None)

    def recover(self, worker: ModelWorker, cause: str) -> tuple[int, int]:
        """lib.lua's recover_worker."""
        requeued = buried = 0
        while worker.active:
            job = self.live(worker.active.pop())
            if job is None or job.status not in ("started", "queued"):
                continue
            EVENTS[f"recovered ({job.status})"] += 1
            was_started = job.status == "started"
            self.release_slot(job)  # a reserved job's slot too: it goes back to its queue
            if was_started:
                job.attempts -= 1
            if was_started and job.stop_requested:
                job.attempts += 1
                self.cancel(job)
                self.settle_dependents(job.id)
                continue
            crashes = 0
            if cause == "crash" and was_started:
                job.crashes += 1
                crashes = job.crashes
            if crashes >= CRASH_LIMIT:
                job.attempts += 1
                self.bury(job)
                buried += 1
            else:
                self.push_queued(job, front=True)
                requeued += 1
        worker.lease = worker.listed = False
        return requeued, buried

    # --- steps ---------------------------------------------------------------------------------

    def pick_worker(self, index: int, which: Callable[[ModelWorker], bool]) -> ModelWorker:
        """One of the workers `which` accepts (the rule's precondition says there is one)."""
        found = [w for w in self.workers.values() if which(w)]
        return found[index % len(found)]

    def any_worker(self, which: Callable[[ModelWorker], bool]) -> bool:
        return any(which(w) for w in self.workers.values())

    def pick_job(self, index: int, *statuses: str) -> Job:
        """One of the jobs with one of `statuses` (any job, deleted ones too, if none is given)."""
        found = [j for j in self.jobs.values() if not statuses or (not j.deleted and j.status in statuses)]
        return found[index % len(found)]

    def any_job(self, *statuses: str) -> bool:
        return any(not statuses or (not j.deleted and j.status in statuses) for j in self.jobs.values())

    def fetch_order(self, worker: ModelWorker) -> list[str]:
        worker.worker.control.check_pauses()  # as its control thread does when pauses change
        order = worker.worker.fetch_order()
        assert order == [q for q in worker.worker.queues if q not in self.paused]
        return order

    @initialize(queues=SERVED, concurrency=CONCURRENCY, prefetch=PREFETCH)
    def first_worker(self, queues: list[str], concurrency: int, prefetch: int) -> None:
        self.start_worker(queues, concurrency, prefetch)

    @initialize(
        backlog=st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(list(QUEUES))), min_size=1, max_size=6)
    )
    def first_jobs(self, backlog: list[tuple[str, str]]) -> None:
        for kind, queue in backlog:
            self.enqueue(kind, queue, delay=0, argument=0, parents=[], allow_failure=False)

    @precondition(lambda self: sum(map(alive, self.workers.values())) < 4)
    @rule(queues=SERVED, concurrency=CONCURRENCY, prefetch=PREFETCH)
    def start_worker(self, queues: list[str], concurrency: int, prefetch: int) -> None:
        self.tick()
        worker = Worker(self.db, [QUEUES[q] for q in queues], supervisor=SUPERVISOR, concurrency=concurrency)
        # a number, so that the sweep goes through ACTIVE_WORKERS (an intset) in the model's order
        worker.name = str(next(self.worker_numbers))
        worker.limits.update(BREAKER_LIMITS)
        worker._register()
        self.workers[worker.name] = ModelWorker(worker, worker.name, concurrency, prefetch=prefetch)

    @rule(
        kind=st.sampled_from(KINDS),
        queue=st.sampled_from(list(QUEUES)),
        delay=st.sampled_from([0, 0, 0, 2, 30]),
        argument=st.integers(0, 2),
        parents=st.lists(st.integers(0, 1000), max_size=2, unique=True),
        allow_failure=st.booleans(),
        in_batch=st.booleans(),
    )
    def enqueue(
        self,
        kind: str,
        queue: str,
        delay: float,
        argument: int,
        parents: list[int],
        allow_failure: bool,
        in_batch: bool = False,
    ) -> None:
        self.tick()
        candidates = list(self.jobs)  # deleted ones too: refused as unknown
        parent_ids = sorted({candidates[i % len(candidates)] for i in parents}) if candidates else []
        run_at = self.now + delay if delay else None
        claim = producer.unique_claim(catalogue.get(kind), [argument], {}) if kind == "model_unique" else ""
        holder = self.live(self.claims.get(claim, ""))
        missing = next((p for p in parent_ids if not self.live(p)), None)
        try:
            enqueued = producer.enqueue(
                self.db,
                CONFIG,
                kind,
                [argument],
                queue=queue,
                run_at=run_at,
                depends_on=parent_ids,
                allow_failure=allow_failure,
                batch=BATCH if in_batch else "",
            )
        except UnknownBatch:
            EVENTS["complete batch refused a job"] += 1
            assert in_batch and self.batch_complete, "refused by a batch that is not complete"
            return
        except DuplicateJob as exc:
            EVENTS["duplicate refused"] += 1
            assert holder and holder.status in ACTIVE and exc.job_id == holder.id, (exc, holder)
            return
        except UsageError as exc:
            EVENTS["unknown parent refused"] += 1
            assert missing and missing in str(exc), (exc, missing)
            return
        assert not (claim and holder and holder.status in ACTIVE), f"a copy of {holder} was enqueued"
        assert missing is None, f"enqueued behind {missing}, which no longer exists"
        assert not (in_batch and self.batch_complete), "a complete batch took a job"
        job = self.jobs[enqueued.id] = Job(enqueued.id, kind, queue, "", parent_ids, allow_failure, claim=claim)
        if claim:
            self.claims[claim] = job.id
        if in_batch:
            self.batch_members.add(job.id)
        for parent in parent_ids:
            self.jobs[parent].children.append(job.id)
        verdict, culprit = self.parents_verdict(job) if parent_ids else ("ready", None)
        if verdict == "doomed":
            assert culprit
            self.cancel_for_parent(job, culprit)
        elif verdict == "waiting":
            job.status = "deferred"
        elif run_at:
            job.status, job.due = "scheduled", run_at
        else:
            self.push_queued(job)
        assert enqueued.state == job.status
        EVENTS[f"enqueued {job.status}"] += 1

    def can_work(self, worker: ModelWorker) -> bool:
        return runs_jobs(worker) or (has_room(worker) and self.any_job("queued"))

    @precondition(lambda self: self.any_worker(self.can_work))
    @rule(
        index=st.integers(0, 10),
        fetch_first=st.booleans(),
        count=st.integers(1, 3),
        pick=st.integers(0, 10),
        verdict=st.sampled_from(["finished", "retry", "dead", "canceled"]),
        stop=st.booleans(),
    )
    def work(self, index: int, fetch_first: bool, count: int, pick: int, verdict: str, stop: bool) -> None:
        """A worker's next step: fetch up to `count` jobs if it has room (with jobs running, if
        `fetch_first`), or record the outcome `verdict` of one it runs and, in the same round trip,
        go on (`stop`: it is stopping, and takes no next job)."""
        self.tick()
        worker = self.pick_worker(index, self.can_work)
        if worker.running and not (fetch_first and has_room(worker) and self.any_job("queued")):
            self.record_outcome(worker, list(worker.running)[pick % len(worker.running)], verdict, stop)
        else:
            self.fetch(worker, min(count, worker.concurrency - len(worker.running)))

    @precondition(lambda self: self.any_worker(lambda w: pipelines(w) and bool(w.reserved)))
    @rule(index=st.integers(0, 10), verdict=st.sampled_from(["finished", "finished", "retry", "dead"]))
    def work_through_a_reservation(self, index: int, verdict: str) -> None:
        """A concurrency-1 worker holding reservations records its job's outcome and starts the
        first one (as reserved, or read from its record when a limit may hold it back): the path
        each job of a busy worker takes, which `work` reaches only now and then."""
        self.tick()
        worker = self.pick_worker(index, lambda w: pipelines(w) and bool(w.reserved))
        self.record_outcome(worker, next(iter(worker.running)), verdict, stop=False)

    @precondition(lambda self: self.any_worker(lambda w: runs_jobs(w) and w.concurrency > 1))
    @rule(index=st.integers(0, 10), picks=st.sets(st.integers(0, 10), min_size=1), starts=st.integers(0, 3))
    def finish_together(self, index: int, picks: set[int], starts: int) -> None:
        """Threads of a pool worker whose jobs succeeded together record them in one call
        (reservation.Together), which starts up to `starts` jobs (0: they are stopping)."""
        self.tick()
        worker = self.pick_worker(index, lambda w: runs_jobs(w) and w.concurrency > 1)
        running = list(worker.running)
        ids = list(dict.fromkeys(running[pick % len(running)] for pick in sorted(picks)))
        queues = self.fetch_order(worker) if starts else []
        go_on = GoOn(queues, worker.worker.limits)
        finished = [Finished(job_id, self.jobs[job_id].queue, worker.running[job_id], b"1") for job_id in ids]

        def call() -> Any:
            return self.t.succeed_many(worker.name, self.now, finished, go_on, starts)

        if any(job_id not in worker.active for job_id in ids):  # recovered from this worker: none is recorded
            self.fenced(call, worker)
            return
        reply = call()
        assert isinstance(reply, Next)
        EVENTS[f"{len(ids)} outcomes together"] += 1
        breakers = []
        for job_id in ids:
            job = self.jobs[job_id]
            del worker.running[job_id]
            worker.active.remove(job_id)
            self.release_slot(job)
            breakers.append(self.breaker_outcome(job, False))
            self.end(job, "finished")
            self.settle_dependents(job_id)
        expected = []
        for _ in range(starts if queues else 0):
            job = self.take_next(worker, queues)
            if job is None:
                break
            expected.append((job.id, self.job_start(job, worker)))
        assert [(row[0].decode(), int(row[2])) for row in reply.rows] == expected
        assert reply.breaker == "\n".join(filter(None, breakers))

    def fetch(self, worker: ModelWorker, count: int) -> None:
        if not worker.lease:
            self.fenced(lambda: self.t.fetch(worker.name, worker.worker.token, ["mq1"], self.now, count), worker)
            return
        order = self.fetch_order(worker)
        rows = self.t.fetch(worker.name, worker.worker.token, order, self.now, count, worker.worker.limits)
        expected = []
        for _ in range(count):
            job = self.take_next(worker, order)
            if job is None:
                break
            expected.append((job.id, self.job_start(job, worker)))
        assert [(r[0].decode(), int(r[2])) for r in rows] == expected
        EVENTS["fetched"] += len(rows)

    def fenced(self, call: Any, worker: ModelWorker) -> None:
        """A worker whose lease is gone is refused and changes nothing; then it exits."""
        EVENTS["fenced"] += 1
        before = snapshot(self.db)
        with pytest.raises(LeaseLost):
            call()
        assert snapshot(self.db) == before, "a fenced call changed Redis"
        worker.exited = True

    def record_outcome(
        self, worker: ModelWorker, job_id: str, verdict: str, stop: bool, drop_reply: bool = False
    ) -> None:
        attempt = worker.running.pop(job_id)
        queues = [] if stop else self.fetch_order(worker)
        go_on = GoOn(queues, worker.worker.limits)
        if worker.concurrency == 1:  # as Worker._finish goes on
            if worker.reserved and queues:  # Reservation._go_on: start the first, keep `prefetch` behind
                go_on.start, go_on.reserve = worker.reserved[0], worker.prefetch - (len(worker.reserved) - 1)
                # with its reservation's attempt and timeout, unless a limit may hold it back
                reserved = self.jobs[go_on.start[0]]
                if not limits.may_hold_back(worker.worker.limits, reserved.kind, reserved.queue):
                    go_on.started_with = (reserved.attempts + 1, QUEUES[reserved.queue].timeout)
            else:
                go_on.reserve = worker.prefetch if queues else 0
        job = self.jobs[job_id]
        retry_at = self.now + 5

        def call(wait: bool) -> Any:
            if verdict == "finished":
                return self.t.succeed(job_id, job.queue, worker.name, attempt, self.now, b"1", go_on, wait=wait)
            entry = {"attempt": attempt, "at": self.now, "error": "E: model", "worker": worker.name}
            return self.t.fail(
                job_id, job.queue, worker.name, attempt, self.now, verdict=verdict, retry_at=retry_at,
                error_entry=entry, exc_info=b"tb", reason="model", go_on=go_on, wait=wait,
                breaker=None if verdict == "canceled" else True,
            )  # fmt: skip

        if job_id not in worker.active:  # recovered from this worker
            self.fenced(lambda: call(True), worker)
            return
        EVENTS[f"outcome {verdict}" + (" (reply lost)" if drop_reply else "")] += 1
        if drop_reply:
            reply = self.reply_lost(worker, job_id, call)
        elif (reply := self.unless_it_errs(lambda: call(True))) is None:
            worker.exited = True  # Worker._process: an error it does not expect ends the process
            return
        worker.active.remove(job_id)
        self.release_slot(job)
        breaker = self.breaker_outcome(job, {"finished": False, "canceled": None}.get(verdict, True))
        if verdict == "finished":
            self.end(job, "finished")
            self.settle_dependents(job_id)
        elif verdict == "retry":
            job.status, job.due = "scheduled", retry_at
        elif verdict == "canceled":
            self.cancel(job)
            self.settle_dependents(job_id)
        else:
            self.bury(job)
        started, row, reserved = self.go_on(worker, go_on)
        if reply is not None:  # a lost reply: what the script did is checked in Redis (the invariants)
            assert isinstance(reply, Next)
            replied = (
                reply.started,
                reply.row and reply.row[0].decode(),
                [row[0].decode() for row in reply.reserved],
            )
            assert replied == (started, row, reserved)
            assert reply.breaker == breaker
        if go_on.start:
            worker.reserved.pop(0)
        worker.reserved += [(job_id, self.jobs[job_id].queue) for job_id in reserved]
        EVENTS["reserved"] += len(reserved)
        if drop_reply:
            worker.exited = True  # it fenced itself: its supervisor reaps it (crash)
            return
        if go_on.start and not started:  # Worker._finish: canceled as it started, or held back by its limits
            self.give_back(worker)
        if not queues:
            self.give_back(worker)

    def reply_lost(self, worker: ModelWorker, job_id: str, call: Any) -> None:
        """The outcome is sent without waiting (Worker._finish, concurrency 1), it runs, and its
        connection drops before the reply is read: the worker's retry finds the job gone (it is
        recorded, once) and is refused, and the worker fences itself."""
        pending = call(False)
        deadline = time.monotonic() + 10
        while self.db.lpos(keys.active(worker.name), job_id) is not None:
            assert time.monotonic() < deadline, "the outcome sent never ran"
            time.sleep(0.001)
        # the connection drops with the reply unread (Transitions._send's connection of its own)
        assert self.t._own is not None
        self.t._own.disconnect()
        with pytest.raises(redis.ConnectionError):
            pending()
        after = snapshot(self.db)
        with pytest.raises(LeaseLost):
            pending()  # Worker._with_redis calls it again after an outage
        assert snapshot(self.db) == after, "the retried outcome wrote again"

    def unless_it_errs(self, call: Any) -> Any:
        """Call a script that may meet a malformed field: it either does its work or raises having
        written nothing (a script that raises keeps the writes it made before). None if it raised."""
        before = snapshot(self.db)
        try:
            return call()
        except redis.ResponseError:
            EVENTS["script error"] += 1
            assert snapshot(self.db) == before, "a script raised after writing part of its work"
            return None

    def give_back(self, worker: ModelWorker) -> None:
        """release.lua: the reservations go back to the front of their queues, the last first (so
        that they keep their order)."""
        while worker.reserved:
            EVENTS["reservation given back"] += 1
            job_id, queue = worker.reserved.pop()
            assert self.t.release(worker.name, job_id, queue, self.now) == (job_id in worker.active)
            if job_id in worker.active:
                worker.active.remove(job_id)
                job = self.jobs[job_id]
                if job.status == "queued":
                    self.push_queued(job, front=True)
                if job_id in self.slots:
                    self.release_slot(job)

    @precondition(lambda self: self.any_worker(alive))
    @rule(index=st.integers(0, 10), running_long=st.booleans())
    def control_thread(self, index: int, running_long: bool) -> None:
        """A worker's control thread beats its heartbeat and, when the job it runs runs long
        (`running_long`), gives its reservation back."""
        self.tick()
        worker = self.pick_worker(index, alive)

        def beat() -> list[str]:
            return self.t.heartbeat(worker.name, worker.worker.token, "now", DEFAULT_LEASE_TTL, 0.0, 0)

        if not worker.lease:
            self.fenced(beat, worker)
            return
        stop = [i for i in worker.active if (job := self.live(i)) and job.stop_requested]
        assert beat() == stop
        if running_long:
            self.give_back(worker)

    @precondition(lambda self: self.any_worker(is_listed))
    @rule(index=st.integers(0, 10), fault=st.sampled_from(["killed", "frozen past its lease"]))
    def worker_fault(self, index: int, fault: str) -> None:
        """A worker process dies (or ended itself, fenced) and its supervisor reaps it; or it is
        frozen (or cut off) past its lease, and Redis expires its hash."""
        self.tick()
        if fault == "killed":
            self.crash(self.pick_worker(index, is_listed))
        elif self.any_worker(holds_lease):
            worker = self.pick_worker(index, holds_lease)
            self.db.delete(keys.worker(worker.name))
            worker.lease = False

    def crash(self, worker: ModelWorker) -> None:
        outcome = self.unless_it_errs(
            lambda: self.t.recover(worker.name, self.now, cause="crash", crash_limit=3, how="killed by the model")
        )
        if outcome is None:
            return
        assert outcome == self.recover(worker, "crash")
        worker.exited = True

    def sweep(self) -> None:
        swept = self.unless_it_errs(lambda: self.t.sweep([], list(QUEUES), self.now, crash_limit=3))
        if swept is None:
            return
        lost = requeued = buried = 0
        for name in number_order([w.name for w in self.workers.values() if w.listed and not w.lease]):
            r, b = self.recover(self.workers[name], "crash")
            lost, requeued, buried = lost + 1, requeued + r, buried + b
        deleted = 0
        for job in self.jobs.values():
            if not job.deleted and job.status in ENDED and job.ended_score is not None and job.ended_score <= self.now:
                EVENTS["deleted by the sweep"] += 1
                job.deleted = True
                deleted += 1
        assert swept == (lost, requeued, buried, deleted)
        self.swept = True

    @precondition(lambda self: self.any_worker(lost_its_lease))
    @rule(index=st.integers(0, 10), pick=st.integers(0, 10), action=st.sampled_from(["heartbeat", "fetch", "outcome"]))
    def frozen_worker_wakes(self, index: int, pick: int, action: str) -> None:
        """A worker whose lease lapsed wakes: its late writes must be fenced once its jobs were
        recovered (an outcome for a job still in its own list is its to write)."""
        self.tick()
        worker = self.pick_worker(index, lost_its_lease)
        if action == "outcome" and worker.running:
            self.record_outcome(worker, list(worker.running)[pick % len(worker.running)], "finished", stop=True)
        elif action == "fetch":
            self.fenced(lambda: self.t.fetch(worker.name, worker.worker.token, ["mq1"], self.now), worker)
        else:
            self.fenced(
                lambda: self.t.heartbeat(worker.name, worker.worker.token, "now", DEFAULT_LEASE_TTL, 0.0, 0), worker
            )

    @precondition(lambda self: self.any_worker(pipelines))
    @rule(index=st.integers(0, 10), verdict=st.sampled_from(["finished", "retry"]))
    def reply_lost_with_its_connection(self, index: int, verdict: str) -> None:
        self.tick()
        worker = self.pick_worker(index, pipelines)
        if self.db.hget(keys.job(next(iter(worker.running))), "jobctl_errors") == MALFORMED:
            return  # the script errs: malformed_errors_field checks that case
        self.record_outcome(worker, next(iter(worker.running)), verdict, stop=False, drop_reply=True)

    @precondition(lambda self: self.any_job())
    @rule(
        action=st.sampled_from(["cancel", "requeue-dead", "enqueue-now", "pause or resume"]),
        pick=st.integers(0, 1000),
        aimed=st.booleans(),
    )
    def operator(self, action: str, pick: int, aimed: bool) -> None:
        """An operator acts on a job: `aimed`, on one the action is for (an active job to cancel, a
        dead one to requeue, a scheduled one to queue now), else on any job, which the action
        leaves as it is if it is not for it; or pauses or resumes a queue (`aimed`: twice)."""
        self.tick()
        if action == "pause or resume":
            self.pause_or_resume(list(QUEUES)[pick % len(QUEUES)], aimed)
            return
        statuses = {"cancel": ACTIVE, "requeue-dead": ("failed",), "enqueue-now": ("scheduled",)}[action]
        job = self.pick_job(pick, *statuses) if aimed and self.any_job(*statuses) else self.pick_job(pick)
        {"cancel": self.cancel_job, "requeue-dead": self.requeue_dead, "enqueue-now": self.enqueue_now}[action](job)

    @precondition(lambda self: self.any_worker(reserves))
    @rule(index=st.integers(0, 10), pick=st.integers(0, 10))
    def cancel_a_reservation(self, index: int, pick: int) -> None:
        """An operator cancels a job a worker holds reserved (queued, in its in-flight list, not
        started): the worker must drop it when it comes to start it. Reservations are few among
        random steps, so the operator's cancel alone almost never meets one."""
        self.tick()
        worker = self.pick_worker(index, reserves)
        job_id, _ = worker.reserved[pick % len(worker.reserved)]
        self.cancel_job(self.jobs[job_id])

    def cancel_job(self, job: Job) -> None:
        if job.deleted:
            with pytest.raises(UnknownJob):
                admin.cancel(self.db, job.id, wait=0)
            return
        status = job.status
        reserved = status == "queued" and any(job.id == i for w in self.workers.values() for i, _ in w.reserved)
        EVENTS["cancel reserved" if reserved else f"cancel {status}"] += 1
        canceled = admin.cancel(self.db, job.id, wait=0)
        assert canceled.state == {"failed": "dead"}.get(status, status)
        if status in ("queued", "scheduled", "deferred"):
            before = {j.id for j in self.jobs.values() if j.status == "canceled"}
            self.cancel(job)
            self.settle_dependents(job.id)
            cascade = {j.id for j in self.jobs.values() if j.status == "canceled" and j.canceled_by} - before
            assert canceled.canceled and set(canceled.dependents) == cascade
        elif status == "started":
            job.stop_requested = True

    def requeue_dead(self, job: Job) -> None:
        """Only a dead job is requeued, and not while a copy of it (unique) is active."""
        copy = self.live(self.claims.get(job.claim, ""))
        requeued = admin.requeue_dead(self.db, [], [job.id])
        expected = (
            self.live(job.id) and job.status == "failed" and not (copy and copy.id != job.id and copy.status in ACTIVE)
        )
        assert [j.id for j in requeued] == ([job.id] if expected else [])
        if not requeued:
            return
        EVENTS["requeue dead"] += 1
        if job.claim:
            self.claims[job.claim] = job.id
        job.attempts = job.crashes = 0
        self.push_queued(job)
        pending = [job.id]
        while pending:
            parent_id = pending.pop()
            for child_id in number_order(self.jobs[parent_id].children):
                child = self.live(child_id)
                if child and child.status == "canceled" and child.canceled_by == parent_id:
                    verdict, culprit = self.parents_verdict(child)
                    copy = self.live(self.claims.get(child.claim, ""))
                    if verdict == "doomed":
                        child.canceled_by = culprit  # another parent still dooms it
                    elif not (copy and copy.id != child_id and copy.status in ACTIVE):  # else a unique copy runs
                        if child.claim:
                            self.claims[child.claim] = child_id
                        child.status, child.canceled_by, child.ended_score = "deferred", None, None
                        pending.append(child_id)

    def pause_or_resume(self, queue: str, again: bool) -> None:
        """Pause the queue, or resume it if it is paused; `again`: also repeat the call (a no-op)."""
        pause = queue not in self.paused
        EVENTS["paused" if pause else "resumed"] += 1
        change = admin.pause if pause else admin.resume
        assert change(self.db, [queue]) == [queue]
        if again:
            assert change(self.db, [queue]) == []
        (self.paused.add if pause else self.paused.discard)(queue)

    def promote(self) -> None:
        due = sorted(
            (
                j
                for j in self.jobs.values()
                if not j.deleted and j.status == "scheduled" and j.due is not None and j.due <= self.now
            ),
            key=lambda j: (j.due, j.id),
        )
        EVENTS["promoted"] += len(due)
        for job in due:
            self.push_queued(job)
        assert self.t.promote(SUPERVISOR, 60_000, self.now) == len(due)

    def enqueue_now(self, job: Job) -> None:
        """Only a scheduled job is queued ahead of its time."""
        scheduled = self.live(job.id) is not None and job.status == "scheduled"
        assert admin.enqueue_now(self.db, job.id) == scheduled
        if scheduled:
            self.queues[job.queue].append(job.id)
            job.status, job.due = "queued", None

    @rule(seconds=st.sampled_from([0, 0.3, 1, 6, 12, 61, 700]), promote=st.booleans(), sweep=st.booleans())
    def time_passes(self, seconds: float, promote: bool, sweep: bool) -> None:
        """Time passes; a supervisor promotes the due scheduled jobs (`promote`) and sweeps (`sweep`):
        recovers the workers whose lease lapsed and deletes the ended jobs past their ttl."""
        self.tick()
        CLOCK.now += seconds
        if promote:
            self.promote()
        if sweep:
            self.sweep()

    @precondition(lambda self: self.any_job("started"))
    @rule(pick=st.integers(0, 1000))
    def malformed_errors_field(self, pick: int) -> None:
        """Another tool (or a hand) writes a jobctl_errors that is not JSON into a started job; the
        next script to read it (its failure, or its worker's recovery) must not lose the job."""
        self.tick()
        EVENTS["malformed field written"] += 1
        self.db.hset(keys.job(self.pick_job(pick, "started").id), "jobctl_errors", MALFORMED)

    @precondition(lambda self: not self.batch_sealed)
    @rule()
    def seal_batch(self) -> None:
        self.tick()
        assert self.t.seal_batch(BATCH, self.now)
        self.batch_sealed = True

    def teardown(self) -> None:
        self.db.close()

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        """Every invariant, on one read of Redis (two round trips: a step costs little more)."""
        EVENTS["steps"] += 1
        redis_state = RedisState.read(self.db)
        self.redis_matches_the_model(redis_state)
        self.every_job_is_in_exactly_the_place_its_status_names(redis_state)
        self.in_flight_lists_belong_to_live_workers(redis_state)
        self.no_slot_outlives_its_holder(redis_state)
        self.at_most_one_trial_while_open()
        self.dependents_run_only_when_their_parents_allow()
        self.one_active_copy_per_unique_claim()
        self.the_batch_counts_final_outcomes_and_completes_once_per_generation()

    def redis_matches_the_model(self, redis_state: RedisState) -> None:
        for queue in QUEUES:
            assert redis_state.lists.get(keys.queue(queue), []) == self.queues[queue], f"queue {queue}"
            expect = {j.id: j.due for j in self.jobs.values() if self.is_(j, "scheduled", queue)}
            assert redis_state.zsets.get(keys.scheduled(queue), {}) == expect, f"scheduled {queue}"
            for status in ("deferred", *ENDED):
                key = keys.deferred(queue) if status == "deferred" else keys.ended(status, queue)
                expected = {j.id for j in self.jobs.values() if self.is_(j, status, queue)}
                assert set(redis_state.zsets.get(key, {})) == expected, f"{status} {queue}"
            started = {f"{j.id}:{j.attempts}" for j in self.jobs.values() if self.is_(j, "started", queue)}
            assert set(redis_state.zsets.get(keys.started(queue), {})) == started, f"started {queue}"
        for worker in self.workers.values():
            assert redis_state.lists.get(keys.active(worker.name), []) == worker.active, f"worker {worker.name}"
            assert (keys.worker(worker.name) in redis_state.hashes) == worker.lease, f"worker {worker.name}'s lease"
            assert (worker.name in redis_state.listed) == worker.listed, f"worker {worker.name} in ACTIVE_WORKERS"
        for job in self.jobs.values():
            record = redis_state.hashes.get(keys.job(job.id))
            status = record.get("status") if record is not None else None
            assert status == (None if job.deleted else job.status), f"job {job.id}"
        assert redis_state.hashes.get(keys.slots(LIMITED), {}) == self.slots, "concurrency slots"
        breaker = redis_state.hashes.get(keys.breaker(BREAKER), {})
        assert (breaker.get("state", "closed"), breaker.get("trial")) == (self.breaker.state, self.breaker.trial)
        assert redis_state.claims == self.claims, "unique claims"

    @staticmethod
    def is_(job: Job, status: str, queue: str) -> bool:
        return not job.deleted and job.status == status and job.queue == queue

    def every_job_is_in_exactly_the_place_its_status_names(self, redis_state: RedisState) -> None:
        """Read from Redis alone: where each job id is found, against its record's status."""
        places: dict[str, list[str]] = {}
        for key, members in [*redis_state.lists.items(), *redis_state.zsets.items()]:
            place = key.removeprefix("rq:").removeprefix("jobctl:")  # queue:q, wip:q, active:w...
            for member in members:
                places.setdefault(member.split(":")[0], []).append(place)
        reservations = {job_id: f"active:{w.name}" for w in self.workers.values() for job_id, _ in w.reserved}
        for key, record in redis_state.hashes.items():
            if not key.startswith(keys.job("")):
                continue
            job_id = key.removeprefix(keys.job(""))
            status, origin = record.get("status"), record.get("origin")
            where = sorted(places.pop(job_id, []))
            assert status in (*ACTIVE, *ENDED), f"job {job_id}: a record without a status ({status})"
            expected = {
                "started": sorted([f"active:{record.get('worker_name')}", f"wip:{origin}"]),
                "queued": [f"queue:{origin}"],
                "failed": [f"failed:{origin}"],
            }.get(status, [f"{status}:{origin}"])
            reserved = reservations.get(job_id)
            if status == "queued" and where and where[0].startswith("active:"):
                expected = [str(reserved)]  # a reservation
            elif status in ENDED and reserved in where:
                expected = sorted([*expected, str(reserved)])  # a reservation canceled meanwhile
            assert where == expected, f"job {job_id} ({status}) is in {where}, expected {expected}"
        # a reservation canceled, then deleted with its ended record, stays an id in its worker's
        # list until the worker drops it
        stale = {job_id: where for job_id, where in places.items() if where != [reservations.get(job_id)]}
        assert not stale, f"ids of no job in {stale}"

    def at_most_one_trial_while_open(self) -> None:
        """While the breaker is open (or half-open), at most one of its jobs taken since it opened
        is in a live worker's in-flight list: its one trial, fleet-wide."""
        if self.breaker.state != "open":
            return
        taken = [
            job.id
            for w in self.workers.values()
            if w.lease
            for job in map(self.jobs.__getitem__, w.active)
            if job.kind == BREAKER_JOB and job.taken_at is not None and job.taken_at >= self.breaker.opened_at
        ]
        assert len(taken) <= 1, f"breaker trials {taken}"

    def in_flight_lists_belong_to_live_workers(self, redis_state: RedisState) -> None:
        for key in redis_state.lists:
            if key.startswith(keys.active("")):
                worker = key.removeprefix(keys.active(""))
                assert worker in redis_state.listed, f"worker {worker}'s in-flight list is out of the sweep's sight"
                if self.swept:
                    assert keys.worker(worker) in redis_state.hashes, (
                        f"worker {worker} holds jobs without a lease after a sweep"
                    )

    def no_slot_outlives_its_holder(self, redis_state: RedisState) -> None:
        for job_id, worker in redis_state.hashes.get(keys.slots(LIMITED), {}).items():
            if keys.worker(worker) in redis_state.hashes:
                assert job_id in redis_state.lists.get(keys.active(worker), []), (
                    f"worker {worker} holds a slot for job {job_id}, which it no longer holds"
                )

    def dependents_run_only_when_their_parents_allow(self) -> None:
        for job in self.jobs.values():
            if job.deleted or not job.parents:
                continue
            parents = [self.live(p) for p in job.parents]
            if job.status == "deferred":
                assert any(p and p.status in ACTIVE for p in parents), f"job {job.id} waits for parents that ended"
                assert self.parents_verdict(job)[0] == "waiting", f"job {job.id} waits, but a parent dooms it"
            if job.released_when:
                allowed = ("finished", *(ENDED if job.allow_failure else ()))
                assert all(s in allowed for s in job.released_when.split(",")), (job.id, job.released_when)
                job.released_when = ""

    def one_active_copy_per_unique_claim(self) -> None:
        active: dict[str, str] = {}
        for job in self.jobs.values():
            if job.claim and not job.deleted and job.status in ACTIVE:
                assert job.claim not in active, f"jobs {active[job.claim]} and {job.id} are active copies"
                active[job.claim] = job.id

    def the_batch_counts_final_outcomes_and_completes_once_per_generation(self) -> None:
        statuses = Counter(self.jobs[job_id].status for job_id in self.batch_members)
        pending = sum(statuses[status] for status in ACTIVE)
        succeeded, failed = statuses["finished"], statuses["failed"] + statuses["canceled"]
        complete = self.batch_sealed and pending == 0
        if complete and not self.batch_complete:
            self.batch_completions += 1
            EVENTS["batch completed"] += 1
        self.batch_complete = complete
        fields = {name.decode(): value.decode() for name, value in self.db.hgetall(keys.batch(BATCH)).items()}
        counts = {name: int(fields[name]) for name in ("total", "pending", "succeeded", "failed", "generation")}
        assert counts == {
            "total": len(self.batch_members),
            "pending": pending,
            "succeeded": succeeded,
            "failed": failed,
            "generation": self.batch_completions,
        }, "batch counts"
        assert fields["complete"] == ("1" if complete else "0"), "batch complete"
        due = [json.loads(entry) for entry in self.db.zrange(keys.BATCHES_DUE, 0, -1)]
        generations = sorted(generation for _, kind, generation, *_ in due if kind == "complete")
        assert generations == list(range(1, self.batch_completions + 1)), "on_complete once per completion"
        successes = [entry for entry in due if entry[1] == "success"]
        assert len(successes) <= 1 and all(entry[5] == 0 for entry in successes), "on_success once, all finished"


@dataclass
class RedisState:
    """What the invariants read of Redis: the lists (queues, in-flight lists) and sorted sets
    (scheduled, deferred, started and ended registries) of job ids, the hashes of jobs, workers
    and slots, the set of workers the sweep looks at, and the uniqueness claims."""

    lists: dict[str, list[str]]
    zsets: dict[str, dict[str, float]]
    hashes: dict[str, dict[str, str]]
    listed: set[str]
    claims: dict[str, str]

    @classmethod
    def read(cls, connection: redis.Redis) -> RedisState:
        found = [key.decode() for key in connection.scan_iter(count=10_000)]
        lists = [k for k in found if k.startswith((keys.queue(""), keys.active("")))]
        registries = (keys.scheduled, keys.deferred, keys.started, keys.finished, keys.dead, keys.canceled)
        zsets = [k for k in found if k.startswith(tuple(r("") for r in registries))]
        hashes = [
            k
            for k in found
            if (k.startswith(keys.job("")) and k.count(":") == 2)
            or k.startswith((keys.worker(""), keys.slots("")))
            or k == keys.breaker(BREAKER)
        ]
        claims = [k for k in found if k.startswith(keys.unique(""))]
        with connection.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.lrange(key, 0, -1)
            for key in zsets:
                pipe.zrange(key, 0, -1, withscores=True)
            for key in hashes:
                pipe.hgetall(key)
            pipe.smembers(keys.ACTIVE_WORKERS)
            for key in claims:
                pipe.get(key)
            replies = iter(pipe.execute())
        return cls(
            lists={key: [m.decode() for m in next(replies)] for key in lists},
            zsets={key: {m.decode(): score for m, score in next(replies)} for key in zsets},
            hashes={key: {f.decode(): v.decode(errors="replace") for f, v in next(replies).items()} for key in hashes},
            listed={m.decode() for m in next(replies)},
            claims={key: next(replies).decode() for key in claims},
        )


@pytest.fixture
def model_clock(monkeypatch):
    """The producer's and admin's time.time() and the producer's job ids, from the model."""
    clock = types.SimpleNamespace(time=CLOCK.time, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(producer, "time", clock)
    monkeypatch.setattr(admin, "time", clock)
    monkeypatch.setattr(producer, "new_job_id", CLOCK.new_job_id)


def test_the_core_follows_its_model(redis_url, model_clock):
    run_model(lambda: CoreModel(redis_url), EVENTS, "model", EXAMPLES, STEPS)
