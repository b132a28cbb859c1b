"""A running job's progress (`jobctl.progress()`), written to its record: jobctl's fields, and
RQ's meta["progress"], where RQ's readers look for it."""

from __future__ import annotations

import json

import redis
from redis.typing import EncodableT, FieldT

from . import keys


def write(connection: redis.Redis, job_id: str, percent: float, message: str | None, queue: str = "") -> None:
    """Record the job's progress. Progress is advisory: a Redis error is dropped, never the job's.
    `queue`: the job's (its keys' slot on a cluster)."""
    key = keys.layout_of(connection).job(job_id, queue)
    fields: dict[FieldT, EncodableT] = {"jobctl_progress": percent, "jobctl_progress_message": message or ""}
    try:
        # the connection does not decode replies: bytes, which redis-py's types do not know
        raw_meta = connection.hget(key, "meta")
        if meta := meta_with_progress(raw_meta, percent):  # type: ignore[arg-type]
            fields["meta"] = meta
        connection.hset(key, mapping=fields)
    except redis.RedisError:
        pass


def meta_with_progress(raw_meta: bytes | None, percent: float) -> str | None:
    """The job's meta with meta["progress"] set; None when meta is not a JSON object (jobctl and
    RQ's JSONSerializer store JSON)."""
    try:
        meta = json.loads(raw_meta) if raw_meta else {}
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    meta["progress"] = percent
    return json.dumps(meta)
