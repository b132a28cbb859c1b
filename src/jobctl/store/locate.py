"""Which queue a job is on, for a caller that has its id alone (`jobctl show <id>`, cancel,
`jobctl.get(id)`), on a Redis Cluster: there a job's keys carry its queue's hash tag
(keys.Layout), so its queue is found first, by one pipelined EXISTS per known queue. On one
Redis a job's keys need no queue. No index of ids to keep consistent."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import redis

from . import keys
from .connection import read_one


def known_queues(connection: redis.Redis, also: Collection[str] = ()) -> list[str]:
    """The queues in RQ's set of known queues (which producers and workers write), and `also`
    (the configuration's), sorted."""
    layout = keys.layout_of(connection)
    members = read_one(connection, lambda pipe: pipe.smembers(keys.QUEUES))
    found = {layout.queue_named(member.decode(errors="replace")) for member in members}
    return sorted({name for name in found if name} | set(also))


def locate(connection: redis.Redis, ids: Sequence[str], also: Collection[str] = ()) -> dict[str, str]:
    """The queue of each job of `ids` whose record exists, on a cluster (`also`: queues to look on
    besides the known ones); on one Redis, '' for every id (what keys.Layout takes there)."""
    layout = keys.layout_of(connection)
    if not layout.cluster:
        return dict.fromkeys(ids, "")
    queues = known_queues(connection, also)
    pairs = [(job_id, queue) for job_id in dict.fromkeys(ids) for queue in queues]
    with connection.pipeline(transaction=False) as pipe:
        for job_id, queue in pairs:
            pipe.exists(layout.job(job_id, queue))
        found = pipe.execute()
    where: dict[str, str] = {}
    for (job_id, queue), exists in zip(pairs, found):
        if exists:
            where.setdefault(job_id, queue)
    return where
