"""Scripts' calls on the wire: a call as a dialogue with Redis (sans I/O) and what runs it on a
blocking or an asyncio client, pipelined (Send, RECEIVE) on a connection of its own; the
commands packed by hand, and the record's fields packed for the scripts' JSON."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import redis
from redis._parsers.encoders import Encoder
from redis.exceptions import AskError, ClusterDownError, SlotNotCoveredError, TryAgainError

from . import keys

if TYPE_CHECKING:
    import redis.asyncio


class _Wire(Protocol):
    """What _send, _execute and drive_on do with a connection of their own: a
    redis.connection.Connection, whose methods redis-py leaves unannotated."""

    encoder: Encoder

    def send_command(self, *args: Any) -> None: ...

    def send_packed_command(self, command: list[bytes]) -> None: ...

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


def _sent_now(reply: Reply, pending: list[Reply], value: Command | Send | Receive) -> Reply:
    """_drive_each's step: a Send's reply is kept for the RECEIVE that reads it."""
    if isinstance(value, Send):
        pending.append(reply)
        return (None, None)
    return reply


def _drive_each(dialogue: Pipelined, execute: Callable[..., Any]) -> Any:
    """Run a Pipelined dialogue on a Redis Cluster's client, which routes each command to the
    master of its slot (it has no one connection to send on): a Send is run at once."""
    pending: list[Reply] = []
    done, value = _advance(dialogue, (None, None))
    while not done:
        if isinstance(value, Receive):
            reply = pending.pop(0)
        else:
            try:
                reply = (execute(*(value.command if isinstance(value, Send) else value)), None)
            except redis.ResponseError as exc:
                reply = (None, exc)
            reply = _sent_now(reply, pending, value)
        done, value = _advance(dialogue, reply)
    return value


async def _adrive_each(dialogue: Pipelined, execute: Callable[..., Awaitable[Any]]) -> Any:
    """_drive_each() with an asyncio client."""
    pending: list[Reply] = []
    done, value = _advance(dialogue, (None, None))
    while not done:
        if isinstance(value, Receive):
            reply = pending.pop(0)
        else:
            try:
                reply = (await execute(*(value.command if isinstance(value, Send) else value)), None)
            except redis.ResponseError as exc:
                reply = (None, exc)
            reply = _sent_now(reply, pending, value)
        done, value = _advance(dialogue, reply)
    return value


def on_cluster(client: redis.Redis) -> Callable[..., Any]:
    """execute_command of a Redis Cluster's client, for the scripts' dialogues: an FCALL goes to
    the master of its first key's slot, found in the client's map of the slots (redis-py before
    8.2 asks a node for an FCALL's keys first, COMMAND GETKEYS: a round trip and Redis's time per
    call), and FUNCTION LOAD to every master (_load_everywhere)."""
    cluster: Any = client  # redis-py's cluster client, unannotated

    def execute(*command: Any) -> Any:
        if command[0] == "FUNCTION LOAD":
            return _load_everywhere(cluster, command[1])
        if command[0] != "FCALL" or not int(command[2]):
            return cluster.execute_command(*command)
        try:
            # on the master's own client, packed as on one Redis: redis-py's cluster client packs
            # each word itself and resolves the command's routing policies on every call
            # (bench/cluster.py: 256 us of worker CPU a job, against 182 with the call sent so)
            return call_packed(cluster.get_redis_connection(cluster.get_node_from_key(command[3])), command)
        except _REROUTED:
            # the master failed, its slot moved or is moving (nothing ran): redis-py's own
            # routing, which refreshes the map of the slots, follows redirections and tries again
            return cluster.execute_command(*command)

    return execute


def call_packed(client: redis.Redis, command: Command) -> Any:
    """A script call (FCALL, EVALSHA) on a connection of `client`'s pool, packed by _packed (its
    command and KEYS once). A connection lost or timed out is dropped, the error raised."""
    pool = client.connection_pool
    connection: _Wire = pool.get_connection()
    try:
        end = 3 + int(command[2])  # the command, the script, the number of keys, the keys
        connection.send_packed_command([_packed(connection.encoder, command[:end], command[end:])])
        return connection.read_response()
    except (redis.ConnectionError, redis.TimeoutError):
        connection.disconnect()
        raise
    finally:
        pool.release(connection)  # type: ignore[arg-type]  # the pool's own Connection


def on_async_cluster(client: redis.asyncio.Redis) -> Callable[..., Awaitable[Any]]:
    """on_cluster() with redis-py's asyncio cluster client."""
    cluster: Any = client

    async def execute(*command: Any) -> Any:
        if command[0] == "FUNCTION LOAD":
            await cluster.initialize()
            for node in cluster.get_primaries():
                await _load_on(cluster.execute_command(*command, target_nodes=node))
            return b"OK"
        if command[0] != "FCALL" or not int(command[2]):
            return await cluster.execute_command(*command)
        try:
            await cluster.initialize()  # it connects on its first command
            node = cluster.get_node_from_key(command[3])
            return await cluster.execute_command(*command, target_nodes=node)
        except _NODE_GONE:
            return await cluster.execute_command(*command)

    return execute


# A call sent to its slot's master failing because that master is gone or no longer serves the slot
_NODE_GONE = (redis.ConnectionError, redis.TimeoutError, SlotNotCoveredError)
# A call on its slot's master that another node must take, or take later: MOVED and ASK
# (MovedError is an AskError), TRYAGAIN, CLUSTERDOWN; redis-py's cluster client handles each
_REROUTED = (*_NODE_GONE, AskError, TryAgainError, ClusterDownError)


def _load_everywhere(cluster: Any, library: str) -> bytes:
    """Load the library on every master: a function found missing on one (a master new after a
    failover without replicas, or a resharding onto a new node; a master whose data was flushed)
    may be missing on others. A master that already has it is fine."""
    for node in cluster.get_primaries():
        try:
            cluster.execute_command("FUNCTION LOAD", library, target_nodes=node)
        except redis.ResponseError as exc:
            if "already exists" not in str(exc):
                raise
    return b"OK"


async def _load_on(call: Awaitable[Any]) -> None:
    """_load_everywhere's step on an asyncio client."""
    try:
        await call
    except redis.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


def drive_on(dialogue: Pipelined, client: redis.Redis) -> Any:
    """Run a Pipelined dialogue on a connection of `client`'s pool, taken for the whole of it."""
    if keys.layout_of(client).cluster:
        return _drive_each(dialogue, on_cluster(client))
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
    if keys.layout_of(client).cluster:
        return await _adrive_each(dialogue, on_async_cluster(client))
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


@lru_cache(maxsize=256)
def _packed_head(encoder: Encoder, command: Command) -> bytes:
    """A command's words in Redis's protocol, without the array's length."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in map(encoder.encode, command))


def _packed(encoder: Encoder, command: Command, args: Sequence[Any]) -> bytes:
    """`command` (a script's call and KEYS, the same for every job of a worker: packed once) and
    `args` in Redis's protocol. redis-py packs a word in about 8,000 instructions, and a call has
    dozens (callgrind). The usual words (text, bytes, whole numbers) are encoded here as
    encoder.encode would (its isinstance chain cost more than the rest of the packing); any
    other goes through it."""
    plain = encoder.encoding in _UTF8 and encoder.encoding_errors == "strict"
    encode: Callable[[Any], bytes] = encoder.encode
    words = []
    for arg in args:
        kind = type(arg)
        if kind is str and plain:
            arg = arg.encode()
        elif kind is int:  # not a bool, which encode refuses
            arg = b"%d" % arg
        elif kind is not bytes:
            arg = encode(arg)
        words.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"*%d\r\n%s%s" % (len(command) + len(args), _packed_head(encoder, command), b"".join(words))


_UTF8 = ("utf-8", "utf8", "UTF-8")  # str.encode()'s own encoding
