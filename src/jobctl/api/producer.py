"""Putting jobs on queues: the one path used by `jobctl enqueue`, the scheduler, `emit`,
the demo and the Python API."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack

import redis

from ..config.queues import QueueConfig, QueuesConfig
from ..errors import AlreadyClaimed as AlreadyClaimed  # re-exported: the scheduler imports these two from here
from ..errors import (
    ArgumentMismatch,
    NotJSON,
    NotReplicated,
    QueueFull,
    RedisOutOfMemory,
    UnknownBatch,
    UnknownParent,
    UsageError,
)
from ..errors import DuplicateJob as DuplicateJob
from ..jobs import catalogue, signatures
from ..options import replicas, strictjson
from ..options.durations import format_duration
from ..store import keys
from ..store.connection import out_of_memory
from ..store.enqueue_calls import Batch, EnqueueCall, EnqueueShared
from ..store.jobdata import compress, describe, encode_payload, new_job_id, new_job_ids, shared_job_fields
from ..store.locate import alocate, locate
from ..store.scripts import Refusal
from ..store.transitions import AsyncTransitions, Transitions
from ..store.wire import Pipelined, drive_on

if TYPE_CHECKING:
    import redis.asyncio

OUT_OF_MEMORY = "Redis is out of memory (maxmemory)"
ID_EXPECTED = "expected 1 to 128 letters, digits, '_', '-' or '.'"

Call = tuple[list[Any], dict[str, Any]]  # the arguments of one job: (args, kwargs)

# The batch (api/batches.py) the jobs enqueued here join: set inside `with jobctl.batch(...)`.
current_batch: ContextVar[str | None] = ContextVar("jobctl_batch", default=None)


class Enqueued(NamedTuple):
    """A job as stored (a NamedTuple: made on every enqueue, a frozen dataclass costs a few times
    as much)."""

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


def unique_claim(
    spec: catalogue.JobSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str = "",
    layout: keys.Layout = keys.PLAIN,
) -> str:
    """The uniqueness key of a job without an explicit id: its name and its call as bound to its
    signature (signatures.bound_call), so that `u 5`, `u -k x=5` and `u 5.0` claim one key (on a
    cluster, one key of `queue`)."""
    call = signatures.bound_call(spec, args, kwargs)
    canonical = json.dumps([spec.name, call], sort_keys=True, separators=(",", ":"))
    return layout.unique(hashlib.sha1(canonical.encode()).hexdigest(), queue)


_STRICT = json.JSONEncoder(allow_nan=False)  # json.dumps(..., allow_nan=False) makes one per call


def check_arguments(job_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The call as JSON, `[args, kwargs]` (json.dumps's text); raise NotJSON (a UsageError) naming
    the first argument that is not strict JSON data (strictjson.py): not JSON at all, a
    non-finite number (NaN, Infinity), or nested beyond MAX_DEPTH."""
    text = None
    try:
        text = _STRICT.encode([args, kwargs])
        if strictjson.brackets(text) <= strictjson.MAX_DEPTH:
            return text  # the common case, checked at C speed (`enqueue --from` checks millions)
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
    if text is None:  # each argument is JSON, and yet the call is not (nested too deep together)
        raise NotJSON(f"job {job_name!r}: the arguments are {strictjson.TOO_DEEP}")
    return text  # many brackets, inside strings or across arguments: none nests too deep


def rq_payload(queue: QueueConfig, job_name: str) -> dict[str, str]:
    """On a queue served by RQ's workers, a payload names the registered function by import path
    (RQ imports it) in the queue's serializer; elsewhere, the registered name in JSON."""
    if queue.engine != "rq":
        return {}
    func = catalogue.resolve(job_name).func
    assert func is not None  # resolve() imports it or raises
    return {"func_name": catalogue.import_path(func), "serializer": queue.serializer}


class Template:
    """What every enqueue of one job on one queue with one set of options shares, checked and
    built once: the job's spec and queue, the record's fields other than the call's and the
    script's shared arguments (enqueue_calls.EnqueueShared); `batch`: the batch its jobs join
    (api/batches.py; None: the one the caller is in, if any). A job object keeps its own
    (jobfunction.JobFunction), so that an enqueue from Python builds only the call's own part: its
    id, payload, description and time (bench/app_enqueue.py). `layout`: the keys' (keys.Layout)
    of the Redis the jobs go to.

    Raises UnknownJob, ConfigError (queue not configured) or UsageError (a bad parent id)."""

    def __init__(
        self,
        config: QueuesConfig,
        job_name: str,
        *,
        queue: str | None = None,
        parents: Sequence[str] = (),
        allow_failure: bool = False,
        overrides: Overrides = Overrides(),
        batch: str | None = None,
        layout: keys.Layout = keys.PLAIN,
    ):
        self.layout, self.parents = layout, tuple(parents)
        for parent in parents:
            if not keys.is_job_id(parent):
                raise UsageError(f"--depends-on {parent[:60]!r}: {ID_EXPECTED}")
        spec = catalogue.get(job_name)
        self.config, self.spec = config, spec
        queue_config = config.get(queue or spec.queue, where="--queue" if queue else f"job {job_name!r}")
        self.job_name, self.queue, self.max_size = job_name, queue_config.name, queue_config.max_size or 0
        payload = rq_payload(queue_config, job_name)
        self.call_name, self.serializer = payload.get("func_name", job_name), payload.get("serializer", "json")
        self.fields = shared_job_fields(
            job_name,
            queue_config.name,
            timeout=overrides.timeout or spec.timeout or queue_config.timeout,
            result_ttl=queue_config.result_ttl if overrides.result_ttl is None else overrides.result_ttl,
            failure_ttl=queue_config.failure_ttl,
            max_retries=next(
                n for n in (overrides.max_retries, spec.max_retries, queue_config.max_retries) if n is not None
            ),
            crash_limit=queue_config.crash_limit,
            allow_failure=allow_failure,
            serializer=self.serializer,
            parents=list(parents),
        )
        if not spec.keep_dead:
            self.fields["jobctl_keep_dead"] = 0  # lua/lib.lua's bury deletes it instead
        self.batch = (current_batch.get() if batch is None else batch) or ""
        if self.batch and queue_config.engine == "rq":
            raise UsageError(
                f"queue {self.queue!r} is served by RQ's workers, which do not count batches: "
                f"job {job_name!r} cannot join batch {self.batch!r}"
            )
        if self.batch:
            self.fields["jobctl_batch"] = self.batch  # lua/lib.lua's batch_ended counts its outcome
        self.shared = EnqueueShared.of(
            self.queue,
            self.fields,
            parents=parents,
            unique_ttl=spec.unique_for or 0,
            max_size=self.max_size,
            batch=self.batch,
            layout=layout,
        )
        # the calls that need no binding to fit: positional arguments only, as many as it takes
        self._positional = signatures.positional_range(signatures.signature_of(spec))
        self._payload_head = f"[{json.dumps(self.call_name)}, null, ".encode()

    def call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[bytes, str]:
        """The call's `data` and `description` fields; raises ArgumentMismatch (the arguments do not
        fit the job's signature) or NotJSON."""
        fewest, most = self._positional
        if kwargs or not fewest <= len(args) <= most:
            signatures.check(self.spec, args, kwargs)
        text = check_arguments(self.job_name, args, kwargs)
        if self.serializer != "json":
            return encode_payload(self.call_name, args, kwargs, self.serializer), describe(self.call_name, args, kwargs)
        # json.dumps of (name, None, args, kwargs) is the head and the text of [args, kwargs]
        data = compress(self._payload_head + text[1:].encode())
        if kwargs:
            return data, describe(self.call_name, args, kwargs)
        return data, f"{self.call_name}({text[2:-6]})"  # describe()'s text: the args list's items

    def request(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        job_id: str | None = None,
        unique: bool | None = None,
        run_at: float | None = None,
        run_claim: tuple[str, str, int] | None = None,
    ) -> Request:
        """One job of this kind checked and ready to store (store()). `unique` None: as the job's
        @job(unique=...) says. Raises ArgumentMismatch, NotJSON or UsageError (a bad id)."""
        if job_id is not None:
            if not keys.is_job_id(job_id):
                raise UsageError(f"--job-id {job_id[:60]!r}: {ID_EXPECTED}")
            if run_claim is None and keys.RECURRING_JOB_ID.fullmatch(job_id):
                # a job stored under a future run's id would make the scheduler skip that run
                raise UsageError(f"--job-id {job_id!r}: cron-<entry>-<due> ids are the scheduler's own")
        args, kwargs = list(args), dict(kwargs)
        data, description = self.call(args, kwargs)
        claim = ""
        if self.spec.unique if unique is None else unique:
            queue, layout = self.queue, self.layout
            claim = layout.unique(job_id, queue) if job_id else unique_claim(self.spec, args, kwargs, queue, layout)
        job_id = job_id or new_job_id()
        call = EnqueueCall.of(
            self.shared,
            job_id,
            time.time(),
            data,
            description,
            run_at=run_at or 0,
            unique_claim=claim,
            run_claim=run_claim,
        )
        return Request(job_id, args, kwargs, run_at, self, call)


class Request(NamedTuple):
    """A job checked and ready to store: the script's call (enqueue_calls.EnqueueCall), and what
    settle() turns its reply into."""

    id: str
    args: list[Any]
    kwargs: dict[str, Any]
    run_at: float | None
    template: Template
    call: EnqueueCall


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
    batch: str | None


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
    `overrides`: settings of this one job. `batch`: the batch it joins (None: the caller's, if any).

    Raises UnknownJob, ConfigError (queue not configured), ArgumentMismatch (a TypeError: the
    arguments do not fit the job's signature), UsageError (bad id), UnknownParent, DuplicateJob,
    QueueFull or AlreadyClaimed."""
    return store(connection, prepare(config, job_name, args, kwargs, keys.layout_of(connection), **options))


def prepare(
    config: QueuesConfig,
    job_name: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    layout: keys.Layout = keys.PLAIN,
    **options: Unpack[EnqueueOptions],
) -> Request:
    """What enqueue() checks and builds before it writes anything, for Redis of `layout`."""
    template = Template(
        config,
        job_name,
        queue=options.get("queue"),
        parents=options.get("depends_on", ()),
        allow_failure=options.get("allow_failure", False),
        overrides=options.get("overrides", Overrides()),
        batch=options.get("batch"),
        layout=layout,
    )
    return template.request(
        args,
        kwargs or {},
        job_id=options.get("job_id"),
        unique=options.get("unique"),
        run_at=options.get("run_at"),
        run_claim=options.get("run_claim"),
    )


def store(connection: redis.Redis, request: Request) -> Enqueued:
    """Write a prepared job (lua/enqueue.lua); the job as stored, or the exception its refusal means."""
    scripts = Transitions.of(connection)
    joined = 0
    if scripts.layout.cluster:
        remote = on_cluster(connection, request.template)
        if remote:
            request = request._replace(call=request.call.across(remote))
        if request.template.batch:
            joined = scripts.join_batch(request.template.batch, [request.id], time.time())
    with refused_out_of_memory("nothing was enqueued"), replicated(f"job {request.id}"):
        reply = scripts.enqueue_call(request.call)
    if joined and reply[0] != "ok":  # refused: it never joins
        scripts.join_batch(request.template.batch, [request.id], time.time(), leave=True)
    return settle(request, reply)


async def astore(connection: redis.asyncio.Redis, scripts: AsyncTransitions, request: Request) -> Enqueued:
    """store() with an asyncio client."""
    joined = 0
    if scripts.layout.cluster:
        template = request.template
        found = await alocate(connection, template.parents) if template.parents else {}
        remote = {parent: where for parent, where in found.items() if where != template.queue}
        if remote:
            request = request._replace(call=request.call.across(remote))
        if template.batch:
            joined = await scripts.join_batch(template.batch, [request.id], time.time())
    with refused_out_of_memory("nothing was enqueued"), replicated(f"job {request.id}"):
        reply = await scripts.enqueue_call(request.call)
    if joined and reply[0] != "ok":  # refused: it never joins
        await scripts.join_batch(request.template.batch, [request.id], time.time(), leave=True)
    return settle(request, reply)


class replicated:
    """NotReplicated naming `what` was stored (the job, the jobs)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, NotReplicated):
            raise NotReplicated(f"{self.what} {exc}") from None


def on_cluster(connection: redis.Redis, template: Template) -> dict[str, str]:
    """What an enqueue on a Redis Cluster does besides its script, whose call touches its queue's
    slot alone: the queue joins RQ's set of known queues (once per process). Returns the parents
    on other queues (id -> queue), which the job waits on through the outbox (lua/lib.lua, post)."""
    queue = template.queue
    found = locate(connection, template.parents) if template.parents else {}
    Transitions.of(connection).register_queue(queue)
    return {parent: where for parent, where in found.items() if where != queue}


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
    template = request.template
    if outcome == "ok":
        return Enqueued(
            request.id, template.job_name, template.queue, state, request.args, request.kwargs, request.run_at
        )
    unique_for = template.spec.unique_for
    match outcome:
        case Refusal.CLAIMED:
            raise AlreadyClaimed(ident)
        case Refusal.EXISTS | Refusal.DUPLICATE:
            raise DuplicateJob(ident, state)
        case Refusal.RECENT:
            raise DuplicateJob(
                ident,
                "",
                f"job {ident}, a copy, was enqueued less than {format_duration(unique_for)} ago "
                f"(unique for {format_duration(unique_for)}: {state}s to go)",
            )
        case Refusal.FULL:
            raise QueueFull(_full(template.queue, int(state)))
        case Refusal.UNKNOWN_PARENT:
            raise UnknownParent(ident)
        case Refusal.UNKNOWN_BATCH | Refusal.BATCH_COMPLETE:
            raise UnknownBatch(ident, complete=outcome is Refusal.BATCH_COMPLETE)
    raise AssertionError(f"lua/enqueue.lua replied {reply!r}")  # pragma: no cover


def _full(queue: str, queued: int) -> str:
    return f"queue {queue!r} is full ({queued} queued)"


# Jobs per call of lua/enqueue_many.lua: a call takes a few milliseconds of Redis (other clients
# wait meanwhile) and the memory of a batch; its round trip costs a few microseconds a job.
# The script checks and pushes a batch's ids in one EXISTS and one RPUSH, whose arguments Lua's
# unpack takes up to ~8,000: batches are at most LARGEST_BATCH.
BATCH_SIZE = 1000
LARGEST_BATCH = 5000


class Stored(NamedTuple):
    """What enqueue_many stored: the queue and the ids, in order."""

    queue: str
    ids: list[str]


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
    batch: str | None = None,
) -> Stored:
    """Store many jobs of one kind on one queue, `batch_size` per round trip.

    `calls` yields (args, kwargs). Each batch is stored whole or not at all; a bad call (not
    JSON: UsageError; not fitting the signature: ArgumentMismatch) raises before its batch is
    sent, so the batches before it stay stored and nothing after it is written; so does a batch
    that would take the queue past its max_size (QueueFull). When `calls` is a list, all of it
    is refused up front if it would. `on_batch(n)` is told after each stored batch. `batch`: the
    batch (api/batches.py) the jobs join (None: the caller's, if any)."""
    template = Template(
        config, job_name, queue=queue, overrides=overrides, batch=batch, layout=keys.layout_of(connection)
    )
    if template.layout.cluster:
        on_cluster(connection, template)
    return store_all(connection, template, calls, batch_size, on_batch)


def store_all(
    connection: redis.Redis,
    template: Template,
    calls: Iterable[Call],
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> Stored:
    """Run store_many on the blocking client; with JOBCTL_ENQUEUE_REPLICAS, wait for the replicas
    after the last batch (on the connection that stored them all)."""
    scripts = Transitions.of(connection)
    if not replicas.wanted().replicas:
        stored: Stored = drive_on(store_many(scripts, template, calls, batch_size, on_batch), connection)
        return stored
    with replicated(f"the jobs of queue {template.queue!r}"):
        # once only: a second try would store again the batches the first one stored
        return scripts.acknowledged(  # type: ignore[no-any-return]
            lambda: store_many(scripts, template, calls, batch_size, on_batch), template.shared.queue_key, again=False
        )


def store_many(
    scripts: Transitions | AsyncTransitions,
    template: Template,
    calls: Iterable[Call],
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> Pipelined:
    """enqueue_many as a dialogue with Redis (wire.Pipelined), which drive_on() runs with
    the blocking client and adrive_on() with the asyncio one: one loop for both. Each batch is
    sent before the next one is built and its reply read after that, so that Python builds a
    batch while Redis stores the one before; a bad call still raises before its batch is sent,
    once the batch before it is stored."""
    queue, max_size, fields = template.queue, template.max_size, template.shared.fields
    if max_size and isinstance(calls, Sized):
        queued = int((yield ("LLEN", template.shared.queue_key)))
        if queued + len(calls) > max_size:
            raise QueueFull(
                f"{_full(queue, queued)}: {len(calls)} more would exceed its max_size of {max_size}; nothing enqueued"
            )
    stored: list[str] = []
    batches = iter(Batches(template, calls, batch_size))
    sent: tuple[Batch, float] | None = None  # the batch sent, its reply still to read
    while True:
        try:
            batch = next(batches, None)  # builds the next batch, or raises for a bad call in it
        finally:
            if sent is not None:
                with refused_out_of_memory("this batch was not stored"):
                    outcome = yield from scripts.received_enqueue_many(queue, sent[1], fields, sent[0], max_size)
                if isinstance(outcome, list):  # ['full', queued], [unknown_batch|batch_complete, batch]
                    refusal, detail = (part.decode() if isinstance(part, bytes) else part for part in outcome)
                    if template.layout.cluster and template.batch:  # refused: they never join
                        yield from scripts.joining(template.batch, sent[0].ids, time.time(), leave=True)
                    if Refusal(refusal) is Refusal.FULL:
                        raise QueueFull(_full(queue, int(detail)))
                    raise UnknownBatch(detail, complete=Refusal(refusal) is Refusal.BATCH_COMPLETE)
                stored += sent[0].ids
                if on_batch:
                    on_batch(len(sent[0].ids))
                sent = None
        if batch is None:
            return Stored(queue, stored)
        now = time.time()
        if template.layout.cluster and template.batch:  # on the batch's slot, before the jobs exist
            yield from scripts.joining(template.batch, batch.ids, now)
        yield scripts.send_enqueue_many(queue, now, fields, batch, max_size)
        sent = (batch, now)


class Batches:
    """enqueue_many's jobs, checked and built, `batch_size` at a time (enqueue_calls.Batch).
    Iterating raises, for a bad call, before the batch it would be in."""

    def __init__(self, template: Template, calls: Iterable[Call], batch_size: int = BATCH_SIZE):
        self.template, self.calls, self.batch_size = template, calls, min(batch_size, LARGEST_BATCH)

    def __iter__(self) -> Iterator[Batch]:
        call, size = self.template.call, self.batch_size
        payloads: list[bytes] = []
        descriptions: list[str] = []
        for args, kwargs in self.calls:
            data, description = call(args, kwargs or {})
            payloads.append(data)
            descriptions.append(description)
            if len(payloads) >= size:
                yield Batch(new_job_ids(len(payloads)), payloads, descriptions)
                payloads, descriptions = [], []
        if payloads:
            yield Batch(new_job_ids(len(payloads)), payloads, descriptions)


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
