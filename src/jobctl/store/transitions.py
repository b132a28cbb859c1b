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
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import redis

from ..errors import LeaseLost, NotReplicated, UnknownBatch, UsageError
from ..options import replicas
from ..options.durations import format_exact
from . import keys
from .enqueue_calls import Batch, EnqueueCall, enqueue_many_args, enqueue_reply
from .jobdata import rq_time
from .script_keys import _COMMANDS, _WAKE, SlotKeys, _outcome_keys, _queue_keys, slot_keys
from .scripts import Refusal, _function, _library, _sha, _undefined, source_for
from .wire import (
    _REROUTED,
    RECEIVE,
    Dialogue,
    Pipelined,
    Send,
    _packed,
    _Wire,
    adrive,
    adrive_on,
    call_packed,
    drive,
    drive_on,
    on_async_cluster,
    on_cluster,
)

if TYPE_CHECKING:
    import redis.asyncio

# A job's row, as the scripts reply it (job_row in lua/lib.lua): [id, queue, attempt (int), data,
# timeout (text), max_retries, created_at, rq (RQ's options: a list, or b'')], bytes where no type
# is given; read by Worker._job_from_row.
Row = list[Any]
ROW_WIDTH = 8  # the items of a row (job_row in lua/lib.lua)


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
    # the attempt and timeout of `start`'s reservation, with which the worker runs it, for a job
    # none of `limits` may hold back (limits.may_hold_back): its start then reads only its status
    # (start_reserved in lua/lib.lua); None: they are read from its record
    started_with: tuple[int, float] | None = None

    def arguments(self, now: float) -> list[Any]:
        """go_on's ARGV (go_on_args in lua/lib.lua) for a call at `now`: start, start_queue, its
        attempt, deadline and started-registry score (from started_with), reserve, limits, queues."""
        start, start_queue = self.start or ("", "")
        started: list[Any] = ["", "", ""]
        if self.started_with:
            attempt, timeout = self.started_with
            # written out here, not by Redis: its printf costs a few thousand instructions a
            # number, on the one server every worker shares (bench/redis_instructions.py)
            started = [attempt, *((repr(now + timeout), repr(now + timeout + 60)) if timeout > 0 else ("+inf", "+inf"))]
        return [start, start_queue, *started, int(self.reserve), _limits(self.limits), *self.queues]

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
        """From go_on's flat reply: started, breaker, n, the n reserved rows, the started rows."""
        started, breaker, reserved_count, *items = _checked(reply)
        rows = [items[at : at + ROW_WIDTH] for at in range(0, len(items), ROW_WIDTH)]
        reserved, begun = rows[:reserved_count], rows[reserved_count:]
        attempt = None if started is None else int(started)
        return cls(attempt, begun[0] if begun else None, tuple(reserved), _reply_text(breaker), tuple(begun[1:]))

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


def _reply_text(value: Any) -> str:
    """A reply's text item ('' for none: Redis's nil)."""
    return value.decode() if isinstance(value, bytes) else "" if value is None else str(value)


class _Scripts:
    """How a script is called on one server: as a function of the library (_library), or by
    EVALSHA where the server has no functions (Redis 6, the embedded Redis's). On a Redis
    Cluster, each call goes to its slot's master (wire.on_cluster), the library loaded on
    every master."""

    def __init__(self, layout: keys.Layout) -> None:
        self.layout = layout
        self._functions = True  # until the server shows it has none

    def _keys(self, queue: str = "") -> SlotKeys:
        """The prefixes and shared keys of a call on `queue`'s slot (the same for every queue on one Redis)."""
        return slot_keys(self.layout, queue)

    def _batch_keys(self, batch_id: str) -> tuple[str, str]:
        """A batch's hash and due set as its scripts take them: prefixes on one Redis, on a cluster
        the keys themselves, in the batch's own slot."""
        if self.layout.cluster:
            return (self.layout.batch(batch_id), self.layout.batches_due(batch_id))
        return self._keys().batches

    def sealing(self, batch_id: str, now: float) -> Dialogue:
        """Seal a batch (lua/seal_batch.lua): it completes once nothing of it is pending, at once if
        nothing is. The dialogue's reply: False if there is no such batch."""
        reply = yield from self._calls("seal_batch", [batch_id, now], self._batch_keys(batch_id))
        if _refusal(reply) is Refusal.UNKNOWN_BATCH:
            return False
        yield from self._listing_due(batch_id, int(reply) - 1, now)
        return True

    def joining(self, batch_id: str, job_ids: Sequence[str], now: float, *, leave: bool = False) -> Dialogue:
        """On a cluster, jobs join a batch on its slot before they are stored (lua/join_batch.lua),
        or leave it when their enqueue was refused. The dialogue's reply: how many joined (an id
        already of the batch joins once) or left. Raises UnknownBatch."""
        args = [batch_id, "leave" if leave else "join", now, *job_ids]
        reply = yield from self._calls("join_batch", args, self._batch_keys(batch_id))
        refusal = _refusal(reply)
        if refusal is not None:
            raise UnknownBatch(batch_id, complete=refusal is Refusal.BATCH_COMPLETE)
        yield from self._listing_due(batch_id, int(reply[1]), now)
        return int(reply[0])

    @staticmethod
    def _listing_due(batch_id: str, due: int, now: float) -> Dialogue:
        """On a cluster, a batch with callbacks due joins the fleet-wide list of such batches,
        which api/batches.enqueue_due reads (its due set is in the batch's slot)."""
        if due > 0:
            yield ("ZADD", keys.BATCHES_WITH_DUE, "NX", now, batch_id)

    def _one_queue(self, queues: Sequence[str]) -> None:
        """On a cluster a call serves one queue: its slot's."""
        if self.layout.cluster and len(set(queues)) != 1:
            raise ValueError(f"on a Redis Cluster a call serves one queue, not {', '.join(queues) or 'none'}")

    def _across_slots(self, queues: Sequence[str]) -> bool:
        """Whether a call would touch the keys of several queues: of several slots on a cluster."""
        return self.layout.cluster and len(set(queues)) > 1

    def _call(self, name: str, keys: Sequence[str] = ()) -> tuple[Any, ...]:
        """The command, without its arguments, that calls a script with `keys` (its KEYS)."""
        if self._functions:
            return ("FCALL", _function(name, self.layout.cluster), len(keys), *keys)
        return ("EVALSHA", _sha(name, self.layout.cluster), len(keys), *keys)

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
            return (yield ("EVAL", source_for(name, self.layout.cluster), len(keys), *keys, *args))

    def enqueue_many(self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> Dialogue:
        """Store new jobs that share every other field (`fields`, as pack_fields makes them), in one
        call of lua/enqueue_many.lua: the dialogue (drive() or adrive() runs it) whose reply is the
        number stored, or ['full', jobs queued] when they would take the queue past `max_size`."""
        args = enqueue_many_args(queue, now, fields, batch, max_size)
        return self._calls("enqueue_many", args, self._enqueue_many_keys(queue))

    def _enqueue_many_keys(self, queue: str) -> tuple[str, ...]:
        p = self._keys(queue)
        return (self.layout.queue(queue), p.enqueue_template, p.job, p.queues, p.batch)

    def send_enqueue_many(self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> Send:
        """enqueue_many's call, to send without waiting; received_enqueue_many reads its reply."""
        args = enqueue_many_args(queue, now, fields, batch, max_size)
        return Send((*self._call("enqueue_many", self._enqueue_many_keys(queue)), *args))

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
            yield ("FUNCTION LOAD", _library(self.layout.cluster))
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
        super().__init__(keys.layout_of(connection))
        self.connection = connection
        self._execute = on_async_cluster(connection) if self.layout.cluster else connection.execute_command

    async def _run(self, name: str, args: list[Any], keys: Sequence[str] = ()) -> Any:
        return await adrive(self._calls(name, args, keys), self._execute)

    async def enqueue_call(self, call: EnqueueCall) -> tuple[str, str, str]:
        """Transitions.enqueue_call."""
        if not replicas.wanted().replicas:
            return enqueue_reply(await self._run("enqueue", call.args, call.keys))
        return enqueue_reply(await self.acknowledged(self._calls("enqueue", call.args, call.keys)))

    async def acknowledged(self, dialogue: Pipelined) -> Any:
        """Transitions.acknowledged, on one Redis."""
        if self.layout.cluster:
            raise UsageError(
                "JOBCTL_ENQUEUE_REPLICAS: the asyncio API does not wait for replicas on a Redis Cluster yet; "
                "enqueue with enqueue() or unset it"
            )
        return await adrive_on(acknowledged(dialogue, replicas.wanted()), self.connection)

    async def seal_batch(self, batch_id: str, now: float) -> bool:
        """Transitions.seal_batch."""
        return bool(await adrive(self.sealing(batch_id, now), self._execute))

    async def join_batch(self, batch_id: str, job_ids: Sequence[str], now: float, *, leave: bool = False) -> int:
        """Transitions.join_batch."""
        return int(await adrive(self.joining(batch_id, job_ids, now, leave=leave), self._execute))


def acknowledged(call: Pipelined, wanted: replicas.Acknowledged) -> Pipelined:
    """A write's dialogue, then Redis's WAIT for `wanted` replicas on the same connection (WAIT
    counts the replicas that have that connection's writes). Raises NotReplicated when fewer
    acknowledge in time: the write stands on the master."""
    reply = yield from call
    count = int((yield ("WAIT", wanted.replicas, max(1, round(wanted.timeout * 1000)))))
    if count < wanted.replicas:
        raise NotReplicated(
            f"stored on the master, but {count} of the {wanted.replicas} replicas asked for "
            f"(JOBCTL_ENQUEUE_REPLICAS) had it after {format_exact(wanted.timeout)}: a failover now may lose it"
        )
    return reply


def _master_of(cluster: Any, key: str) -> redis.Redis:
    """The client of the master serving `key`'s slot, from a cluster client's map of the slots."""
    client: redis.Redis = cluster.get_redis_connection(cluster.get_node_from_key(key))
    return client


_KEPT = "_jobctl_transitions"  # the attribute Transitions.of keeps a connection's own in


class Transitions(_Scripts):
    """The scripts, bound to one Redis connection."""

    def __init__(self, connection: redis.Redis):
        super().__init__(keys.layout_of(connection))
        self.connection = connection
        self._own: _Wire | None = None
        self._own_on: dict[str, _Wire] = {}  # on a cluster, by master (host:port)
        self._registered: set[str] = set()
        self._routed = on_cluster(connection) if self.layout.cluster else None

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
        if self._routed:  # a cluster's client has no one pool
            return self._routed(*command)
        execute: Callable[..., Any] = self.connection.execute_command
        if command[0] not in ("FCALL", "EVALSHA"):
            return execute(*command)
        try:
            return call_packed(self.connection, command)
        except (redis.ConnectionError, redis.TimeoutError):
            return execute(*command)  # with the client's retries, as before

    def _send(self, name: str, names: Sequence[str], args: Sequence[Any]) -> Callable[[], Any]:
        """Send a script on a connection of its own without waiting; the function returned reads
        its reply (pipelining: the worker runs its next job meanwhile). Only one thread
        may use this. If the reply cannot be read, the function, called again, runs the script
        once more and waits: as for any call, a retry after the script did run finds its job gone
        and raises LeaseLost. On a cluster the connection is one to the master of the first key's
        slot; a reply that the slot is elsewhere (nothing ran) sends the call by the cluster
        client's routing."""
        own = self._own_for(names[0])
        if own is None:  # a cluster's map of the slots names no master for it: routed at once
            answer = self._run(name, args, names)
            return lambda: answer
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
                if not (_undefined(exc) or isinstance(exc, _REROUTED)):
                    raise
                # nothing ran (Redis restarted, or the slot moved): load it, route it, run it
                return self._run(name, args, names)
            except redis.RedisError:
                own.disconnect()
                raise

        return reply

    def _own_for(self, key: str) -> _Wire | None:
        """_send's connection for a call whose first key is `key`: on one Redis, one of its own;
        on a cluster, one of its own to each master, that of `key`'s slot (None when the map of
        the slots names none: a failover under way)."""
        if not self.layout.cluster:
            if self._own is None:
                self._own = self.connection.connection_pool.get_connection()
            return self._own
        cluster: Any = self.connection  # redis-py's cluster client, unannotated
        try:
            node = cluster.get_node_from_key(key)
        except _REROUTED:
            return None
        own = self._own_on.get(node.name)
        if own is None:
            own = self._own_on[node.name] = cluster.get_redis_connection(node).connection_pool.get_connection()
        return own

    def register_queue(self, queue: str) -> None:
        """Add `queue` to RQ's set of known queues, once per connection: on a cluster the
        enqueue scripts cannot (the set is in no queue's slot)."""
        if queue not in self._registered:
            self.connection.sadd(keys.QUEUES, self.layout.queue(queue))
            self._registered.add(queue)

    def enqueue_call(self, call: EnqueueCall) -> tuple[str, str, str]:
        """Store a job whose shared part was built once (EnqueueShared); with
        JOBCTL_ENQUEUE_REPLICAS, wait for the replicas (acknowledged; NotReplicated). Returns (outcome, job
        id, state); outcome is 'ok', 'exists' (the id is taken by an active job), 'duplicate' (the
        unique claim is held; the id is the holder's), 'recent' (the claim, held for `unique_ttl`
        seconds, is held; the id is the holder's, the state the seconds it is still held),
        'unknown_parent' (the id is the missing parent's), 'claimed' (`run_claim` = (key, owner,
        ttl) was already held; the id is its holder) or 'full' (the queue holds `max_size` jobs;
        the state is how many)."""
        if not replicas.wanted().replicas:
            return enqueue_reply(self._run("enqueue", call.args, call.keys))
        return enqueue_reply(self.acknowledged(lambda: self._calls("enqueue", call.args, call.keys), call.keys[0]))

    def acknowledged(self, dialogue: Callable[[], Pipelined], key: str, *, again: bool = True) -> Any:
        """Run a write's dialogue and WAIT for JOBCTL_ENQUEUE_REPLICAS replicas (acknowledged), on one
        connection: of the client's pool on one Redis, of the master of `key`'s slot on a cluster.
        There, a slot that moved (MOVED, ASK: nothing ran) refreshes the client's map of the slots
        and, `again`, the dialogue is made and run once more on the slot's master."""
        wanted = replicas.wanted()
        if not self.layout.cluster:
            return drive_on(acknowledged(dialogue(), wanted), self.connection)
        cluster: Any = self.connection  # redis-py's cluster client, unannotated
        try:
            return drive_on(acknowledged(dialogue(), wanted), _master_of(cluster, key))
        except redis.exceptions.AskError:  # MovedError is one
            cluster.nodes_manager.initialize()
            if not again:
                raise
        return drive_on(acknowledged(dialogue(), wanted), _master_of(cluster, key))

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
        (limits.py). Raises LeaseLost when the worker's lease is gone.

        On a cluster, one call per queue (each on its slot) in the order given, until `count`."""
        if not self.layout.cluster:
            return self._fetch(worker, token, queues, now, count, limits, "")
        rows: list[Row] = []
        for queue in queues:
            if len(rows) >= count:
                break
            rows += self._fetch(worker, token, [queue], now, count - len(rows), limits, queue)
        return rows

    def _fetch(
        self,
        worker: str,
        token: str,
        queues: list[str],
        now: float,
        count: int,
        limits: dict[str, str] | None,
        queue: str,
    ) -> list[Row]:
        """One fetch.lua call; `queue`: its slot's, on a cluster."""
        layout = self.layout
        names = (layout.worker(worker, queue), layout.active(worker, queue), *self._keys(queue).take)
        names += _queue_keys(layout, tuple(queues))
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
        queues = sorted({job.queue for job in finished})
        if len(queues) > 1 and self.layout.cluster:
            # each queue's outcomes on its own slot; the next jobs are fetched queue by queue (fetch)
            replies = [
                cast(Next, self.succeed_many(worker, now, [job for job in finished if job.queue == q], GoOn([]), 0))
                for q in queues
            ]
            done = Next(None, None, (), "\n".join(filter(None, (reply.breaker for reply in replies))))
            return done if wait else lambda: done
        if self._across_slots((*queues, *go_on.keyed())):
            go_on = GoOn([], go_on.limits)  # as _outcome does
        args: list[Any] = [worker, now, rq_time(now), _WAKE, len(finished), starts]
        for job in finished:
            args += [job.job_id, job.queue, job.attempt, job.result_json, base64.b64encode(job.result_json)]
        args += go_on.arguments(now)
        return self._next(
            "succeed", _outcome_keys(self.layout, "succeed", worker, queues[0], go_on.keyed()), args, wait
        )

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
        return self._outcome(
            "fail",
            job_id,
            queue,
            worker,
            attempt,
            now,
            go_on,
            exc_info,
            wait,
            [verdict, retry_at or 0, json.dumps(error_entry), reason, {True: "1", False: "0", None: ""}[breaker]],
        )

    def _outcome(
        self,
        script: str,
        job_id: str,
        queue: str,
        worker: str,
        attempt: int,
        now: float,
        go_on: GoOn,
        blob: bytes,
        wait: bool,
        outcome: Sequence[Any] = (),
    ) -> Next | Callable[[], Next]:
        """Call an outcome script: the job, `blob` (the result, or the traceback) as is and
        base64-encoded (RQ's results-stream form), the `outcome`'s own arguments, then go_on's."""
        if self._across_slots((queue, *go_on.keyed())):
            # the next job may come from another queue's slot: the outcome alone, and the worker
            # fetches its next job queue by queue (fetch)
            go_on = GoOn([], go_on.limits)
        args = [job_id, queue, worker, attempt, now, rq_time(now), blob, base64.b64encode(blob), _WAKE]
        args += [*outcome, *go_on.arguments(now)]
        return self._next(script, _outcome_keys(self.layout, script, worker, queue, go_on.keyed()), args, wait)

    def go_on(
        self, worker: str, token: str, go_on: GoOn, now: float, *, wait: bool = True
    ) -> Next | Callable[[], Next]:
        """Go on as an outcome script does, without an outcome (lua/go_on.lua: the worker recorded
        it before running the job's hooks). Raises LeaseLost when the worker's lease is gone.

        On a cluster with several queues to go on from: one call per queue, in order, until one
        starts a job (none reserved)."""
        if self._across_slots(go_on.keyed()):
            found = Next(None, None, ())
            for each in go_on.queues:
                found = Next.of(self._run("go_on", *self._go_on_call(worker, token, GoOn([each], go_on.limits), now)))
                if found.row:
                    break
            return found if wait else lambda: found
        args, names = self._go_on_call(worker, token, go_on, now)
        return self._next("go_on", names, args, wait)

    def _go_on_call(self, worker: str, token: str, go_on: GoOn, now: float) -> tuple[list[Any], tuple[str, ...]]:
        """go_on.lua's ARGV and KEYS."""
        args = [token, worker, now, rq_time(now), *go_on.arguments(now)]
        keyed = go_on.keyed()
        queue = keyed[0] if self.layout.cluster and keyed else ""
        layout = self.layout
        names = (layout.worker(worker, queue), layout.active(worker, queue), *self._keys(queue).take)
        return args, names + _queue_keys(layout, keyed)

    def breaker_enter(
        self, name: str, settings: str, job_id: str, worker: str, now: float, queue: str = ""
    ) -> float | None:
        """May a `with jobctl.breaker(name):` block run (lua/breaker.lua)? None: yes (half-open,
        `job_id` holds the trial); else the unix time at which the breaker may let it. `queue`: the
        job's, on a cluster (a breaker is kept per queue there, as @job(breaker=) keeps it)."""
        reply = self._run("breaker", ["enter", job_id, worker, now, settings, ""], self._breaker_keys(name, queue))
        until = float(reply)
        return until if until > 0 else None

    def breaker_record(
        self, name: str, settings: str, job_id: str, worker: str, now: float, failed: bool, queue: str = ""
    ) -> str:
        """Record how a block ended: `failed`, a failure the breaker counts. Returns 'opened NAME',
        'closed NAME' or ''."""
        args = ["record", job_id, worker, now, settings, "1" if failed else "0"]
        return _reply_text(self._run("breaker", args, self._breaker_keys(name, queue)))

    def _breaker_keys(self, name: str, queue: str) -> tuple[str, ...]:
        if self.layout.cluster and not queue:
            raise UsageError(
                f"breaker {name!r}: on a Redis Cluster a breaker is kept per queue, and a block outside a job has none"
            )
        p = self._keys(queue)
        return (self.layout.breaker(name, queue), p.worker, p.active, p.breaker)

    def release(self, worker: str, job_id: str, queue: str, now: float) -> bool:
        """Give back a job the worker reserved and did not start (lua/release.lua)."""
        p = self._keys(queue)
        names = (self.layout.active(worker, queue), self.layout.queue(queue), p.job, p.slots, p.queues)
        return bool(self._run("release", [job_id, queue, rq_time(now), _WAKE], names))

    def track(self, names: Sequence[str], payload: str) -> None:
        """Flush a worker's job tracking (tracking.Tracker.payload: the keys, and what to write)."""
        self._run("track", [payload], names)

    def heartbeat(
        self, worker: str, token: str, now_iso: str, ttl: int, cpu_percent: float, rss: int, queue: str = ""
    ) -> list[str]:
        """Renew the worker's lease; returns the ids of its in-flight jobs an operator asked to
        stop. Raises LeaseLost when the lease is gone. `queue`: the worker's, on a cluster."""
        return [
            job_id.decode()
            for job_id in _checked(
                self._run(
                    "heartbeat",
                    [token, now_iso, ttl, cpu_percent, rss],
                    (self.layout.worker(worker, queue), self.layout.active(worker, queue), self._keys(queue).job),
                )
            )
        ]

    def recover(
        self,
        worker: str,
        now: float,
        *,
        cause: str,
        crash_limit: int,
        how: str,
        culprits: Sequence[str] = (),
        queue: str = "",
    ) -> tuple[int, int]:
        """Requeue (or bury, at crash_limit) the jobs a gone worker held; with `culprits`, only those
        count the crash. Returns (requeued, buried). `queue`: the worker's, on a cluster."""
        p = self._keys(queue)
        names = (self.layout.worker(worker, queue), self.layout.active(worker, queue), *p.recover, p.active_workers)
        requeued, buried = self._run(
            "recover", [worker, now, rq_time(now), cause, crash_limit, how, _WAKE, *culprits], names
        )
        if self.layout.cluster:  # RQ's set of workers is in no queue's slot: the script leaves it
            self.connection.srem(keys.WORKERS, self.layout.worker(worker, queue))
        return int(requeued), int(buried)

    def overdue(self, workers: list[str], now: float, queue: str = "") -> list[tuple[str, str, float]]:
        """(worker, job id, seconds past its deadline) of in-flight jobs past their grace period.
        `queue`: the workers', on a cluster."""
        actives = [self.layout.active(worker, queue) for worker in workers]
        flat = self._run("overdue", [now, *workers], (self._keys(queue).job, *actives))
        return [(flat[i].decode(), flat[i + 1].decode(), float(flat[i + 2])) for i in range(0, len(flat), 3)]

    def promote(self, supervisor: str, lease_ms: int, now: float, queue: str = "") -> int | None:
        """Queue the due scheduled jobs of every queue (of `queue` alone on a cluster); None when
        another supervisor is the promoter."""
        p = self._keys(queue)
        names = (
            p.promoter,
            p.queues,
            p.job,
            p.queue,
            p.scheduled,
            p.deferred,
            p.canceled,
            p.unique,
            p.slots,
            *p.ended,
        )
        moved = self._run("promote", [supervisor, lease_ms, now, rq_time(now), _WAKE, queue], names)
        return None if _refusal(moved) is Refusal.NOT_PROMOTER else int(moved)

    def promote_queues(self, promoter: str, lease_ms: int, now: float, queues: Sequence[str]) -> int | None:
        """promote() over `queues`: one call for them all on one Redis; on a cluster one per
        queue, each under its own lease, the promoter of a queue also delivering its outbox (so
        a job waiting on a parent of another queue starts one pass after the parent ended).
        The jobs moved, or None when another is the promoter of every one."""
        counted = []
        for queue in queues if self.layout.cluster else [""]:
            moved = self.promote(promoter, lease_ms, now, queue)
            if moved is not None:
                counted.append(moved)
                if self.layout.cluster and lease_ms:
                    self.deliver(queue, now)
        return sum(counted) if counted else None

    def deliver(self, queue: str, now: float, limit: int = 100) -> int:
        """Apply the first `limit` entries of the queue's outbox (a Redis Cluster's: lib.lua, post)
        each on the slot it is for (lua/apply.lua), and remove each once applied; returns how
        many changed something. Applying an entry twice changes nothing: a promoter that dies
        between the two steps, or two promoters at once, run no job twice. An entry that is no
        outbox entry (another tool's) is removed unapplied."""
        outbox = self.layout.outbox(queue)
        changed = 0
        for raw in cast("list[bytes]", self.connection.lrange(outbox, 0, limit - 1)):
            target = _entry_target(raw)
            if target and target[0] == "batch":
                # before the entry leaves the outbox: a promoter that dies in between applies it
                # again, which changes nothing and lists the batch's due callbacks again
                applied, due = self._run("apply_batch", [raw, now], self._batch_keys(target[1]))
                changed += int(applied)
                drive(self._listing_due(target[1], int(due), now), self._execute)
            elif target:
                p = self._keys(target[1])
                names = (p.job, p.queue, p.scheduled, p.deferred, p.canceled, p.queues, p.unique, p.slots, *p.ended)
                changed += int(self._run("apply", [raw, now, rq_time(now), _WAKE], names))
            self.connection.lrem(outbox, 1, raw)  # type: ignore[arg-type]  # the bytes read, exactly
        return changed

    def sweep(
        self, own_workers: list[str], queues: list[str], now: float, *, crash_limit: int, batch: int = 1000
    ) -> tuple[int, int, int, int]:
        """Recover lost workers' jobs and delete ended jobs past their ttl; returns (lost workers,
        requeued, buried, deleted). On a cluster, one queue's (`queues`: that one)."""
        self._one_queue(queues)
        home = queues[0] if self.layout.cluster else ""
        p = self._keys(home)
        gone = self._gone_workers(home, own_workers) if self.layout.cluster else []
        statuses = ("finished", "failed", "canceled")
        registries = [self.layout.ended(status, queue) for queue in queues for status in statuses]
        lost, requeued, buried, deleted = self._run(
            "sweep",
            [now, rq_time(now), crash_limit, batch, _WAKE, len(own_workers), *own_workers, *queues],
            (p.active_workers, p.worker, p.active, *p.recover, *registries),
        )
        if gone:  # RQ's set of workers is in no queue's slot: the script leaves it
            self.connection.srem(keys.WORKERS, *gone)
        return int(lost), int(requeued), int(buried), int(deleted)

    def _gone_workers(self, queue: str, own_workers: list[str]) -> list[str]:
        """On a cluster, the hashes (in RQ's set of workers) of the queue's workers whose lease
        lapsed, which the sweep recovers (a worker writes its hash before it joins the queue's set
        of active workers, in the same slot: one registering is never taken for one gone)."""
        members = cast("set[bytes]", self.connection.smembers(self.layout.active_workers(queue)))
        names = [name.decode(errors="replace") for name in members]
        names = [name for name in names if name not in own_workers]
        with self.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(self.layout.worker(name, queue))
            found = pipe.execute()
        return [self.layout.worker(name, queue) for name, exists in zip(names, found) if not exists]

    def enqueue_now(self, job_id: str, now: float, queue: str = "") -> bool:
        """Queue a scheduled job ahead of its time; False if it is not scheduled. `queue`: the
        job's, on a cluster."""
        p = self._keys(queue)
        names = (p.job, p.queue, p.scheduled, p.queues)
        return bool(self._run("enqueue_now", [job_id, rq_time(now), _WAKE], names))

    def requeue_dead(self, job_ids: list[str], now: float, queue: str = "") -> list[str]:
        """Requeue the dead jobs among `job_ids` (and the dependents their deaths canceled), in
        one call; returns the ids requeued (a job no longer dead is left alone). `queue`: the
        jobs', on a cluster."""
        p = self._keys(queue)
        names = (p.job, p.queue, p.failed, p.canceled, p.deferred, p.queues, p.unique, p.batch, p.outbox)
        return [job_id.decode() for job_id in self._run("requeue_dead", [rq_time(now), _WAKE, *job_ids], names)]

    def cancel(self, job_id: str, now: float, reason: str, queue: str = "") -> str:
        """Cancel a queued, scheduled or deferred job and, as for a dead parent, its deferred
        dependents; ask the worker of a started job to stop it. Returns the RQ status the job had
        ('' if there is no such job). `queue`: the job's, on a cluster."""
        p = self._keys(queue)
        names = (
            p.job,
            p.queue,
            p.scheduled,
            p.deferred,
            p.canceled,
            p.queues,
            p.unique,
            p.slots,
            p.workers_of_queue,
            p.worker,
            p.active,
            *p.ended,
        )
        status: bytes = self._run("cancel", [job_id, now, rq_time(now), reason, _WAKE, _COMMANDS], names)
        return status.decode(errors="replace")  # a status another tool wrote may be any bytes

    def seal_batch(self, batch_id: str, now: float) -> bool:
        """Seal a batch (lua/seal_batch.lua): it completes once nothing of it is pending, at once if
        nothing is. False: there is no such batch."""
        return bool(drive(self.sealing(batch_id, now), self._execute))

    def join_batch(self, batch_id: str, job_ids: Sequence[str], now: float, *, leave: bool = False) -> int:
        """_Scripts.joining, run."""
        return int(drive(self.joining(batch_id, job_ids, now, leave=leave), self._execute))

    def purge(self, queue: str, registry: str, ids: list[str], cutoff: float, *, dry_run: bool) -> int:
        """Delete the jobs among `ids` of a registry ('finished', 'failed', 'canceled') that
        ended at or before `cutoff`; returns how many (would be) deleted."""
        p = self._keys(queue)
        names = (self.layout.ended(registry, queue), p.job, p.results)
        return int(self._run("purge", [registry, cutoff, "1" if dry_run else "0", *ids], names))


def _entry_target(raw: bytes) -> tuple[str, str] | None:
    """The slot an outbox entry is for: ('batch', the batch) for a batch's entry, else ('queue', the
    parent's queue for a 'link', the job's for a 'settle'); None for what is no entry."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    kind = "batch" if entry.get("kind") == "batch" else "queue"
    target = entry.get({"link": "parent_queue", "batch": "batch"}.get(str(entry.get("kind")), "queue"))
    return (kind, target) if isinstance(target, str) and target else None
