"""Job lists: one state of some queues, a page at a time, filtered (the dashboard's lists and its
batch actions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store import keys
from ..store.connection import read_replies
from ..store.jobdata import STATES, JobView
from .records import STATE_KEYS, ListedJobs, listed_jobs, text_of

if TYPE_CHECKING:
    import redis

PAGE_SIZE = 50
FILTER_WINDOW = 1000  # registry entries a filtered page looks through at most: a page stays fast
# newest first where a registry's score grows with the end time; soonest first where it is a due time
_NEWEST_FIRST = {"finished", "dead", "canceled"}


@dataclass
class JobFilter:
    """What a job list is narrowed to: a job name, and text found in the id or the arguments."""

    job: str | None = None
    text: str | None = None

    def __bool__(self) -> bool:
        return bool(self.job or self.text)

    def matches(self, view: JobView, preview: str | None = None) -> bool:
        """`preview`: the start of the arguments of a job whose view has none (ListedJobs)."""
        if self.job and view.job != self.job:
            return False
        if self.text:
            needle = self.text.lower()
            arguments = preview if preview is not None else f"{json.dumps(view.args)} {json.dumps(view.kwargs)}"
            return needle in f"{view.id} {arguments}".lower()
        return True

    def select(self, listed: ListedJobs) -> list[JobView]:
        return [view for view in listed.views if self.matches(view, listed.previews.get(view.id))]


@dataclass
class JobPage:
    state: str
    queues: list[str]
    jobs: list[JobView]
    total: int  # entries of the state in those queues (expired records included)
    start: int  # position of the first entry looked at
    next_start: int | None  # where the next page starts; None: this is the last
    scanned: int  # entries looked at; with a filter at most FILTER_WINDOW
    previews: dict[str, str] = field(default_factory=dict)  # see ListedJobs


def _state_length(pipe: redis.client.Pipeline, state: str, queue: str, layout: keys.Layout) -> None:
    if state == "queued":
        pipe.llen(layout.queue(queue))
    else:
        pipe.zcard(STATE_KEYS[state](layout, queue))


def _state_range(
    pipe: redis.client.Pipeline, state: str, queue: str, first: int, last: int, layout: keys.Layout
) -> None:
    if state == "queued":
        pipe.lrange(layout.queue(queue), first, last)
    elif state in _NEWEST_FIRST:
        pipe.zrevrange(STATE_KEYS[state](layout, queue), first, last)
    else:
        pipe.zrange(STATE_KEYS[state](layout, queue), first, last)


def _state_lengths(connection: redis.Redis, state: str, queues: list[str]) -> list[int]:
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            _state_length(pipe, state, queue, keys.layout_of(connection))
        return [int(n) for n in read_replies(pipe)]


def _ids_at(
    connection: redis.Redis, state: str, queues: list[str], lengths: list[int], start: int, count: int
) -> list[str]:
    """The ids at positions [start, start + count) of the queues' `state` entries laid end to end
    (queues in the order given): one LRANGE/ZRANGE per queue touched, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        offset = 0
        for queue, length in zip(queues, lengths):
            first, last = max(start - offset, 0), min(start + count - offset, length) - 1
            if first <= last:
                _state_range(pipe, state, queue, first, last, keys.layout_of(connection))
            offset += length
        ranges = read_replies(pipe)
    # the started registry's members are "<id>:<attempt>"
    ids = [text_of(m) for members in ranges for m in members]
    return [i.rsplit(":", 1)[0] for i in ids] if state == "started" else ids


def job_page(
    connection: redis.Redis,
    state: str,
    queues: list[str],
    *,
    start: int = 0,
    size: int = PAGE_SIZE,
    where: JobFilter | None = None,
) -> JobPage:
    """A page of the `state` jobs of `queues`, from position `start`. Unfiltered, it costs one
    range read and one pipelined read of `size` records, however long the registries are. With a
    filter it looks through at most FILTER_WINDOW entries from `start` for `size` matches."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    lengths = _state_lengths(connection, state, queues)
    total = sum(lengths)
    start = max(0, min(start, total))
    if not where:
        listed = listed_jobs(connection, _ids_at(connection, state, queues, lengths, start, size))
        end = min(start + size, total)
        return JobPage(
            state, queues, listed.views, total, start, end if end < total else None, end - start, listed.previews
        )
    ids = _ids_at(connection, state, queues, lengths, start, FILTER_WINDOW)
    found: list[JobView] = []
    previews: dict[str, str] = {}
    scanned = 0
    for chunk_start in range(0, len(ids), size):
        chunk = ids[chunk_start : chunk_start + size]
        listed = listed_jobs(connection, chunk)
        found.extend(where.select(listed))
        previews.update(listed.previews)
        scanned = chunk_start + len(chunk)
        if len(found) >= size:
            break
    end = start + scanned
    shown = {view.id for view in found}
    previews = {job_id: text for job_id, text in previews.items() if job_id in shown}
    return JobPage(state, queues, found, total, start, end if end < total else None, scanned, previews)


def matching_job_batches(
    connection: redis.Redis,
    state: str,
    queue: str,
    where: JobFilter,
    batch: int = FILTER_WINDOW,
) -> Iterator[list[JobView]]:
    """Every `state` job of `queue` that matches, in batches, walking from the end of the
    registry to its start: acting on a batch (requeue, delete) removes entries at or after the
    current position only, so no entry is skipped."""
    end = _state_lengths(connection, state, [queue])[0]
    while end > 0:
        start = max(0, end - batch)
        yield where.select(listed_jobs(connection, _ids_at(connection, state, [queue], [end], start, end - start)))
        end = start
