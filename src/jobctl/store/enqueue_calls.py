"""The calls of lua/enqueue.lua and lua/enqueue_many.lua: their KEYS and ARGV, built from a
job's shared part once and its own part per job, and enqueue's reply."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from . import keys
from .jobdata import rq_time
from .script_keys import _WAKE, slot_keys
from .scripts import Refusal
from .wire import _bytes, pack_fields, raw_json


class EnqueueShared(NamedTuple):
    """What lua/enqueue.lua is given alike for every job of one kind, queue and options (its
    ARGV[8] to ARGV[14]), built once (producer.Template) rather than for each job."""

    queue: str
    queue_key: str
    fields: bytes  # ARGV[9] (pack_fields): the record's fields other than the call's own
    argv: tuple[bytes, ...]  # ARGV[8] to ARGV[14]
    layout: keys.Layout = keys.PLAIN

    @classmethod
    def of(
        cls,
        queue: str,
        fields: Mapping[str, Any],
        *,
        parents: Sequence[str] = (),
        unique_ttl: float = 0,
        max_size: int = 0,
        batch: str = "",
        layout: keys.Layout = keys.PLAIN,
    ) -> EnqueueShared:
        packed = pack_fields(fields)
        argv = (
            queue.encode(),
            packed,
            _bytes(max_size or 0),
            _bytes(unique_ttl or 0),
            json.dumps(list(parents)).encode() if parents else b"",
            _WAKE.encode(),
            batch.encode(),
        )
        return cls(queue, layout.queue(queue), packed, argv, layout)


@lru_cache(maxsize=256)
def _enqueue_keys(layout: keys.Layout, queue: str) -> tuple[str, ...]:
    """lua/enqueue.lua's KEYS after the job's hash and its queue's list."""
    p = slot_keys(layout, queue)
    return (
        p.job,
        p.results,
        layout.scheduled(queue),
        layout.deferred(queue),
        p.queues,
        p.finished,
        p.failed,
        p.canceled,
        p.unique,
        p.slots,
        *p.ended,
    )


class EnqueueCall(NamedTuple):
    """One call of lua/enqueue.lua: its KEYS and ARGV (see its header)."""

    keys: tuple[str, ...]
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
        queue, layout = shared.queue, shared.layout
        return cls((layout.job(job_id, queue), shared.queue_key, *_enqueue_keys(layout, queue)), args)

    def across(self, remote: Mapping[str, str]) -> EnqueueCall:
        """This call with its parents on other queues (a Redis Cluster's; id -> queue) given as
        [id, queue] in ARGV[12]: the job waits on them through the outbox (lua/lib.lua, post)."""
        args = list(self.args)
        args[11] = json.dumps([[p, remote[p]] if p in remote else p for p in json.loads(args[11])]).encode()
        return self._replace(args=args)


def enqueue_reply(reply: list[bytes]) -> tuple[str, str, str]:
    """(outcome, id, state): outcome 'ok', or the Refusal."""
    outcome, ident, state = (part.decode() for part in reply)
    return outcome if outcome == "ok" else Refusal(outcome), ident, state


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
        _WAKE,
    ]


class Batch(NamedTuple):
    """New jobs for one call of lua/enqueue_many.lua: their ids, payloads (`data`) and descriptions."""

    ids: list[str]
    payloads: list[bytes]
    descriptions: list[str]
