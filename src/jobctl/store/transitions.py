"""Job state transitions, each one Lua script run atomically in Redis (see `lua/`).

A job moves queued -> started -> finished | scheduled (retry) | dead, or is deferred, canceled,
recovered after a crash, promoted when its time comes. Doing each move in one script means a
job is never in two places or none, whichever process dies at whichever moment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Required, TypedDict, Unpack

import redis

from ..errors import LeaseLost
from . import keys
from .jobdata import rq_time

if TYPE_CHECKING:
    import redis.asyncio

# A job's row, as the scripts reply it (job_row in lua/lib.lua): [id, queue, attempt (int), data,
# timeout (text), max_retries, created_at, rq (RQ's options: a list, or b'')], bytes where no type
# is given; read by Worker._job_from_row.
Row = list[Any]


def _checked(reply: Any) -> Any:
    if reply == b"fenced":
        raise LeaseLost()
    return reply


_DEFINITION = re.compile(r"^local (?:function )?(\w+)", re.MULTILINE)


def _lua_keys() -> str:
    """keys.LUA as Lua definitions: `local function job_key(x) return 'rq:job:' .. x end`, ..."""
    lines = []
    for name, value in keys.LUA.items():
        if callable(value):
            before, after = value("\0").split("\0")
            body = " .. ".join(part for part in (_lua_string(before), "x", _lua_string(after)) if part)
            lines.append(f"local function {name}(x) return {body} end\n")
        else:
            lines.append(f"local {name} = {_lua_string(value) if isinstance(value, str) else value}\n")
    return "".join(lines)


def _lua_string(text: str) -> str:
    assert re.fullmatch(r"[\w:.-]*", text), text  # key names need no escaping
    return f"'{text}'" if text else ""


_WORD = re.compile(r"\w+")
_COMMENT = re.compile(r"--[^\n]*")


def _words(lua: str) -> frozenset[str]:
    """The names Lua code uses (comments left out: prose names definitions it does not call)."""
    return frozenset(_WORD.findall(_COMMENT.sub("", lua)))


@cache
def _lib() -> list[tuple[str, str, frozenset[str]]]:
    """keys.LUA and lua/lib.lua cut into their top-level definitions: (name, text with the
    comments above it, the words in it)."""
    lib = _lua_keys() + _text("lib")
    lines = lib.splitlines(keepends=True)
    defined = [(i, found.group(1)) for i, line in enumerate(lines) if (found := _DEFINITION.match(line))]
    starts = [i for i, _ in defined]
    cuts = []
    for start in starts:
        while start > 0 and lines[start - 1].startswith("--") and start - 1 not in starts:
            start -= 1
        cuts.append(start)
    chunks = ["".join(lines[a:b]) for a, b in zip(cuts, [*cuts[1:], len(lines)])]
    return [(name, chunk, _words(chunk)) for (_, name), chunk in zip(defined, chunks)]


@cache
def _source(name: str) -> str:
    """The script, for EVALSHA, with the part of lib.lua it uses: each call of a script runs its
    whole text, so a script does not pay for defining what it never calls (issue 12)."""
    body = _text(name)
    lib = _lib()
    uses = {definition: words for definition, _, words in lib}
    needed: set[str] = set()
    pending = set(_words(body) & uses.keys())
    while pending:  # what the included definitions use is included too
        definition = pending.pop()
        needed.add(definition)
        pending |= (uses[definition] & uses.keys()) - needed
    return "".join(chunk for definition, chunk, _ in lib if definition in needed) + "\n" + body


@cache
def _text(name: str) -> str:
    """lua/<name>.lua as shipped."""
    return (resources.files("jobctl.store") / "lua" / f"{name}.lua").read_text()


@cache
def _script_names() -> list[str]:
    return sorted(
        script.name.removesuffix(".lua")
        for script in (resources.files("jobctl.store") / "lua").iterdir()
        if script.name.endswith(".lua") and script.name != "lib.lua"
    )


@cache
def _version() -> str:
    """The scripts' version, a hash of what the library is made of: a command line process, which
    calls a script or two, does not build the whole library to know its functions' names."""
    made_of = _lua_keys() + _text("lib") + "".join(_text(name) for name in _script_names())
    return hashlib.sha1(made_of.encode()).hexdigest()[:12]


# Scripts that only read: as functions, Redis runs them when it is out of memory, as it does such
# a script by EVALSHA (a function that may write is refused then).
_NO_WRITES = frozenset({"overdue"})


def _flags(script: str) -> str:
    return "'no-writes'" if script in _NO_WRITES else ""


def _library() -> str:
    """Every script as a function of one Redis library (Redis 7).

    A script run by EVALSHA defines again, on every call, each Lua function it uses; a library's
    definitions are made once, when it is loaded (issue 12: 13 % of Redis's instructions per job,
    counted with callgrind). The functions are named `jobctl_<version>_<script>`, so that
    processes of two jobctl versions on one Redis (a rolling deploy) each call their own."""
    definitions = "".join(chunk for _, chunk, _ in _lib())
    functions = "".join(
        f"redis.register_function{{function_name='{_function(name)}', flags={{{_flags(name)}}}, "
        f"callback=function(KEYS, ARGV)\n{_text(name)}\nend}}\n"
        for name in _script_names()
    )
    return f"#!lua name=jobctl_{_version()}\n{definitions}\n{functions}"


@cache
def _function(script: str) -> str:
    return f"jobctl_{_version()}_{script}"


@cache
def _sha(script: str) -> str:
    """The SHA1 EVALSHA names the script's text by."""
    return hashlib.sha1(_source(script).encode()).hexdigest()


def preload() -> None:
    """Build every script's text now: a process that forks workers does it once for all of them
    (issue 12: each worker built them again, tens of milliseconds per recycled worker)."""
    _version()
    for name in _script_names():
        _source(name)


def _undefined(exc: redis.ResponseError) -> bool:
    """The error says the script or function called is not defined on the server (never loaded,
    or Redis restarted), or that the server has no functions (Redis 6): nothing ran."""
    text = str(exc).lower()  # redis-py leaves out the "ERR " in front
    return isinstance(exc, redis.exceptions.NoScriptError) or text.startswith(("function not found", "unknown command"))


@dataclass
class GoOn:
    """How an outcome script goes on after recording a job (go_on in lua/lib.lua)."""

    queues: list[str]  # the queues to take the next job from; none: the worker stops after this job
    limits: dict[str, str] = field(default_factory=dict)  # the worker's rate and concurrency limits (limits.py)
    start: tuple[str, str] | None = None  # (id, queue) of the reserved job the worker has just started
    reserve: bool = False  # also reserve one more job, to start without waiting when this one ends

    def named(self) -> dict[str, Any]:
        named: dict[str, Any] = {"queues": self.queues, "limits": self.limits, "reserve": self.reserve}
        if self.start:
            named["start"], named["start_queue"] = self.start
        return named


class Next(NamedTuple):
    """An outcome script's reply (go_on in lua/lib.lua)."""

    started: int | None  # the attempt of the reserved job it started; None: that job was canceled or deleted
    row: Row | None  # the job it started, when no reserved one was given
    reserved: Row | None  # the job it reserved

    @classmethod
    def of(cls, reply: list[Any]) -> Next:
        started, row, reserved = _checked(reply)
        return cls(int(started) if started else None, row or None, reserved or None)


class _Wire(Protocol):
    """What _send does with a connection of its own: a redis.connection.Connection, whose methods
    redis-py leaves unannotated."""

    def send_command(self, *args: Any) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


class _AsyncWire(Protocol):
    """_Wire of redis-py's asyncio client."""

    async def send_command(self, *args: Any) -> None: ...

    async def read_response(self) -> Any: ...

    async def disconnect(self) -> None: ...


Command = tuple[Any, ...]  # a Redis command and its arguments, as execute_command takes them
# A script call as a dialogue with Redis (sans I/O): it yields commands, is sent their replies (or
# thrown their error replies) and returns the script's reply. Transitions runs it with redis-py's
# blocking client, AsyncTransitions with its asyncio one: one way to call a script for both.
Dialogue = Generator[Command, Any, Any]


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

    def _calls(self, name: str, args: list[Any], keys: Sequence[str] = ()) -> Dialogue:
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
        return self._calls("enqueue_many", args, (keys.queue(queue), keys.ENQUEUE_TEMPLATE))

    def send_enqueue_many(self, queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> Send:
        """enqueue_many's call, to send without waiting; received_enqueue_many reads its reply."""
        args = enqueue_many_args(queue, now, fields, batch, max_size)
        return Send((*self._call("enqueue_many", (keys.queue(queue), keys.ENQUEUE_TEMPLATE)), *args))

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


Reply = tuple[Any, "redis.ResponseError | None"]  # a command's reply, or its error reply


def _advance(dialogue: Pipelined, reply: Reply) -> tuple[bool, Any]:
    """Hand the dialogue a reply: (False, the next command) or (True, the script's reply)."""
    value, error = reply
    try:
        return False, dialogue.send(value) if error is None else dialogue.throw(error)
    except StopIteration as done:
        return True, done.value


def drive(dialogue: Dialogue, execute: Callable[..., Any]) -> Any:
    """Run a dialogue with a blocking client's execute_command: its reply."""
    done, value = _advance(dialogue, (None, None))
    while not done:
        try:
            reply: Reply = (execute(*value), None)
        except redis.ResponseError as exc:
            reply = (None, exc)
        done, value = _advance(dialogue, reply)
    return value


async def adrive(dialogue: Dialogue, execute: Callable[..., Awaitable[Any]]) -> Any:
    """drive() with an asyncio client's execute_command."""
    done, value = _advance(dialogue, (None, None))
    while not done:
        try:
            reply: Reply = (await execute(*value), None)
        except redis.ResponseError as exc:
            reply = (None, exc)
        done, value = _advance(dialogue, reply)
    return value


class Send(NamedTuple):
    """A command a Pipelined dialogue sends without waiting for its reply: it goes on meanwhile
    (builds the next batch while Redis stores this one) and reads the reply by yielding RECEIVE."""

    command: Command


class Receive:
    """What a Pipelined dialogue yields to read the reply of the command it sent (RECEIVE)."""


RECEIVE = Receive()
# A dialogue that may also send a command without waiting (Send) and read its reply later
# (RECEIVE): drive_on() and adrive_on() run it, on one connection of their own.
Pipelined = Generator[Command | Send | Receive, Any, Any]


def drive_on(dialogue: Pipelined, client: redis.Redis) -> Any:
    """Run a Pipelined dialogue on a connection of `client`'s pool, taken for the whole of it."""
    pool = client.connection_pool
    taken = pool.get_connection()
    connection: _Wire = taken
    try:
        done, value = _advance(dialogue, (None, None))
        while not done:
            try:
                if isinstance(value, Send):
                    connection.send_command(*value.command)
                    reply: Reply = (None, None)
                else:
                    if not isinstance(value, Receive):
                        connection.send_command(*value)
                    reply = (connection.read_response(), None)
            except redis.ResponseError as exc:
                reply = (None, exc)
            done, value = _advance(dialogue, reply)
        return value
    except BaseException:
        connection.disconnect()  # a reply may be left unread
        raise
    finally:
        pool.release(taken)


async def adrive_on(dialogue: Pipelined, client: redis.asyncio.Redis) -> Any:
    """drive_on() with an asyncio client."""
    pool = client.connection_pool
    taken = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    connection: _AsyncWire = taken
    try:
        done, value = _advance(dialogue, (None, None))
        while not done:
            try:
                if isinstance(value, Send):
                    await connection.send_command(*value.command)
                    reply: Reply = (None, None)
                else:
                    if not isinstance(value, Receive):
                        await connection.send_command(*value)
                    reply = (await connection.read_response(), None)
            except redis.ResponseError as exc:
                reply = (None, exc)
            done, value = _advance(dialogue, reply)
        return value
    except BaseException:
        await connection.disconnect()  # a reply may be left unread
        raise
    finally:
        await pool.release(taken)


class EnqueueNamed(TypedDict, total=False):
    """lua/enqueue.lua's arguments beside the job's id, queue and fields (see Transitions.enqueue)."""

    now: Required[float]
    run_at: float
    unique_claim: str
    parents: Sequence[str]
    run_claim: tuple[str, str, int] | None
    unique_ttl: float
    max_size: int


def pack_fields(fields: Mapping[str, Any]) -> bytes:
    """Record fields as lua/enqueue.lua's ARGV[9]: a JSON array of strings name, value, ..., each
    value's bytes as redis-py would send them (a number as its repr, text in UTF-8): raw_json."""
    return raw_json([_bytes(item) for pair in fields.items() for item in pair])


def raw_json(items: list[bytes]) -> bytes:
    """A JSON array of byte strings for Lua's cjson, each string's bytes standing in the text as
    they are but for the characters JSON escapes (quote, backslash, control characters): cjson
    takes bytes above 127 as they are, so that a pickle or a compressed payload travels too."""
    return json.dumps([item.decode("latin-1") for item in items], ensure_ascii=False).encode("latin-1")


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a record field cannot be {type(value).__name__}: {value!r}")


class EnqueueShared(NamedTuple):
    """What lua/enqueue.lua is given alike for every job of one kind, queue and options (its
    ARGV[8] to ARGV[12]), built once (producer.Template) rather than for each job."""

    queue: str
    queue_key: str
    fields: bytes  # ARGV[9] (pack_fields): the record's fields other than the call's own
    argv: tuple[bytes, ...]  # ARGV[8] to ARGV[12]

    @classmethod
    def of(
        cls,
        queue: str,
        fields: Mapping[str, Any],
        *,
        parents: Sequence[str] = (),
        unique_ttl: float = 0,
        max_size: int = 0,
    ) -> EnqueueShared:
        packed = pack_fields(fields)
        argv = (
            queue.encode(),
            packed,
            _bytes(max_size or 0),
            _bytes(unique_ttl or 0),
            json.dumps(list(parents)).encode() if parents else b"",
        )
        return cls(queue, keys.queue(queue), packed, argv)


class EnqueueCall(NamedTuple):
    """One call of lua/enqueue.lua: its KEYS and ARGV (see its header)."""

    keys: tuple[str, str]
    args: list[Any]

    @classmethod
    def of(
        cls,
        shared: EnqueueShared,
        job_id: str,
        now: float,
        data: bytes,
        description: str,
        *,
        run_at: float = 0,
        unique_claim: str = "",
        run_claim: tuple[str, str, int] | None = None,
    ) -> EnqueueCall:
        args = [job_id, now, rq_time(now), run_at or 0, data, description, unique_claim, *shared.argv]
        if run_claim:
            args += run_claim
        return cls((keys.job(job_id), shared.queue_key), args)


def enqueue_reply(reply: list[bytes]) -> tuple[str, str, str]:
    outcome, ident, state = reply
    return outcome.decode(), ident.decode(), state.decode()


def _generic_call(job_id: str, queue: str, fields: Mapping[str, Any], **given: Unpack[EnqueueNamed]) -> EnqueueCall:
    """A job given as its whole record (jobdata.new_job_fields) as lua/enqueue.lua takes it."""
    shared = {name: value for name, value in fields.items() if name not in ("data", "description")}
    return EnqueueCall.of(
        EnqueueShared.of(
            queue,
            shared,
            parents=given.get("parents", ()),
            unique_ttl=given.get("unique_ttl", 0),
            max_size=given.get("max_size", 0),
        ),
        job_id,
        given["now"],
        fields.get("data", b""),
        fields.get("description", ""),
        run_at=given.get("run_at", 0),
        unique_claim=given.get("unique_claim", ""),
        run_claim=given.get("run_claim"),
    )


def enqueue_many_args(queue: str, now: float, fields: bytes, batch: Batch, max_size: int = 0) -> list[Any]:
    """lua/enqueue_many.lua's ARGV (see _Scripts.enqueue_many); `fields` as pack_fields makes them."""
    return [
        queue,
        rq_time(now),
        max_size or 0,
        fields,
        json.dumps(batch.ids),
        json.dumps(batch.descriptions),
        raw_json(batch.payloads),
    ]


class Batch(NamedTuple):
    """New jobs for one call of lua/enqueue_many.lua: their ids, payloads (`data`) and descriptions."""

    ids: list[str]
    payloads: list[bytes]
    descriptions: list[str]


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

    def _run(self, name: str, args: list[Any], keys: Sequence[str] = ()) -> Any:
        return drive(self._calls(name, args, keys), self.connection.execute_command)

    def _send(self, name: str, args: list[Any]) -> Callable[[], Any]:
        """Send a script on a connection of its own without waiting; the function returned reads
        its reply (pipelining: the worker runs its next job meanwhile, issue 12). Only one thread
        may use this. If the reply cannot be read, the function, called again, runs the script
        once more and waits: as for any call, a retry after the script did run finds its job gone
        and raises LeaseLost."""
        if self._own is None:
            self._own = self.connection.connection_pool.get_connection()
        own = self._own
        try:
            own.send_command(*self._call(name), *args)
        except redis.RedisError:
            own.disconnect()
            return lambda: self._run(name, args)
        sent = True

        def reply() -> Any:
            nonlocal sent
            if not sent:
                return self._run(name, args)
            sent = False
            try:
                return own.read_response()
            except redis.ResponseError as exc:
                if not _undefined(exc):
                    raise
                return self._run(name, args)  # nothing ran (Redis restarted): load it and run it
            except redis.RedisError:
                own.disconnect()
                raise

        return reply

    def enqueue(
        self, job_id: str, queue: str, fields: Mapping[str, Any], **named: Unpack[EnqueueNamed]
    ) -> tuple[str, str, str]:
        """Store a job given as its whole record (jobdata.new_job_fields). Returns (outcome, job id,
        state); outcome is 'ok', 'exists' (the id is taken by an active job), 'duplicate' (the
        unique claim is held; the id is the holder's), 'recent' (the claim, held for `unique_ttl`
        seconds, is held; the id is the holder's, the state the seconds it is still held),
        'unknown_parent' (the id is the missing parent's), 'claimed' (`run_claim` = (key, owner,
        ttl) was already held; the id is its holder) or 'full' (the queue holds `max_size` jobs;
        the state is how many)."""
        return self.enqueue_call(_generic_call(job_id, queue, fields, **named))

    def enqueue_call(self, call: EnqueueCall) -> tuple[str, str, str]:
        """enqueue() of a job whose shared part was built once (EnqueueShared): the producer's way."""
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
        named = {
            "worker": worker,
            "token": token,
            "now": now,
            "now_iso": rq_time(now),
            "count": count,
            "queues": queues,
            "limits": limits or {},
        }
        rows: list[Row] = _checked(self._run("fetch", [json.dumps(named)]))
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
        return self._outcome("succeed", job_id, queue, worker, attempt, now, go_on, result_json, wait)

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
        wait: bool = True,
    ) -> Next | Callable[[], Next]:
        """Record a failed attempt: `verdict` 'retry' (at `retry_at`, unix time), 'dead' or
        'canceled' (stopped while running); then go on as `succeed` does."""
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
            verdict=verdict,
            retry_at=retry_at or 0,
            error=error_entry,
            reason=reason,
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
        **named: Any,
    ) -> Next | Callable[[], Next]:
        """Call an outcome script: its arguments by name, then `blob` (the result, or the
        traceback) as is and base64-encoded (RQ's results-stream form)."""
        named.update(id=job_id, queue=queue, worker=worker, attempt=attempt, now=now, now_iso=rq_time(now))
        named.update(go_on.named())
        args = [json.dumps(named), blob, base64.b64encode(blob)]
        if wait:
            return Next.of(self._run(script, args))
        reply = self._send(script, args)
        return lambda: Next.of(reply())

    def go_on(
        self, worker: str, token: str, go_on: GoOn, now: float, *, wait: bool = True
    ) -> Next | Callable[[], Next]:
        """Go on as an outcome script does, without an outcome (lua/go_on.lua: the worker recorded
        it before running the job's hooks). Raises LeaseLost when the worker's lease is gone."""
        named = {"worker": worker, "token": token, "now": now, "now_iso": rq_time(now), **go_on.named()}
        args = [json.dumps(named)]
        if wait:
            return Next.of(self._run("go_on", args))
        reply = self._send("go_on", args)
        return lambda: Next.of(reply())

    def release(self, worker: str, job_id: str, queue: str, now: float) -> bool:
        """Give back a job the worker reserved and did not start (lua/release.lua)."""
        return bool(self._run("release", [worker, job_id, queue, rq_time(now)]))

    def track(self, payload: str) -> None:
        """Flush a worker's job tracking (tracking.Tracker.payload)."""
        self._run("track", [payload])

    def heartbeat(self, worker: str, token: str, now_iso: str, ttl: int, cpu_percent: float, rss: int) -> list[str]:
        """Renew the worker's lease; returns the ids of its in-flight jobs an operator asked to
        stop. Raises LeaseLost when the lease is gone."""
        return [
            job_id.decode()
            for job_id in _checked(self._run("heartbeat", [worker, token, now_iso, ttl, cpu_percent, rss]))
        ]

    def recover(
        self, worker: str, now: float, *, cause: str, crash_limit: int, how: str, culprits: Sequence[str] = ()
    ) -> tuple[int, int]:
        """Requeue (or bury, at crash_limit) the jobs a gone worker held; with `culprits`, only those
        count the crash. Returns (requeued, buried)."""
        requeued, buried = self._run("recover", [worker, now, rq_time(now), cause, crash_limit, how, *culprits])
        return int(requeued), int(buried)

    def overdue(self, workers: list[str], now: float) -> list[tuple[str, str, float]]:
        """(worker, job id, seconds past its deadline) of in-flight jobs past their grace period."""
        flat = self._run("overdue", [now, *workers])
        return [(flat[i].decode(), flat[i + 1].decode(), float(flat[i + 2])) for i in range(0, len(flat), 3)]

    def promote(self, supervisor: str, lease_ms: int, now: float) -> int | None:
        """Queue the due scheduled jobs of every queue; None when another supervisor is the promoter."""
        moved = int(self._run("promote", [supervisor, lease_ms, now, rq_time(now)]))
        return None if moved < 0 else moved

    def sweep(
        self, own_workers: list[str], queues: list[str], now: float, *, crash_limit: int, batch: int = 1000
    ) -> tuple[int, int, int, int]:
        """Recover lost workers' jobs and delete ended jobs past their ttl; returns (lost workers,
        requeued, buried, deleted)."""
        lost, requeued, buried, deleted = self._run(
            "sweep", [now, rq_time(now), crash_limit, batch, len(own_workers), *own_workers, *queues]
        )
        return int(lost), int(requeued), int(buried), int(deleted)

    def enqueue_now(self, job_id: str, now: float) -> bool:
        """Queue a scheduled job ahead of its time; False if it is not scheduled."""
        return bool(self._run("enqueue_now", [job_id, rq_time(now)]))

    def requeue_dead(self, job_ids: list[str], now: float) -> list[str]:
        """Requeue the dead jobs among `job_ids` (and the dependents their deaths canceled), in
        one call; returns the ids requeued (a job no longer dead is left alone)."""
        return [job_id.decode() for job_id in self._run("requeue_dead", [rq_time(now), *job_ids])]

    def cancel(self, job_id: str, now: float, reason: str) -> str:
        """Cancel a queued, scheduled or deferred job and, as for a dead parent, its deferred
        dependents; ask the worker of a started job to stop it. Returns the RQ status the job had
        ('' if there is no such job)."""
        status: bytes = self._run("cancel", [job_id, now, rq_time(now), reason])
        return status.decode(errors="replace")  # a status another tool wrote may be any bytes

    def purge(self, queue: str, registry: str, ids: list[str], cutoff: float, *, dry_run: bool) -> int:
        """Delete the jobs among `ids` of a registry ('finished', 'failed', 'canceled') that
        ended at or before `cutoff`; returns how many (would be) deleted."""
        return int(self._run("purge", [queue, registry, cutoff, "1" if dry_run else "0", *ids]))
