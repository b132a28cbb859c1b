"""Putting jobs on queues: the one path used by `jobctl enqueue`, the scheduler, `emit`,
the demo and the Python API."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import redis

from ..config.queues import QueueConfig, QueuesConfig
from ..errors import AlreadyClaimed as AlreadyClaimed  # re-exported: the scheduler imports these two from here
from ..errors import ArgumentMismatch, NotJSON, QueueFull, RedisOutOfMemory, UnknownParent, UsageError
from ..errors import DuplicateJob as DuplicateJob
from ..jobs import catalogue, signatures
from ..options import strictjson
from ..options.durations import format_duration
from ..store import keys
from ..store.connection import out_of_memory
from ..store.jobdata import describe, encode_payload, new_job_fields, new_job_id
from ..store.transitions import EnqueueNamed, Transitions

OUT_OF_MEMORY = "Redis is out of memory (maxmemory)"
ID_EXPECTED = "expected 1 to 128 letters, digits, '_', '-' or '.'"

Call = tuple[list[Any], dict[str, Any]]  # the arguments of one job: (args, kwargs)


@dataclass(frozen=True)
class Enqueued:
    id: str
    job: str
    queue: str
    state: str
    args: list[Any]
    kwargs: dict[str, Any]
    run_at: float | None


@dataclass(frozen=True)
class Overrides:
    """Settings a caller gives one enqueue, over the job's @job options and its queue's."""

    timeout: float | None = None  # seconds
    max_retries: int | None = None
    result_ttl: float | None = None  # seconds


def unique_claim(spec: catalogue.JobSpec, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The uniqueness key of a job without an explicit id: its name and its call as bound to its
    signature (signatures.bound_call), so that `u 5`, `u -k x=5` and `u 5.0` claim one key."""
    call = signatures.bound_call(spec, args, kwargs)
    canonical = json.dumps([spec.name, call], sort_keys=True, separators=(",", ":"))
    return keys.unique(hashlib.sha1(canonical.encode()).hexdigest())


def check_arguments(job_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise NotJSON (a UsageError) naming the first argument that is not strict JSON data (strictjson.py):
    not JSON at all, a non-finite number (NaN, Infinity), or nested beyond MAX_DEPTH."""
    try:
        text = json.dumps([args, kwargs], allow_nan=False)
        if strictjson.brackets(text) <= strictjson.MAX_DEPTH:
            return  # the common case, checked at C speed (`enqueue --from` checks millions)
    except (TypeError, ValueError, RecursionError):
        pass  # which argument, and why, is found below
    named = [(f"argument {n}", value) for n, value in enumerate(args, start=1)]
    named += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for where, value in named:
        try:
            strictjson.check(value)  # first: json.dumps recurses, and would accept NaN
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise NotJSON(f"job {job_name!r}: {where}: must be JSON: {exc}") from None


def rq_payload(queue: QueueConfig, job_name: str) -> dict[str, str]:
    """On a queue served by RQ's workers, a payload names the registered function by import path
    (RQ imports it) in the queue's serializer; elsewhere, the registered name in JSON."""
    if queue.engine != "rq":
        return {}
    func = catalogue.resolve(job_name).func
    assert func is not None  # resolve() imports it or raises
    return {"func_name": catalogue.import_path(func), "serializer": queue.serializer}


def _job_fields(
    config: QueuesConfig,
    job_name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str | None,
    now: float,
    allow_failure: bool = False,
    parents: Sequence[str] = (),
    overrides: Overrides = Overrides(),
) -> tuple[QueueConfig, dict[str, Any]]:
    """Validate one job and build its record: (its queue, hash fields)."""
    spec = catalogue.get(job_name)
    check_arguments(job_name, args, kwargs)
    queue_config = config.get(queue or spec.queue, where="--queue" if queue else f"job {job_name!r}")
    fields = new_job_fields(
        job_name,
        args,
        kwargs,
        queue_config.name,
        now=now,
        timeout=overrides.timeout or spec.timeout or queue_config.timeout,
        result_ttl=queue_config.result_ttl if overrides.result_ttl is None else overrides.result_ttl,
        failure_ttl=queue_config.failure_ttl,
        max_retries=next(
            n for n in (overrides.max_retries, spec.max_retries, queue_config.max_retries) if n is not None
        ),
        crash_limit=queue_config.crash_limit,
        allow_failure=allow_failure,
        parents=list(parents),
        **rq_payload(queue_config, job_name),
    )
    if not spec.keep_dead:
        fields["jobctl_keep_dead"] = 0  # lua/lib.lua's bury deletes it instead
    return queue_config, fields


@dataclass(frozen=True)
class Request:
    """A job checked and ready to store: Transitions.enqueue's arguments (its id and queue,
    `fields` and `named`), and what settle() turns the script's reply into."""

    job: Enqueued  # the job as stored, its state still to come
    spec: catalogue.JobSpec
    fields: dict[str, Any]
    named: EnqueueNamed


class EnqueueOptions(TypedDict, total=False):
    """enqueue()'s options (see there)."""

    queue: str | None
    run_at: float | None
    job_id: str | None
    unique: bool | None
    depends_on: Sequence[str]
    allow_failure: bool
    run_claim: tuple[str, str, int] | None
    overrides: Overrides


def enqueue(
    connection: redis.Redis,
    config: QueuesConfig,
    job_name: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> Enqueued:
    """Store a registered job on a configured queue (`queue`: another than the job's), now, at
    `run_at` or after its parents (`depends_on`, with `allow_failure`: even if one dies).
    `job_id`: an id of the caller's. `unique` None: as the job's @job(unique=...) says.
    `run_claim` (key, owner, ttl) is taken atomically with the enqueue (the scheduler's claim).
    `overrides`: settings of this one job.

    Raises UnknownJob, ConfigError (queue not configured), ArgumentMismatch (a TypeError: the
    arguments do not fit the job's signature), UsageError (bad id), UnknownParent, DuplicateJob,
    QueueFull or AlreadyClaimed."""
    request = prepare(config, job_name, args, kwargs, **options)
    with refused_out_of_memory("nothing was enqueued"):
        reply = Transitions.of(connection).enqueue(request.job.id, request.job.queue, request.fields, **request.named)
    return settle(request, reply)


def prepare(
    config: QueuesConfig,
    job_name: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> Request:
    """What enqueue() checks and builds before it writes anything (the asyncio client calls
    the script itself with the request, then settle())."""
    job_id, depends_on, run_claim = options.get("job_id"), options.get("depends_on", ()), options.get("run_claim")
    args, kwargs, now = list(args), dict(kwargs or {}), time.time()
    for ident, option in [(job_id, "--job-id"), *((parent, "--depends-on") for parent in depends_on)]:
        if ident is not None and not keys.is_job_id(ident):
            raise UsageError(f"{option} {ident[:60]!r}: {ID_EXPECTED}")
    if job_id is not None and run_claim is None and keys.RECURRING_JOB_ID.fullmatch(job_id):
        # a job stored under a future run's id would make the scheduler skip that run
        raise UsageError(f"--job-id {job_id!r}: cron-<entry>-<due> ids are the scheduler's own")
    spec = catalogue.get(job_name)
    signatures.check(spec, args, kwargs)
    queue_config, fields = _job_fields(
        config,
        job_name,
        args,
        kwargs,
        options.get("queue"),
        now,
        options.get("allow_failure", False),
        list(depends_on),
        options.get("overrides", Overrides()),
    )
    queue_name = queue_config.name
    explicit_id = job_id
    job_id = job_id or new_job_id()
    claim = ""
    unique = options.get("unique")
    if spec.unique if unique is None else unique:
        claim = keys.unique(explicit_id) if explicit_id else unique_claim(spec, args, kwargs)
    run_at = options.get("run_at")
    named: EnqueueNamed = {
        "now": now,
        "run_at": run_at or 0,
        "unique_claim": claim,
        "parents": list(depends_on),
        "run_claim": run_claim,
        "unique_ttl": spec.unique_for or 0,
        "max_size": queue_config.max_size or 0,
    }
    return Request(Enqueued(job_id, job_name, queue_name, "", args, kwargs, run_at), spec, fields, named)


class refused_out_of_memory:
    """Redis refusing a script's writes for want of memory, as RedisOutOfMemory saying
    `what_was_done`. A class, not @contextmanager: it is on every enqueue's path."""

    def __init__(self, what_was_done: str):
        self.what_was_done = what_was_done

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and out_of_memory(exc):
            raise RedisOutOfMemory(f"{OUT_OF_MEMORY}: {self.what_was_done}") from None


def settle(request: Request, reply: tuple[str, str, str]) -> Enqueued:
    """The stored job, from lua/enqueue.lua's reply; or the exception its refusal means."""
    outcome, ident, state = reply
    spec, queue_name = request.spec, request.job.queue
    if outcome == "claimed":
        raise AlreadyClaimed(ident)
    if outcome in ("exists", "duplicate"):
        raise DuplicateJob(ident, state)
    if outcome == "recent":
        raise DuplicateJob(
            ident,
            "",
            f"job {ident}, a copy, was enqueued less than {format_duration(spec.unique_for)} ago "
            f"(unique for {format_duration(spec.unique_for)}: {state}s to go)",
        )
    if outcome == "full":
        raise QueueFull(_full(queue_name, int(state)))
    if outcome == "unknown_parent":
        raise UnknownParent(ident)
    job = request.job
    return Enqueued(job.id, job.job, job.queue, state, job.args, job.kwargs, job.run_at)


def _full(queue: str, queued: int) -> str:
    return f"queue {queue!r} is full ({queued} queued)"


BATCH_SIZE = 1000


def enqueue_many(
    connection: redis.Redis,
    config: QueuesConfig,
    job_name: str,
    calls: Iterable[Call],
    *,
    queue: str | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    overrides: Overrides = Overrides(),
) -> list[Enqueued]:
    """Store many jobs of one kind on one queue, `batch_size` per round trip.

    `calls` yields (args, kwargs). Each batch is stored whole or not at all; a bad call (not
    JSON: UsageError; not fitting the signature: ArgumentMismatch) raises before its batch is
    sent, so the batches before it stay stored and nothing after it is written; so does a batch
    that would take the queue past its max_size (QueueFull). When `calls` is a list, all of it
    is refused up front if it would. `on_batch(n)` is told after each stored batch."""
    transitions = Transitions.of(connection)
    batches = Batches(config, job_name, calls, queue=queue, batch_size=batch_size, overrides=overrides)
    queue_name, max_size = batches.queue, batches.max_size
    if max_size and isinstance(calls, Sized):
        queued = int(connection.llen(keys.queue(queue_name)))  # type: ignore[arg-type, unused-ignore]  # redis-py 5 types it as possibly async
        if queued + len(calls) > max_size:
            raise QueueFull(
                f"{_full(queue_name, queued)}: {len(calls)} more would exceed its max_size of {max_size}; "
                "nothing enqueued"
            )
    stored: list[Enqueued] = []
    for batch in batches:
        with refused_out_of_memory("this batch was not stored"):
            outcome = transitions.enqueue_many(*batch.call())
        stored += batch.settle(outcome)
        if on_batch:
            on_batch(len(batch.jobs))
    return stored


@dataclass(frozen=True)
class Batch:
    """Jobs for one call of lua/enqueue_many.lua: Transitions.enqueue_many's arguments (`call()`),
    and what settle() makes of its reply."""

    jobs: list[Enqueued]
    queue: str
    shared: dict[str, Any]
    records: list[tuple[str, bytes, str]]  # (id, data, description)
    max_size: int

    def call(self) -> tuple[str, dict[str, Any], list[tuple[str, bytes, str]], float, int]:
        return self.queue, self.shared, self.records, time.time(), self.max_size

    def settle(self, outcome: Any) -> list[Enqueued]:
        if isinstance(outcome, list):  # ['full', queued]
            raise QueueFull(_full(self.queue, int(outcome[1])))
        return self.jobs


class Batches:
    """enqueue_many's jobs, checked and built, `batch_size` at a time (the asyncio client stores
    them itself). Iterating raises, for a bad call, before the batch it would be in."""

    def __init__(
        self,
        config: QueuesConfig,
        job_name: str,
        calls: Iterable[Call],
        *,
        queue: str | None = None,
        batch_size: int = BATCH_SIZE,
        overrides: Overrides = Overrides(),
    ):
        self.spec = catalogue.get(job_name)
        queue_config, self.shared = _job_fields(config, job_name, [], {}, queue, time.time(), overrides=overrides)
        self.queue, self.max_size = queue_config.name, queue_config.max_size or 0
        for per_job in ("data", "description"):
            del self.shared[per_job]
        self.payload = rq_payload(config.get(self.queue), job_name)
        self.job_name, self.calls, self.batch_size = job_name, calls, batch_size

    def __iter__(self) -> Iterator[Batch]:
        call_name = self.payload.get("func_name", self.job_name)
        batch: list[tuple[Enqueued, bytes]] = []
        for args, kwargs in self.calls:
            args, kwargs = list(args), dict(kwargs or {})
            signatures.check(self.spec, args, kwargs)
            check_arguments(self.job_name, args, kwargs)
            data = encode_payload(call_name, args, kwargs, self.payload.get("serializer", "json"))
            batch.append((Enqueued(new_job_id(), self.job_name, self.queue, "queued", args, kwargs, None), data))
            if len(batch) >= self.batch_size:
                yield self._batch(batch, call_name)
                batch = []
        if batch:
            yield self._batch(batch, call_name)

    def _batch(self, batch: list[tuple[Enqueued, bytes]], call_name: str) -> Batch:
        records = [(job.id, data, describe(call_name, job.args, job.kwargs)) for job, data in batch]
        return Batch([job for job, _ in batch], self.queue, self.shared, records, self.max_size)


def calls_from_json_lines(lines: Iterable[str], source: str, job_name: str) -> list[Call]:
    """Parse `--from` input for the job: one {"args": [...], "kwargs": {...}} object per line (blank
    lines skipped). The whole input is checked, arguments against the job's signature too, before
    anything is stored; a bad line raises UsageError naming its number."""
    spec = catalogue.get(job_name)
    calls: list[Call] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            call = strictjson.loads(line)
        except strictjson.NotStrictJSON as exc:
            raise UsageError(f"--from {source}: line {number}: {exc}") from None
        except ValueError as exc:
            raise UsageError(f"--from {source}: line {number}: not JSON ({exc})") from None
        if not isinstance(call, dict) or set(call) - {"args", "kwargs"}:
            raise UsageError(f'--from {source}: line {number}: expected {{"args": [...], "kwargs": {{...}}}}')
        args, kwargs = call.get("args", []), call.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise UsageError(f"--from {source}: line {number}: args must be a list and kwargs an object")
        try:
            signatures.check(spec, args, kwargs)
        except ArgumentMismatch as exc:
            raise UsageError(f"--from {source}: line {number}: {exc}") from None
        calls.append((args, kwargs))
    return calls
