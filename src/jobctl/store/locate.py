"""Which queue a job is on, for a caller that has its id alone (`jobctl show <id>`, cancel,
`jobctl.get(id)`), on a Redis Cluster: there a job's keys carry its queue's hash tag
(keys.Layout), so its queue is found first, by one pipelined EXISTS per known queue. On one
Redis a job's keys need no queue. No index of ids to keep consistent.

The known queues are RQ's set of them (producers and workers add to it) and the configuration's,
remembered per client (remember_queues): a queue that set does not name (another tool rewrote
it, or no job was enqueued there since) is still looked on, as every reader on one Redis would."""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from . import keys
from .connection import read_one

if TYPE_CHECKING:
    import redis.asyncio


_CONFIGURED: weakref.WeakKeyDictionary[object, frozenset[str]] = weakref.WeakKeyDictionary()


def remember_queues(connection: object, queues: Iterable[str]) -> None:
    """The configuration's queues, looked on for this client (sync or asyncio) besides RQ's set."""
    _CONFIGURED[connection] = frozenset(queues)


def _queue_names(connection: object, members: Any, also: Collection[str]) -> list[str]:
    layout = keys.layout_of(connection)
    # a set, or nothing: RQ's set rewritten as another type reads as an error reply
    found = (
        {layout.queue_named(member.decode(errors="replace")) for member in members}
        if isinstance(members, set)
        else set()
    )
    return sorted({name for name in found if name} | set(also) | _CONFIGURED.get(connection, frozenset()))


def known_queues(connection: redis.Redis, also: Collection[str] = ()) -> list[str]:
    """The queues in RQ's set of known queues (which producers and workers write), the
    configuration's remembered for this client, and `also`, sorted."""
    return _queue_names(connection, read_one(connection, lambda pipe: pipe.smembers(keys.QUEUES)), also)


def _pairs(ids: Sequence[str], queues: list[str]) -> list[tuple[str, str]]:
    return [(job_id, queue) for job_id in dict.fromkeys(ids) for queue in queues]


def _where(pairs: list[tuple[str, str]], found: list[Any]) -> dict[str, str]:
    where: dict[str, str] = {}
    for (job_id, queue), exists in zip(pairs, found):
        if isinstance(exists, int) and exists:  # an error reply is no record
            where.setdefault(job_id, queue)
    return where


def locate(connection: redis.Redis, ids: Sequence[str]) -> dict[str, str]:
    """The queue of each job of `ids` whose record exists, on a cluster, among the known queues;
    on one Redis, '' for every id (what keys.Layout takes there)."""
    layout = keys.layout_of(connection)
    if not layout.cluster:
        return dict.fromkeys(ids, "")
    pairs = _pairs(ids, known_queues(connection))
    with connection.pipeline(transaction=False) as pipe:
        for job_id, queue in pairs:
            pipe.exists(layout.job(job_id, queue))
        return _where(pairs, pipe.execute())


async def alocate(connection: redis.asyncio.Redis, ids: Sequence[str]) -> dict[str, str]:
    """locate() with an asyncio client."""
    layout = keys.layout_of(connection)
    if not layout.cluster:
        return dict.fromkeys(ids, "")
    async with connection.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.QUEUES)
        (members,) = await pipe.execute(raise_on_error=False)
    pairs = _pairs(ids, _queue_names(connection, members, ()))
    async with connection.pipeline(transaction=False) as pipe:
        for job_id, queue in pairs:
            pipe.exists(layout.job(job_id, queue))
        return _where(pairs, await pipe.execute(raise_on_error=False))
