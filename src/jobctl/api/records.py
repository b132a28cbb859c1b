"""Job records, counters and names read from Redis: what every read of the data API builds on.
Ids are resolved here too (a unique prefix of at least MIN_PREFIX characters)."""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from ..errors import UnknownJob, UsageError
from ..store import keys
from ..store.connection import read_one, read_replies
from ..store.jobdata import JobView, number_value, stream_outcome, text_value
from ..store.locate import locate

if TYPE_CHECKING:
    import redis

# each state's key, named by a layout (keys.Layout): a list for queued (LLEN), a sorted set (a
# registry) for the others
STATE_KEYS = {
    "queued": keys.Layout.queue,
    "scheduled": keys.Layout.scheduled,
    "deferred": keys.Layout.deferred,
    "started": keys.Layout.started,
    "finished": keys.Layout.finished,
    "dead": keys.Layout.dead,
    "canceled": keys.Layout.canceled,
}


def counter_value(value: bytes | str | None) -> int:
    """A counter's value: 0 when missing or not a number (written by another tool, or a hand)."""
    return number_value(value, int) or 0


def text_of(value: bytes) -> str:
    """A name or id read from Redis (a key, a member, a field name), shown whatever its bytes."""
    return value.decode(errors="replace")


def jobs(connection: redis.Redis, job_ids: list[str], pickle_queues: Collection[str] = ()) -> list[JobView]:
    """The jobs that still exist, in the order asked. Pickled payloads are decoded only for jobs
    of `pickle_queues` (QueuesConfig.pickle_queues)."""
    layout, where = keys.layout_of(connection), locate(connection, job_ids)
    job_ids = [job_id for job_id in job_ids if job_id in where]
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.JOB_PATHS)
        for job_id in job_ids:
            pipe.hgetall(layout.job(job_id, where[job_id]))
        job_paths, *rows = read_replies(pipe)
    import_paths = {text_of(path): text_of(name) for path, name in job_paths.items()}
    views = []
    for job_id, raw in zip(job_ids, rows):
        if raw and (b"data" in raw or b"status" in raw):  # not a stub a late progress report left
            view = JobView.from_hash(
                job_id, raw, trust_pickle=text_value(raw.get(b"origin")) in pickle_queues, import_paths=import_paths
            )
            if layout.cluster:  # there its queue is the one its keys carry, whatever its origin field says
                view.queue = where[job_id]
            views.append(view)
    return views


MIN_PREFIX = 6  # characters of a job id that `show`, `cancel` ... accept in its place
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,160}")
_SCAN_BATCH = 1000
_AMBIGUOUS_LISTED = 10


def resolve_job_id(connection: redis.Redis, text: str, option: str = "") -> str:
    """The id of the one job whose id is `text` or starts with it (at least MIN_PREFIX
    characters). UnknownJob when none matches; UsageError, listing them, when several do.

    A prefix is looked up with SCAN MATCH rq:job:<prefix>*: no index to keep up to date, and
    Redis walks its keyspace in bounded steps without blocking. `option` (e.g. --depends-on)
    starts the error messages."""
    where = f"{option}: " if option else ""
    if not _PREFIX.fullmatch(text):
        raise UsageError(
            f"{where}job id {text[:60]!r}: expected letters, digits, '_', '-', '.' (and ':' in cron:... ids)"
        )
    layout = keys.layout_of(connection)
    queue = locate(connection, [text]).get(text) if keys.is_job_id(text) else None
    if queue is not None and connection.type(layout.job(text, queue)) == b"hash":
        return text
    if len(text) < MIN_PREFIX:
        raise UnknownJob(f"{where}no job with id {text!r} (an id prefix needs at least {MIN_PREFIX} characters)")
    found: set[str] = set()
    # on a cluster, rq:job:{*}:<prefix>*, on every master (redis-py's cluster client scans them all)
    for key in connection.scan_iter(match=layout.job(text, "*") + "*", count=_SCAN_BATCH):
        ident = text_of(key).removeprefix(keys.job("")).partition("}:")[2 if layout.cluster else 0]
        if keys.is_job_id(ident):  # not rq:job:<id>:dependents and the like
            found.add(ident)
            if len(found) > _AMBIGUOUS_LISTED:
                break
    if not found:
        raise UnknownJob(f"{where}no job with id {text!r}")
    if len(found) > 1:
        listed = sorted(found)[:_AMBIGUOUS_LISTED]
        more = " ..." if len(found) > _AMBIGUOUS_LISTED else ""
        raise UsageError(f"{where}job id prefix {text!r} is ambiguous: it matches {', '.join(listed)}{more}")
    return found.pop()


def job(connection: redis.Redis, job_id: str, pickle_queues: Collection[str] = ()) -> JobView:
    found = jobs(connection, [job_id], pickle_queues)
    if not found:
        raise UnknownJob(f"no job with id {job_id!r} (finished jobs are kept for their queue's result_ttl)")
    view = found[0]
    layout = keys.layout_of(connection)
    queue = view.queue if layout.cluster else ""  # the queue in its keys' names
    if view.state in ("finished", "dead") and view.result is None and view.error is None:
        # an RQ worker's job: its outcome is only in the results stream
        latest = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            read_one(connection, lambda pipe: pipe.xrevrange(layout.results(job_id, queue), count=1)),
        )
        if latest:
            view.result, view.error = stream_outcome(latest[0][1], view.queue in pickle_queues)
    with connection.pipeline(transaction=False) as pipe:
        # two reads, not SUNION: a cluster's client pipelines no command of several keys
        pipe.smembers(layout.dependencies(job_id, queue))
        pipe.smembers(layout.old_dependencies(job_id, queue))
        parents = set().union(*read_replies(pipe))
    view.depends_on = sorted(map(text_of, cast("set[bytes]", parents)))
    view.dependents = sorted(
        map(
            text_of,
            cast("set[bytes]", read_one(connection, lambda pipe: pipe.smembers(layout.dependents(job_id, queue)))),
        )
    )
    return view


LIST_FIELD_BYTES = 16 * 1024  # of each field of a job record a list reads at most
# Run inside Redis: each record's fields, each value cut to ARGV[1] bytes and followed by its full
# length, so that a list of jobs costs the same whether their arguments are 20 bytes or 20 MB.
# A key that is not a hash (another tool's) reads as no record.
_CAPPED_RECORDS = """
local cap = tonumber(ARGV[1])
local records = {}
for i, key in ipairs(KEYS) do
  local record = {}
  if redis.call('TYPE', key).ok == 'hash' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local value = redis.call('HGET', key, field)
      table.insert(record, field)
      table.insert(record, string.sub(value, 1, cap))
      table.insert(record, #value)
    end
  end
  records[i] = record
end
return records
"""
# the start of a payload's JSON, [name, null, [args...], {kwargs}], up to its arguments
_PAYLOAD_HEAD = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*,\s*null\s*,\s*\[')


@dataclass
class ListedJobs:
    """Jobs as a list shows them. A job whose arguments are longer than a list reads has none in
    its view (args and kwargs empty); `previews` has the start of them, as JSON text, by id."""

    views: list[JobView]
    previews: dict[str, str] = field(default_factory=dict)


def _arguments_start(data: bytes) -> tuple[bool, str]:
    """(whether `data`, as read, is a whole payload of at most LIST_FIELD_BYTES once
    decompressed; the start of its arguments as text). Decompresses no more than that."""
    inflate = zlib.decompressobj()
    try:
        text, whole = inflate.decompress(data, LIST_FIELD_BYTES), inflate.eof
    except zlib.error:  # RQ also accepts an uncompressed payload
        text, whole = data[:LIST_FIELD_BYTES], len(data) <= LIST_FIELD_BYTES
    if text[:1] == b"\x80":
        return whole, "(pickled arguments)"
    shown = text.decode(errors="replace")
    head = _PAYLOAD_HEAD.match(shown)
    return whole, shown[head.end() :] if head else shown


def listed_jobs(connection: redis.Redis, job_ids: list[str]) -> ListedJobs:
    """The jobs that still exist, in the order asked, read in bounded memory: at most
    LIST_FIELD_BYTES of each field of each record (a field longer than that reads as missing,
    the arguments as a preview). Pickled payloads are not decoded: a list shows no unpickled value."""
    if not job_ids:
        return ListedJobs([])
    read_capped = connection.register_script(_CAPPED_RECORDS)
    layout, where = keys.layout_of(connection), locate(connection, job_ids)
    by_queue: dict[str, list[str]] = {}  # one call per queue: its slot's, on a cluster
    for job_id in job_ids:
        if job_id in where:
            by_queue.setdefault(where[job_id], []).append(job_id)
    if layout.cluster:  # a cluster's pipeline does not load a script it finds missing: every master gets it first
        connection.script_load(_CAPPED_RECORDS)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.JOB_PATHS)
        for queue, ids in by_queue.items():
            read_capped(keys=[layout.job(job_id, queue) for job_id in ids], args=[LIST_FIELD_BYTES], client=pipe)
        job_paths, *found = read_replies(pipe)
    read = {job_id: record for ids, records in zip(by_queue.values(), found) for job_id, record in zip(ids, records)}
    import_paths = {text_of(path): text_of(name) for path, name in job_paths.items()}
    listed = ListedJobs([])
    for job_id, record in ((job_id, read[job_id]) for job_id in job_ids if job_id in read):
        triples = [record[n : n + 3] for n in range(0, len(record), 3)]
        raw = {name: value for name, value, length in triples if length == len(value)}
        if not (b"data" in raw or b"status" in raw or any(name == b"data" for name, *_ in triples)):
            continue  # no record, or a stub a late progress report left
        data = next((value for name, value, _ in triples if name == b"data"), None)
        whole, preview = _arguments_start(data) if data is not None else (True, "")
        if whole:
            listed.views.append(JobView.from_hash(job_id, raw, import_paths=import_paths))
            continue
        raw.pop(b"data", None)
        view = JobView.from_hash(job_id, raw, import_paths=import_paths)
        view.unreadable = None  # not read, rather than unreadable: the job's own page reads it
        head = _PAYLOAD_HEAD.match(preview) if b"jobctl_job" not in raw else None
        if head:  # enqueued by RQ's API: the name is the payload's
            with contextlib.suppress(ValueError):
                view.job = import_paths.get(json.loads(head.group(1)), json.loads(head.group(1)))
        listed.views.append(view)
        listed.previews[job_id] = preview
    return listed
