"""Batches: jobs enqueued together whose callbacks run once all of them have ended.

    with jobctl.batch(on_complete=report, on_success="analytics", description="sync") as b:
        for channel in channels:
            channel_sync.enqueue(channel)      # b.id; `jobctl enqueue --batch ID` joins it too

The batch is a hash (keys.batch) counting its jobs: total, pending, succeeded and failed (dead or
canceled). Each job's record names its batch (jobctl_batch), and the script that records a
job's final outcome counts it there, atomically (lua/lib.lua, batch_ended): a retried job counts
once, when it finishes or dies; requeue-dead takes a dead job back to pending. The batch is
sealed when its `with` block exits; a sealed batch with nothing pending is complete, and the
script that completes it marks its callbacks due, with the counts, in the same step. A process
that serves due callbacks (the promoting supervisor, testing.Worker) stores each under a claim
of its own and a job id of its own, batch-<id>-<complete|success>-<generation>, so a callback is
stored exactly once whichever process dies between two steps, and however many try at once.

on_complete runs at every completion: again after requeue-dead re-opened a complete batch and it
completed anew (the next generation). on_success runs once: at the first completion with no job
failed. Both are called with `batch_id`, `total`, `succeeded` and `failed` keyword arguments.
"""

from __future__ import annotations

import json
import time
from contextvars import Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyClaimed, JobctlError, UnknownBatch, UsageError
from ..jobs import catalogue, signatures
from ..store import keys
from ..store.connection import read_replies
from ..store.jobdata import new_job_id, number_value
from ..store.locate import locate
from ..store.transitions import Transitions
from . import context, producer
from .client import Client, current_client

if TYPE_CHECKING:
    import redis

    from ..config.queues import QueuesConfig

CALLBACKS = ("complete", "success")
CLAIM_TTL = 7 * 86400  # seconds a callback's claim outlives its enqueue: far beyond any retry of it
DUE_PER_CALL = 100  # due callbacks stored per enqueue_due call
SHOWN_GENERATIONS = 10  # on_complete runs a batch view lists: the latest ones


def _callback_name(callback: Any, option: str) -> str:
    """A callback given as a job object or a job name: the registered job's name, checked to take
    the keyword arguments a batch calls it with. Raises UnknownJob or UsageError."""
    if callback is None:
        return ""
    name = callback
    if not isinstance(callback, str):  # a job function (@job), or a JobFunction (.options(...))
        name = getattr(callback, "name", None)
        if callable(callback) and name is None:
            name = catalogue.import_paths().get(catalogue.import_path(callback))
    if not isinstance(name, str):
        raise UsageError(f"batch {option}: expected a registered job or its name, got {callback!r}")
    spec = catalogue.get(name)
    try:
        signatures.check(spec, [], {"batch_id": "", "total": 0, "succeeded": 0, "failed": 0})
    except TypeError as exc:
        raise UsageError(
            f"batch {option}: job {name!r} must take the keyword arguments batch_id, total, succeeded and failed: {exc}"
        ) from None
    return name


class batch:
    """A batch of jobs (see the module's doc). `batch()` makes a new one, sealed when the block
    exits (also when it raises: the jobs enqueued in it stay, and the batch completes with
    them); `batch(id)` re-opens an existing one that is not complete (a job of the batch adding
    jobs to it), and seals nothing. Inside either, every enqueue in this context (thread or
    task) joins the batch. Raises UnknownJob or UsageError for a bad callback, UnknownBatch for
    an id that does not exist or is complete, before anything is written."""

    def __init__(
        self,
        batch_id: str | None = None,
        *,
        on_complete: Any = None,
        on_success: Any = None,
        description: str = "",
        client: Client | None = None,
    ):
        if batch_id is not None and (on_complete or on_success or description):
            raise UsageError("batch(id) re-opens an existing batch: it takes no callbacks or description")
        if batch_id is not None and not keys.is_job_id(batch_id):
            raise UsageError(f"batch id {batch_id[:60]!r}: {producer.ID_EXPECTED}")
        self.new = batch_id is None
        self.id = batch_id or new_job_id()
        self.on_complete = _callback_name(on_complete, "on_complete")
        self.on_success = _callback_name(on_success, "on_success")
        self.description = description
        self._client = client
        self._tokens: list[Token[str | None]] = []

    def __repr__(self) -> str:
        return f"<jobctl.batch {self.id}>"

    @staticmethod
    def current() -> batch | None:
        """The batch of the job running in this context, to add jobs to (`with
        jobctl.batch.current():`); None outside a job, or for a job of no batch."""
        execution = context.current()
        if execution is None:
            return None
        client = execution.client or current_client()
        job_id = execution.job_id
        with client.translated_errors():
            queue = locate(client.connection, [job_id]).get(job_id, "")
            if client.layout.cluster and not queue:
                return None
            batch_id: bytes | None = client.connection.hget(client.layout.job(job_id, queue), "jobctl_batch")  # type: ignore[assignment]
        return batch(batch_id.decode(), client=client) if batch_id else None

    @property
    def client(self) -> Client:
        return self._client or current_client()

    def _fields(self) -> dict[Any, str | int | float]:
        return {
            "total": 0,
            "pending": 0,
            "succeeded": 0,
            "failed": 0,
            "sealed": 0,
            "complete": 0,
            "generation": 0,
            "on_complete": self.on_complete,
            "on_success": self.on_success,
            "description": self.description,
            "created_at": time.time(),
        }

    def _joined(self, state: list[Any]) -> None:
        """Enter the block, given the batch's (total, complete) as Redis has them."""
        if not self.new and state[0] is None:
            raise UnknownBatch(self.id)
        if not self.new and state[1] == b"1":
            raise UnknownBatch(self.id, complete=True)
        self._tokens.append(producer.current_batch.set(self.id))

    def __enter__(self) -> batch:
        client = self.client
        client.refuse_in_event_loop("with jobctl.batch()", "async with jobctl.batch()")
        with client.translated_errors():
            if self.new:
                client.connection.hset(client.layout.batch(self.id), mapping=self._fields())
                self._joined([b"0", b"0"])
            else:
                self._joined(client.connection.hmget(client.layout.batch(self.id), ["total", "complete"]))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        producer.current_batch.reset(self._tokens.pop())
        if self.new:
            with self.client.translated_errors():
                Transitions.of(self.client.connection).seal_batch(self.id, time.time())

    async def __aenter__(self) -> batch:
        client = self.client
        with client.translated_errors():
            connection = client.async_pair()[0]
            if self.new:
                await connection.hset(client.layout.batch(self.id), mapping=self._fields())
                self._joined([b"0", b"0"])
            else:
                self._joined(await connection.hmget(client.layout.batch(self.id), ["total", "complete"]))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        producer.current_batch.reset(self._tokens.pop())
        if self.new:
            client = self.client
            with client.translated_errors():
                await client.async_pair()[1].seal_batch(self.id, time.time())

    def job_ids(self) -> list[str]:
        """The ids of the batch's jobs, sorted (the callbacks are not among them)."""
        with self.client.translated_errors():
            members: set[bytes] = self.client.connection.smembers(self.client.layout.batch_jobs(self.id))  # type: ignore[assignment]
        return sorted(member.decode() for member in members)

    def show(self) -> BatchView:
        """The batch as `jobctl batch show` shows it."""
        with self.client.translated_errors():
            return read(self.client.connection, self.id)


@dataclass(frozen=True)
class BatchView:
    """A batch as front ends show it (`jobctl batch show`, the dashboard's batch page)."""

    id: str
    description: str
    total: int
    pending: int
    succeeded: int
    failed: int
    sealed: bool
    complete: bool
    generation: int  # completions so far
    failed_ids: list[str]
    callbacks: dict[str, str]  # 'complete'/'success' -> the job it runs
    callback_ids: dict[str, list[str]] = field(default_factory=dict)  # -> the ids of its runs so far
    created_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "total": self.total,
            "pending": self.pending,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_ids": self.failed_ids,
            "sealed": self.sealed,
            "complete": self.complete,
            "generation": self.generation,
            "callbacks": {
                kind: {"job": job, "job_ids": self.callback_ids.get(kind, [])} for kind, job in self.callbacks.items()
            },
            "created_at": self.created_at,
        }


def read(connection: redis.Redis, batch_id: str) -> BatchView:
    """The batch's counts, callbacks and failed jobs; raises UnknownBatch."""
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:  # one slot: the batch's, on a cluster
        pipe.hgetall(layout.batch(batch_id))
        pipe.smembers(layout.batch_failed(batch_id))
        raw, failed_ids = read_replies(pipe)  # a key of another type reads as missing
    if not raw:
        raise UnknownBatch(batch_id)
    fields = {name.decode(): value.decode(errors="replace") for name, value in raw.items()}

    def count(name: str) -> int:  # a hand-edited or foreign field reads as 0, never a traceback
        return max(number_value(fields.get(name), int) or 0, 0)

    generation = count("generation")
    callbacks = {kind: fields[f"on_{kind}"] for kind in CALLBACKS if fields.get(f"on_{kind}")}
    # the latest completions' callbacks only: a hand-edited generation of 1e12 must not be listed
    runs = {
        "complete": range(max(generation - SHOWN_GENERATIONS, 0) + 1, generation + 1),
        "success": [count("success_due")] if count("success_due") else [],
    }
    return BatchView(
        id=batch_id,
        description=fields.get("description", ""),
        total=count("total"),
        pending=count("pending"),
        succeeded=count("succeeded"),
        failed=count("failed"),
        sealed=fields.get("sealed") == "1",
        complete=fields.get("complete") == "1",
        generation=generation,
        failed_ids=sorted(member.decode(errors="replace") for member in failed_ids),
        callbacks=callbacks,
        callback_ids={kind: [keys.batch_callback_id(batch_id, kind, n) for n in runs[kind]] for kind in callbacks},
        created_at=number_value(fields.get("created_at")),
    )


def enqueue_due(connection: redis.Redis, config: QueuesConfig, owner: str) -> int:
    """Store the batch callbacks that completions marked due (lua/lib.lua, batch_check); returns
    how many were stored. Each is stored with a claim on (batch, callback, generation) taken by
    the enqueue script in the same step, then leaves the due set: a caller that dies between
    the two leaves it due, and the next caller's enqueue finds the claim and only removes it.
    A callback this process cannot store (its job not registered here, its queue not configured)
    stays due, and the first such error is raised once the others are stored.

    On a cluster each batch's due set is in the batch's slot, and the batches that may have
    callbacks due are listed in keys.BATCHES_WITH_DUE (by whoever ran the script that completed
    one, after it: transitions.py, _listing_due); a batch leaves that list once nothing of it is
    due, and is listed again if a completion came in between."""
    layout = keys.layout_of(connection)
    if not layout.cluster:
        return _enqueue_due(connection, config, owner, keys.BATCHES_DUE)
    stored = 0
    refused: JobctlError | None = None
    listed: list[bytes] = connection.zrange(keys.BATCHES_WITH_DUE, 0, DUE_PER_CALL - 1)  # type: ignore[assignment]
    for member in listed:
        due = layout.batches_due(member.decode(errors="replace"))
        try:
            stored += _enqueue_due(connection, config, owner, due)
        except JobctlError as exc:
            refused = refused or exc
            continue
        if not connection.zcard(due):
            connection.zrem(keys.BATCHES_WITH_DUE, member)
            if connection.zcard(due):
                connection.zadd(keys.BATCHES_WITH_DUE, {member: time.time()})
    if refused:
        raise refused
    return stored


def _enqueue_due(connection: redis.Redis, config: QueuesConfig, owner: str, due: str) -> int:
    """enqueue_due, for the entries of one due set."""
    layout = keys.layout_of(connection)
    stored = 0
    refused: JobctlError | None = None
    entries: list[bytes] = connection.zrange(due, 0, DUE_PER_CALL - 1)  # type: ignore[assignment]
    for entry in entries:
        try:
            batch_id, kind, generation, total, succeeded, failed = json.loads(entry)
            if kind not in CALLBACKS or not isinstance(batch_id, str):
                raise ValueError(entry)
        except (ValueError, TypeError):
            # not an entry batch_check wrote (another tool's, a hand edit): no process could ever
            # store it, and left at the head it would hold back every due callback behind it
            connection.zrem(due, entry)
            continue
        name: bytes | None = connection.hget(layout.batch(batch_id), f"on_{kind}")  # type: ignore[assignment]
        if name:
            try:
                # not a job of any batch the caller is in
                template = producer.Template(config, name.decode(), batch="", layout=layout)
                # in the callback's queue's slot on a cluster, where the enqueue script takes it
                claim = layout.batch_claim(batch_id, kind, generation, template.queue)
                producer.store(
                    connection,
                    template.request(
                        (),
                        {"batch_id": batch_id, "total": total, "succeeded": succeeded, "failed": failed},
                        job_id=keys.batch_callback_id(batch_id, kind, generation),
                        run_claim=(claim, owner, CLAIM_TTL),
                    ),
                )
                stored += 1
            except AlreadyClaimed:
                pass  # stored before, by this process or another
            except JobctlError as exc:
                refused = refused or exc
                continue
        connection.zrem(due, entry)
    if refused:
        raise refused
    return stored
