"""A handle on one job, for the application that enqueued it (or found it with jobctl.get).

`result()` waits on RQ's results stream of the job (`rq:results:<id>`), to which lua/succeed.lua
and lua/fail.lua (and RQ's own workers) add an entry whenever an attempt ends: a blocking XREAD
returns the moment the job ends, with no polling. Cancels of a job that is not running and
deletions write no entry, so the wait looks at the job again every RECHECK seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar, cast

from ..errors import JobCanceled, JobFailed, JobNotFound
from ..store.jobdata import JobView, stream_outcome
from ..store.locate import locate
from . import admin

if TYPE_CHECKING:
    from .client import Client

R = TypeVar("R")

RECHECK = 1.0  # seconds a result() waits on the stream before it looks at the job again
ENDED = ("finished", "dead", "canceled")
START = "0-0"  # a stream id before every entry


class Progress(NamedTuple):
    percent: float | None  # None: the job reported none (yet)
    message: str | None


@dataclass(frozen=True)
class _Look:
    """One look at a job: its record (None: there is none) and the id of its stream's last entry."""

    view: JobView | None
    last_entry: str


class Handle(Generic[R]):
    """A job in Redis, as its enqueuer sees it: `R` is the job function's return type."""

    def __init__(self, job_id: str, client: Client, queue: str = ""):
        self.id = job_id
        self.client = client
        self._queue = queue  # the job's queue, which names its keys on a Redis Cluster ('' until known)

    def _keys(self) -> tuple[str, str]:
        """The job's record and results stream; on a cluster its queue is looked up once if the
        handle was made from an id alone (jobctl.get)."""
        layout = self.client.layout
        if layout.cluster and not self._queue:
            self._queue = locate(self.client.connection, [self.id]).get(self.id, "")
            if not self._queue:
                raise JobNotFound(f"no job with id {self.id!r} on any queue of the Redis Cluster")
        return layout.job(self.id, self._queue), layout.results(self.id, self._queue)

    def __repr__(self) -> str:
        return f"<jobctl.Handle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # --- reading ---------------------------------------------------------------------------------

    def status(self) -> str:
        """The job's state: queued, scheduled, deferred, started, finished, dead or canceled.
        Raises JobNotFound when its record is gone (expired after its result_ttl, or deleted)."""
        self.client.refuse_in_event_loop("status", "astatus")
        return self._found(self._look_sync()).state

    async def astatus(self) -> str:
        return self._found(await self._look_async()).state

    def progress(self) -> Progress:
        """What the job last reported with jobctl.progress()."""
        self.client.refuse_in_event_loop("progress", "aprogress")
        view = self._found(self._look_sync())
        return Progress(view.progress, view.progress_message)

    async def aprogress(self) -> Progress:
        view = self._found(await self._look_async())
        return Progress(view.progress, view.progress_message)

    def result(self, timeout: float | None = None) -> R:
        """Wait until the job ends (at most `timeout` seconds; None: for as long as it takes) and
        return its value. Raises JobFailed (it is dead: retries exhausted, or a permanent error),
        JobCanceled, TimeoutError (not ended in time) or JobNotFound."""
        self.client.refuse_in_event_loop("result", "aresult")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.client.translated_errors():
            while True:
                look = self._look_sync()
                if self._ended(look):
                    return self._outcome(look)
                connection = self.client.connection
                connection.xread({self._keys()[1]: look.last_entry}, block=self._block_ms(deadline))

    async def aresult(self, timeout: float | None = None) -> R:
        """result() for asyncio: waits without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.client.translated_errors():
            while True:
                look = await self._look_async()
                if self._ended(look):
                    return self._outcome(look)
                connection = self.client.async_connection()
                await connection.xread({self._keys()[1]: look.last_entry}, block=self._block_ms(deadline))

    # --- acting ----------------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the job (and the deferred jobs that depend on it); a running job is stopped,
        waiting a few seconds for its worker to confirm. True when it is canceled now."""
        self.client.refuse_in_event_loop("cancel", "")
        with self.client.translated_errors():
            cancellation = admin.cancel(self.client.connection, self.id)
        return cancellation.now == "canceled"

    def requeue(self) -> bool:
        """Put the job back on its queue with a fresh retry budget, if it is dead; True if it was."""
        self.client.refuse_in_event_loop("requeue", "")
        with self.client.translated_errors():
            return bool(admin.requeue_dead(self.client.connection, [], [self.id]))

    # --- the looks -------------------------------------------------------------------------------

    def _look_sync(self) -> _Look:
        record, results = self._keys()
        with self.client.translated_errors(), self.client.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(record)
            pipe.xrevrange(results, count=1)
            return self._look(*pipe.execute())

    async def _look_async(self) -> _Look:
        connection = self.client.async_connection()
        record, results = self._keys()
        with self.client.translated_errors():
            async with connection.pipeline(transaction=False) as pipe:
                pipe.hgetall(record)
                pipe.xrevrange(results, count=1)
                return self._look(*await pipe.execute())

    def _look(self, raw: dict[bytes, bytes], latest: list[tuple[bytes, dict[bytes, bytes]]]) -> _Look:
        view = None
        if raw and (b"data" in raw or b"status" in raw):  # not a stub a late progress report left
            trust_pickle = self.client.trusts_pickle(raw.get(b"origin"))
            view = JobView.from_hash(self.id, raw, trust_pickle=trust_pickle)
            if view.state in ("finished", "dead") and view.result is None and view.error is None and latest:
                # a job an RQ worker ran: its outcome is only in the results stream
                view.result, view.error = stream_outcome(latest[0][1], trust_pickle)
        return _Look(view, latest[0][0].decode() if latest else START)

    def _found(self, look: _Look) -> JobView:
        if look.view is None:
            raise JobNotFound(
                f"no job with id {self.id!r}: it expired (ended jobs are kept for their queue's result_ttl "
                "or failure_ttl) or was deleted"
            )
        return look.view

    def _block_ms(self, deadline: float | None) -> int:
        """How long the next XREAD may block: until the deadline, RECHECK at most, and less than
        the client's socket timeout (a longer block would read as Redis not answering);
        TimeoutError once the deadline has passed."""
        longest = min(RECHECK, self.client.socket_timeout / 2)
        if deadline is None:
            return max(1, int(longest * 1000))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"job {self.id} has not ended in time")
        return max(1, int(min(remaining, longest) * 1000))  # 0 would block for ever

    def _ended(self, look: _Look) -> bool:
        return self._found(look).state in ENDED

    def _outcome(self, look: _Look) -> R:
        view = self._found(look)
        if view.state == "finished":
            return cast("R", view.result)
        if view.state == "canceled":
            raise JobCanceled(self.id, view.reason or "canceled")
        line = view.last_error_line or _last_line(view.error) or "failed"
        raise JobFailed.from_line(self.id, line, view.error or "")


def _last_line(traceback: str | None) -> str:
    return traceback.strip().splitlines()[-1] if traceback and traceback.strip() else ""
