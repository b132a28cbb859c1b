"""Job state transitions, each one Lua script run atomically in Redis (see `lua/`).

A job moves queued -> started -> finished | scheduled (retry) | dead, or is deferred, canceled,
recovered after a crash, promoted when its time comes. Doing each move in one script means a
job is never in two places or none, whichever process dies at whichever moment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import redis

from ..errors import LeaseLost
from . import keys
from .enqueue_calls import Batch, EnqueueCall, enqueue_many_args, enqueue_reply
from .jobdata import rq_time
from .script_keys import (
    _ACTIVE,
    _BATCH,
    _BATCHES,
    _BREAKER,
    _CANCELED,
    _COMMANDS,
    _DEFERRED,
    _FAILED,
    _JOB,
    _QUEUE,
    _RECOVER,
    _RESULTS,
    _SCHEDULED,
    _SLOTS,
    _TAKE,
    _UNIQUE,
    _WAKE,
    _WORKER,
    _WORKERS_OF_QUEUE,
    _outcome_keys,
    _queue_keys,
)
from .scripts import Refusal, _function, _library, _sha, _source, _undefined
from .wire import (
    RECEIVE,
    Dialogue,
    Pipelined,
    Send,
    _packed,
    _Wire,
    adrive,
    drive,
)

if TYPE_CHECKING:
    import redis.asyncio

# A job's row, as the scripts reply it (job_row in lua/lib.lua): [id, queue, attempt (int), data,
# timeout (text), max_retries, created_at, rq (RQ's options: a list, or b'')], bytes where no type
# is given; read by Worker._job_from_row.
Row = list[Any]


def _refusal(reply: Any) -> Refusal | None:
    """The refusal a script replied, if it did (a script that refuses replies its code alone,
    where its other replies are numbers or lists)."""
    return Refusal(reply.decode()) if isinstance(reply, bytes) else None


def _checked(reply: Any) -> Any:
    if _refusal(reply) is Refusal.FENCED:
        raise LeaseLost()
    return reply


@dataclass
class GoOn:
    """How an outcome script goes on after recording a job (go_on in lua/lib.lua)."""

    queues: list[str]  # the queues to take the next job from; none: the worker stops after this job
    limits: dict[str, str] = field(default_factory=dict)  # the worker's rate and concurrency limits (limits.py)
    start: tuple[str, str] | None = None  # (id, queue) of the reserved job the worker has just started
    reserve: int = 0  # also reserve up to this many jobs, to start without waiting when this one ends

    def arguments(self) -> list[Any]:
        """go_on's ARGV (go_on_args in lua/lib.lua): start, start_queue, reserve, limits, queues."""
        start, start_queue = self.start or ("", "")
        return [start, start_queue, int(self.reserve), _limits(self.limits), *self.queues]

    def keyed(self) -> tuple[str, ...]:
        """The queues whose keys the script is given (go_on_queues in lua/lib.lua)."""
        if self.start and self.start[1] not in self.queues:
            return (*self.queues, self.start[1])
        return tuple(self.queues)


def _limits(limits: dict[str, str]) -> str:
    return json.dumps(limits) if limits else ""


class Next(NamedTuple):
    """An outcome script's reply (go_on in lua/lib.lua)."""

    # the attempt of the reserved job it started; None: that job was canceled or deleted; 0: its
    # limits held it back (it waits in the scheduled set)
    started: int | None
    row: Row | None  # the job it started, when no reserved one was given
    reserved: tuple[Row, ...]  # the jobs it reserved
    # what the outcomes did to their jobs' circuit breakers, a line each: 'opened NAME' or 'closed NAME'
    breaker: str = ""
    more: tuple[Row, ...] = ()  # the other jobs it started (succeed_many's `starts`)

    @classmethod
    def of(cls, reply: list[Any]) -> Next:
        started, row, reserved, *rest = _checked(reply)
        more = tuple(rest[1]) if len(rest) > 1 else ()
        attempt = None if started is None else int(started)
        return cls(attempt, row or None, tuple(reserved), _reply_text(rest[:1]), more)

    @property
    def rows(self) -> list[Row]:
        """Every job it started from the queues (not a reserved one)."""
        return [self.row, *self.more] if self.row else list(self.more)


@dataclass(frozen=True)
class Finished:
    """A job that finished, as succeed_many records it."""

    job_id: str
    queue: str
    attempt: int
    result_json: bytes


def _reply_text(reply: list[Any]) -> str:
    """An optional last item of a reply, as text ('' when absent)."""
    return (reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])) if reply else ""


class _Scripts:
    """How a script is called on one server: as a function of the library (_library), or by
    EVALSHA where the server has no functions (Redis 6, the embedded Redis's)."""

    def __init__(self) -> None:
        self._functions = True  # until the server shows it has none

    def _call(self, name: str, keys: Sequence[str] = ()) -> tuple[Any, ...]:
        """The command, without its arguments, that calls a script with `keys` (its KEYS)."""
        if self._functions:
            return ("FCALL", _function(name), len(keys), *keys)
        return ("EVALSHA", _sha(name), len(keys), *keys)

    def _calls(self, name: str, args: Sequence[Any], keys: Sequence[str] = ()) -> Dialogue:
        if self._functions:
            try:
                return (yield (*self._call(name, keys), *args))
            except redis.ResponseError as exc:
                if not _undefined(exc):
                    raise
            yield from self._load_library()
            if self._functions:
                return (yield (*self._call(name, keys), *args))
        try:
            return (yield (*self._call(name, keys), *args))
        except redis.exceptions.NoScriptError:  # Redis restarted, or never ran it: EVAL caches it too
            return (yield ("EVAL", _source(name), len(keys), *keys, *args))

    def enqueue_many(self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> Dialogue:
        """Store new jobs that share every other field (`fields`, as pack_fields makes them), in one
        call of lua/enqueue_many.lua: the dialogue (drive() or adrive() runs it) whose reply is the
        number stored, or ['full', jobs queued] when they would take the queue past `max_size`."""
        args = enqueue_many_args(queue, now, fields, batch, max_size)
        return self._calls("enqueue_many", args, (keys.queue(queue), keys.ENQUEUE_TEMPLATE, _JOB, keys.QUEUES, _BATCH))

    def send_enqueue_many(self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> Send:
        """enqueue_many's call, to send without waiting; received_enqueue_many reads its reply."""
        args = enqueue_many_args(queue, now, fields, batch, max_size)
        return Send(
            (*self._call("enqueue_many", (keys.queue(queue), keys.ENQUEUE_TEMPLATE, _JOB, keys.QUEUES, _BATCH)), *args)
        )

    def received_enqueue_many(
        self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0
    ) -> Pipelined:
        """The reply of the call send_enqueue_many made with the same arguments; where the script
        was not defined (never loaded, Redis restarted, no functions), nothing ran: the call is
        made again as enqueue_many, which loads it."""
        try:
            return (yield RECEIVE)
        except redis.ResponseError as exc:
            if not _undefined(exc):
                raise
        return (yield from self.enqueue_many(queue, now, fields, batch, max_size))

    def _load_library(self) -> Dialogue:
        """Load the library after a call found its function missing; where the server has no
        functions (or this user may not load them), go on with EVALSHA."""
        try:
            yield ("FUNCTION LOAD", _library())
        except redis.ResponseError as exc:
            if "already exists" in str(exc):  # another process loaded it meanwhile
                return
            if not (_undefined(exc) or isinstance(exc, redis.exceptions.NoPermissionError)):
                raise
            self._functions = False


class AsyncTransitions(_Scripts):
    """The scripts an asyncio application calls (enqueue), on redis-py's asyncio client, called
    the same way as Transitions calls them."""

    def __init__(self, connection: redis.asyncio.Redis) -> None:
        super().__init__()
        self.connection = connection

    async def _run(self, name: str, args: list[Any], keys: Sequence[str] = ()) -> Any:
        return await adrive(self._calls(name, args, keys), self.connection.execute_command)

    async def enqueue_call(self, call: EnqueueCall) -> tuple[str, str, str]:
        """Transitions.enqueue_call."""
        return enqueue_reply(await self._run("enqueue", call.args, call.keys))

    async def seal_batch(self, batch_id: str, now: float) -> bool:
        """Transitions.seal_batch."""
        return _refusal(await self._run("seal_batch", [batch_id, now], _BATCHES)) is not Refusal.UNKNOWN_BATCH


_KEPT = "_jobctl_transitions"  # the attribute Transitions.of keeps a connection's own in


class Transitions(_Scripts):
    """The scripts, bound to one Redis connection."""

    def __init__(self, connection: redis.Redis):
        super().__init__()
        self.connection = connection
        self._own: _Wire | None = None

    @classmethod
    def of(cls, connection: redis.Redis) -> Transitions:
        """The connection's own Transitions, kept with it: an application enqueueing on one
        connection learns once that the server has no functions (Redis 6), not on every call
        (that took three round trips per job). Kept on the connection itself, so that both go
        together: a weak map from connection to Transitions never let either go (its value holds
        its key)."""
        found = getattr(connection, _KEPT, None)
        if not isinstance(found, cls):
            found = cls(connection)
            setattr(connection, _KEPT, found)
        return found

    def _run(self, name: str, args: Sequence[Any], keys: Sequence[str] = ()) -> Any:
        return drive(self._calls(name, args, keys), self._execute)

    def _execute(self, *command: Any) -> Any:
        """execute_command, but a script call is packed by _packed (its command and KEYS once)."""
        execute: Callable[..., Any] = self.connection.execute_command
        if command[0] not in ("FCALL", "EVALSHA"):
            return execute(*command)
        pool = self.connection.connection_pool
        connection = pool.get_connection()
        own: _Wire = connection
        try:
            end = 3 + int(command[2])  # the command, the script, the number of keys, the keys
            own.send_packed_command([_packed(own.encoder, command[:end], command[end:])])
            return own.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            own.disconnect()
            return execute(*command)  # with the client's retries, as before
        finally:
            pool.release(connection)

    def _send(self, name: str, names: Sequence[str], args: Sequence[Any]) -> Callable[[], Any]:
        """Send a script on a connection of its own without waiting; the function returned reads
        its reply (pipelining: the worker runs its next job meanwhile). Only one thread
        may use this. If the reply cannot be read, the function, called again, runs the script
        once more and waits: as for any call, a retry after the script did run finds its job gone
        and raises LeaseLost."""
        if self._own is None:
            self._own = self.connection.connection_pool.get_connection()
        own = self._own
        try:
            own.send_packed_command([_packed(own.encoder, self._call(name, names), args)])
        except redis.RedisError:
            own.disconnect()
            return lambda: self._run(name, args, names)
        sent = True

        def reply() -> Any:
            nonlocal sent
            if not sent:
                return self._run(name, args, names)
            sent = False
            try:
                return own.read_response()
            except redis.ResponseError as exc:
                if not _undefined(exc):
                    raise
                return self._run(name, args, names)  # nothing ran (Redis restarted): load it and run it
            except redis.RedisError:
                own.disconnect()
                raise

        return reply

    def enqueue_call(self, call: EnqueueCall) -> tuple[str, str, str]:
        """Store a job whose shared part was built once (EnqueueShared). Returns (outcome, job
        id, state); outcome is 'ok', 'exists' (the id is taken by an active job), 'duplicate' (the
        unique claim is held; the id is the holder's), 'recent' (the claim, held for `unique_ttl`
        seconds, is held; the id is the holder's, the state the seconds it is still held),
        'unknown_parent' (the id is the missing parent's), 'claimed' (`run_claim` = (key, owner,
        ttl) was already held; the id is its holder) or 'full' (the queue holds `max_size` jobs;
        the state is how many)."""
        return enqueue_reply(self._run("enqueue", call.args, call.keys))

    def fetch(
        self,
        worker: str,
        token: str,
        queues: list[str],
        now: float,
        count: int = 1,
        limits: dict[str, str] | None = None,
    ) -> list[Row]:
        """Start up to `count` jobs; returns their rows [id, queue, attempt, data, timeout,
        max_retries, created_at, rq]. `limits`: the worker's rate and concurrency limits
        (limits.py). Raises LeaseLost when the worker's lease is gone."""
        names = (keys.worker(worker), keys.active(worker), *_TAKE, *_queue_keys(tuple(queues)))
        args = [token, worker, now, rq_time(now), count, _limits(limits or {}), *queues]
        rows: list[Row] = _checked(self._run("fetch", args, names))
        return rows

    def succeed(
        self,
        job_id: str,
        queue: str,
        worker: str,
        attempt: int,
        now: float,
        result_json: bytes,
        go_on: GoOn,
        *,
        wait: bool = True,
    ) -> Next | Callable[[], Next]:
        """Record a finished job and, in the same round trip, go on as `go_on` says; returns the
        reply (Next), or with wait=False a function that waits for it. Raises LeaseLost (and
        writes nothing) when the job was recovered from this worker."""
        return self.succeed_many(worker, now, [Finished(job_id, queue, attempt, result_json)], go_on, wait=wait)

    def succeed_many(
        self, worker: str, now: float, finished: Sequence[Finished], go_on: GoOn, starts: int = 1, *, wait: bool = True
    ) -> Next | Callable[[], Next]:
        """Record jobs that finished (each one's end at `now`) in one call, then go on as `go_on`
        says, starting up to `starts` jobs (Next.rows; with go_on.start, the reserved one and
        `starts` - 1 more). Raises LeaseLost (and writes nothing) when one of them was recovered
        from this worker."""
        args: list[Any] = [worker, now, rq_time(now), _WAKE, len(finished), starts]
        for job in finished:
            args += [job.job_id, job.queue, job.attempt, job.result_json, base64.b64encode(job.result_json)]
        args += go_on.arguments()
        return self._next("succeed", _outcome_keys("succeed", worker, "", go_on.keyed()), args, wait)

    def _next(self, script: str, names: Sequence[str], args: Sequence[Any], wait: bool) -> Next | Callable[[], Next]:
        """Call a script that goes on with the worker's next job: its reply, or with wait=False a
        function that waits for it."""
        if wait:
            return Next.of(self._run(script, args, names))
        reply = self._send(script, names, args)
        return lambda: Next.of(reply())

    def fail(
        self,
        job_id: str,
        queue: str,
        worker: str,
        attempt: int,
        now: float,
        *,
        verdict: str,
        retry_at: float | None,
        error_entry: dict[str, Any],
        exc_info: bytes,
        reason: str,
        go_on: GoOn,
        breaker: bool | None = None,
        wait: bool = True,
    ) -> Next | Callable[[], Next]:
        """Record a failed attempt: `verdict` 'retry' (at `retry_at`, unix time), 'dead',
        'canceled' (stopped while running) or 'deferred' (its breaker is open: back at
        `retry_at`, its attempt unused); then go on as `succeed` does. `breaker`: for the job's
        circuit breaker, True a failure it counts, False one it does not, None no verdict."""
        args = [job_id, queue, worker, attempt, now, rq_time(now), exc_info, base64.b64encode(exc_info), _WAKE]
        args += [verdict, retry_at or 0, json.dumps(error_entry), reason, {True: "1", False: "0", None: ""}[breaker]]
        args += go_on.arguments()
        return self._next("fail", _outcome_keys("fail", worker, queue, go_on.keyed()), args, wait)

    def go_on(
        self, worker: str, token: str, go_on: GoOn, now: float, *, wait: bool = True
    ) -> Next | Callable[[], Next]:
        """Go on as an outcome script does, without an outcome (lua/go_on.lua: the worker recorded
        it before running the job's hooks). Raises LeaseLost when the worker's lease is gone."""
        args = [token, worker, now, rq_time(now), *go_on.arguments()]
        names = (keys.worker(worker), keys.active(worker), *_TAKE, *_queue_keys(go_on.keyed()))
        return self._next("go_on", names, args, wait)

    def breaker_enter(self, name: str, settings: str, job_id: str, worker: str, now: float) -> float | None:
        """May a `with jobctl.breaker(name):` block run (lua/breaker.lua)? None: yes (half-open,
        `job_id` holds the trial); else the unix time at which the breaker may let it."""
        reply = self._run("breaker", ["enter", job_id, worker, now, settings, ""], self._breaker_keys(name))
        until = float(reply)
        return until if until > 0 else None

    def breaker_record(self, name: str, settings: str, job_id: str, worker: str, now: float, failed: bool) -> str:
        """Record how a block ended: `failed`, a failure the breaker counts. Returns 'opened NAME',
        'closed NAME' or ''."""
        args = ["record", job_id, worker, now, settings, "1" if failed else "0"]
        return _reply_text([self._run("breaker", args, self._breaker_keys(name))])

    @staticmethod
    def _breaker_keys(name: str) -> tuple[str, ...]:
        return (keys.breaker(name), _WORKER, _ACTIVE, _BREAKER)

    def release(self, worker: str, job_id: str, queue: str, now: float) -> bool:
        """Give back a job the worker reserved and did not start (lua/release.lua)."""
        names = (keys.active(worker), keys.queue(queue), _JOB, _SLOTS, keys.QUEUES)
        return bool(self._run("release", [job_id, queue, rq_time(now), _WAKE], names))

    def track(self, names: Sequence[str], payload: str) -> None:
        """Flush a worker's job tracking (tracking.Tracker.payload: the keys, and what to write)."""
        self._run("track", [payload], names)

    def heartbeat(self, worker: str, token: str, now_iso: str, ttl: int, cpu_percent: float, rss: int) -> list[str]:
        """Renew the worker's lease; returns the ids of its in-flight jobs an operator asked to
        stop. Raises LeaseLost when the lease is gone."""
        return [
            job_id.decode()
            for job_id in _checked(
                self._run(
                    "heartbeat",
                    [token, now_iso, ttl, cpu_percent, rss],
                    (keys.worker(worker), keys.active(worker), _JOB),
                )
            )
        ]

    def recover(
        self, worker: str, now: float, *, cause: str, crash_limit: int, how: str, culprits: Sequence[str] = ()
    ) -> tuple[int, int]:
        """Requeue (or bury, at crash_limit) the jobs a gone worker held; with `culprits`, only those
        count the crash. Returns (requeued, buried)."""
        names = (keys.worker(worker), keys.active(worker), *_RECOVER, keys.ACTIVE_WORKERS)
        requeued, buried = self._run(
            "recover", [worker, now, rq_time(now), cause, crash_limit, how, _WAKE, *culprits], names
        )
        return int(requeued), int(buried)

    def overdue(self, workers: list[str], now: float) -> list[tuple[str, str, float]]:
        """(worker, job id, seconds past its deadline) of in-flight jobs past their grace period."""
        flat = self._run("overdue", [now, *workers], (_JOB, *map(keys.active, workers)))
        return [(flat[i].decode(), flat[i + 1].decode(), float(flat[i + 2])) for i in range(0, len(flat), 3)]

    def promote(self, supervisor: str, lease_ms: int, now: float) -> int | None:
        """Queue the due scheduled jobs of every queue; None when another supervisor is the promoter."""
        names = (keys.PROMOTER, keys.QUEUES, _JOB, _QUEUE, _SCHEDULED, _DEFERRED, _CANCELED, _UNIQUE, _SLOTS, *_BATCHES)
        moved = self._run("promote", [supervisor, lease_ms, now, rq_time(now), _WAKE], names)
        return None if _refusal(moved) is Refusal.NOT_PROMOTER else int(moved)

    def sweep(
        self, own_workers: list[str], queues: list[str], now: float, *, crash_limit: int, batch: int = 1000
    ) -> tuple[int, int, int, int]:
        """Recover lost workers' jobs and delete ended jobs past their ttl; returns (lost workers,
        requeued, buried, deleted)."""
        registries = [keys.ended(status, queue) for queue in queues for status in ("finished", "failed", "canceled")]
        lost, requeued, buried, deleted = self._run(
            "sweep",
            [now, rq_time(now), crash_limit, batch, _WAKE, len(own_workers), *own_workers, *queues],
            (keys.ACTIVE_WORKERS, _WORKER, _ACTIVE, *_RECOVER, *registries),
        )
        return int(lost), int(requeued), int(buried), int(deleted)

    def enqueue_now(self, job_id: str, now: float) -> bool:
        """Queue a scheduled job ahead of its time; False if it is not scheduled."""
        names = (_JOB, _QUEUE, _SCHEDULED, keys.QUEUES)
        return bool(self._run("enqueue_now", [job_id, rq_time(now), _WAKE], names))

    def requeue_dead(self, job_ids: list[str], now: float) -> list[str]:
        """Requeue the dead jobs among `job_ids` (and the dependents their deaths canceled), in
        one call; returns the ids requeued (a job no longer dead is left alone)."""
        names = (_JOB, _QUEUE, _FAILED, _CANCELED, _DEFERRED, keys.QUEUES, _UNIQUE, _BATCH)
        return [job_id.decode() for job_id in self._run("requeue_dead", [rq_time(now), _WAKE, *job_ids], names)]

    def cancel(self, job_id: str, now: float, reason: str) -> str:
        """Cancel a queued, scheduled or deferred job and, as for a dead parent, its deferred
        dependents; ask the worker of a started job to stop it. Returns the RQ status the job had
        ('' if there is no such job)."""
        names = (
            _JOB,
            _QUEUE,
            _SCHEDULED,
            _DEFERRED,
            _CANCELED,
            keys.QUEUES,
            _UNIQUE,
            _SLOTS,
            _WORKERS_OF_QUEUE,
            _WORKER,
            _ACTIVE,
            *_BATCHES,
        )
        status: bytes = self._run("cancel", [job_id, now, rq_time(now), reason, _WAKE, _COMMANDS], names)
        return status.decode(errors="replace")  # a status another tool wrote may be any bytes

    def seal_batch(self, batch_id: str, now: float) -> bool:
        """Seal a batch (lua/seal_batch.lua): it completes once nothing of it is pending, at once if
        nothing is. False: there is no such batch."""
        return _refusal(self._run("seal_batch", [batch_id, now], _BATCHES)) is not Refusal.UNKNOWN_BATCH

    def purge(self, queue: str, registry: str, ids: list[str], cutoff: float, *, dry_run: bool) -> int:
        """Delete the jobs among `ids` of a registry ('finished', 'failed', 'canceled') that
        ended at or before `cutoff`; returns how many (would be) deleted."""
        names = (keys.ended(registry, queue), _JOB, _RESULTS)
        return int(self._run("purge", [registry, cutoff, "1" if dry_run else "0", *ids], names))
