"""What a job prints and logs, kept per job and attempt: `jobctl logs` and `show` read it back.

A worker calls `install()` once; it puts a proxy in front of sys.stdout and sys.stderr and a
handler on the root logger. Around each job it opens `capture(connection, job_id, attempt)`.
While a capture is active in the current thread or asyncio task (a ContextVar, so the jobs of
one process in threads or tasks never mix their lines), the job's writes and log records go to
that capture; everywhere else the proxies write straight to the original streams.

A capture keeps the last OUTPUT_LIMIT bytes of an attempt and stores them in Redis from a
background thread at most every FLUSH_INTERVAL seconds, and once more when the attempt ends,
so a chatty job costs one round trip per interval, not one per line. An attempt that printed
nothing and raised nothing stores nothing: a silent job costs no Redis command. Each complete line is
also logged on the worker's own log (event `job.output`, the job id in the line, and a field
of its own in `--log-format json`), and the worker's log records carry the job id they were
logged for.

Threads a job starts itself run in a fresh context: what they print is not captured and goes
to the worker's streams as before.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

import redis

from .. import logs, threads
from . import keys
from .connection import read_replies
from .jobdata import number_value, text_value

OUTPUT_LIMIT = 64 * 1024  # bytes kept per attempt: the tail, where the reason for a failure is
FLUSH_INTERVAL = 0.5
DEFAULT_TTL = 86400  # seconds, when the job record names no ttl

_current: ContextVar[Capture | None] = ContextVar("jobctl_output", default=None)
_echoing: ContextVar[bool] = ContextVar("jobctl_output_echoing", default=False)


class Capture:
    """One attempt's output: buffered here, flushed to keys.Layout.job_output / job_attempt."""

    def __init__(self, connection: redis.Redis, job_id: str, attempt: int, ttl: int, queue: str = ""):
        self.connection, self.job_id, self.attempt, self.ttl = connection, job_id, attempt, ttl
        self.queue = queue  # the job's queue: its slot on a cluster
        self.started = time.time()
        self._stored = False  # the attempt's first flush replaces what an attempt of that number stored before
        self._lock = threading.Lock()  # guards the buffers below
        self._flushing = threading.Lock()  # one flush at a time, so that appends keep their order
        self._pending = bytearray()  # written since the last flush
        self._tail = bytearray()  # at least the last OUTPUT_LIMIT bytes (trimmed now and then)
        self._written = 0  # bytes ever written, so that a follower knows what it missed
        self._line = ""  # the current line, not yet echoed

    def write(self, text: str, stream: str) -> None:
        data = text.encode("utf-8", errors="replace")
        with self._lock:
            self._pending += data
            self._tail += data
            if len(self._tail) > 2 * OUTPUT_LIMIT:
                del self._tail[:-OUTPUT_LIMIT]
            self._written += len(data)
            *lines, self._line = (self._line + text).split("\n")
            if len(self._line) > OUTPUT_LIMIT:  # a line without end (a \r progress bar) is echoed in pieces
                lines.append(self._line)
                self._line = ""
        for line in lines:
            _echo(self.job_id, line, stream)

    def flush(self, **attempt_fields: float | str) -> None:
        """Store what was written since the last flush (and `attempt_fields`) in one round trip."""
        with self._flushing:
            with self._lock:
                if not self._pending and not attempt_fields:
                    return
                fresh, tail, written = bytes(self._pending), bytes(self._tail[-OUTPUT_LIMIT:]), self._written
                self._pending.clear()
            layout, queue = keys.layout_of(self.connection), self.queue  # here: most attempts never flush
            output = layout.job_output(self.job_id, self.attempt, queue)
            attempt = layout.job_attempt(self.job_id, self.attempt, queue)
            with self.connection.pipeline(transaction=True) as pipe:
                if not self._stored:
                    # a dead job requeued counts its attempts again from 1: drop that attempt's output
                    pipe.delete(output, attempt)
                    attempt_fields = {"started": self.started, **attempt_fields}
                if written <= OUTPUT_LIMIT:
                    pipe.append(output, fresh)
                else:  # past the limit: the tail replaces what was stored
                    pipe.set(output, tail)
                # redis-py 8 types the mapping's keys invariantly, refusing str keys (redis-py 5 does not)
                pipe.hset(attempt, mapping={"written": written, **attempt_fields})  # type: ignore[dict-item, unused-ignore]
                pipe.expire(output, self.ttl)
                pipe.expire(attempt, self.ttl)
                pipe.execute()
            self._stored = True

    @property
    def wrote(self) -> bool:
        return self._written > 0

    def end_line(self, stream: str) -> None:
        with self._lock:
            line, self._line = self._line, ""
        if line:
            _echo(self.job_id, line, stream)


def _echo(job_id: str, line: str, stream: str) -> None:
    token = _echoing.set(True)  # what the worker's log handler writes is not the job's output
    try:
        logs.event(logs.get(), "job.output", "[%s] %s", job_id, line, job_id=job_id, stream=stream)
    finally:
        _echoing.reset(token)


def current() -> Capture | None:
    """The capture of the job running in this thread or task, if any."""
    return None if _echoing.get() else _current.get()


@contextlib.contextmanager
def capture(
    connection: redis.Redis, job_id: str, attempt: int, ttl: int = DEFAULT_TTL, queue: str = ""
) -> Iterator[Capture]:
    """Capture the current thread's or task's output for this attempt of the job, kept for `ttl`
    seconds (the job's own). An exception leaving the block has its traceback stored with the
    attempt (`show --all` prints it). `queue`: the job's (its keys' slot on a cluster)."""
    _ensure_flusher()
    active = Capture(connection, job_id, attempt, ttl, queue)
    token = _current.set(active)
    _active.add(active)
    fields: dict[str, float | str] = {}
    try:
        yield active
    except BaseException as exc:
        below = exc.__traceback__.tb_next if exc.__traceback__ else None  # from the job's side of this frame
        fields["traceback"] = "".join(traceback.format_exception(type(exc), exc, below))
        raise
    finally:
        _current.reset(token)
        _active.discard(active)
        active.end_line("stdout")
        if active.wrote or fields:
            with contextlib.suppress(redis.RedisError):  # the job's outcome matters more than its output
                active.flush(ended=time.time(), **fields)


# --- process-wide plumbing: installed once per worker process -------------------------------------


class _StreamProxy:
    """sys.stdout / sys.stderr: to the current job's capture, or to the original stream."""

    def __init__(self, original: TextIO, name: str):
        self._original, self._name = original, name

    def write(self, text: str) -> int:
        active = current()
        if active is None:
            return self._original.write(text)
        active.write(text, self._name)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if current() is None:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _CaptureHandler(logging.Handler):
    """On the root logger: a job's log records become lines of its output."""

    def emit(self, record: logging.LogRecord) -> None:
        active = current()
        if active is not None:
            try:
                active.write(self.format(record) + "\n", "log")
            except Exception:  # noqa: BLE001 - logging must never fail the job
                self.handleError(record)


class _JobIdFilter(logging.Filter):
    """On the worker's own log: records logged while a job runs carry its id."""

    def filter(self, record: logging.LogRecord) -> bool:
        active = _current.get()
        if active is not None:
            fields = getattr(record, logs.FIELDS, {"event": "log"})
            if "job_id" not in fields:
                setattr(record, logs.FIELDS, {**fields, "job_id": active.job_id})
        return True


_active: set[Capture] = set()
_installed = False
_flusher: threading.Thread | None = None
_install_lock = threading.Lock()


def install() -> None:
    """Route job output to captures in this process; idempotent. Call it after logs.setup()."""
    global _installed
    with _install_lock:
        if _installed:
            return
        sys.stdout = _StreamProxy(sys.stdout, "stdout")
        sys.stderr = _StreamProxy(sys.stderr, "stderr")
        root = logging.getLogger()
        handler = _CaptureHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)  # a job's logger.info() lines are part of its output
        logs.get().addFilter(_JobIdFilter())
        _installed = True


def _ensure_flusher() -> None:
    global _flusher
    with _install_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_loop, name="jobctl-output", daemon=True)
            _flusher.start()


def _flush_loop() -> None:
    threads.leave_signals_to_the_main_thread()
    while True:
        time.sleep(FLUSH_INTERVAL)
        for active in list(_active):
            with contextlib.suppress(redis.RedisError):  # the next interval, or the end, tries again
                active.flush()


# --- reading it back: `jobctl logs`, `show` -----------------------------------------------------


@dataclass
class AttemptOutput:
    attempt: int
    text: str  # the last OUTPUT_LIMIT bytes
    written: int  # bytes the attempt wrote in all
    started: float | None
    ended: float | None
    traceback: str | None

    @property
    def dropped(self) -> int:
        """Bytes written before the kept tail."""
        return max(0, self.written - len(self.text.encode("utf-8", errors="replace")))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "dropped": self.dropped}


def read(connection: redis.Redis, job_id: str, attempts: list[int], queue: str = "") -> list[AttemptOutput]:
    """The stored output of these attempts of the job (those that stored any), in order."""
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        for attempt in attempts:
            pipe.get(layout.job_output(job_id, attempt, queue))
            pipe.hgetall(layout.job_attempt(job_id, attempt, queue))
        replies = iter(read_replies(pipe))
    found = []
    for attempt in attempts:
        output, fields = next(replies), next(replies)
        if output is None and not fields:
            continue
        found.append(
            AttemptOutput(
                attempt,
                (output or b"").decode(errors="replace"),
                number_value(fields.get(b"written"), int) or 0,
                number_value(fields.get(b"started")),
                number_value(fields.get(b"ended")),
                text_value(fields.get(b"traceback")),
            )
        )
    return found


def read_since(connection: redis.Redis, job_id: str, attempt: int, seen: int, queue: str = "") -> tuple[str, int, int]:
    """For `logs --follow`: (new text, bytes written in all, bytes lost to the limit) after
    `seen` bytes of the attempt were already shown."""
    layout = keys.layout_of(connection)
    with connection.pipeline(transaction=False) as pipe:
        pipe.get(layout.job_output(job_id, attempt, queue))
        pipe.hget(layout.job_attempt(job_id, attempt, queue), "written")
        output, written = read_replies(pipe)
    data, total = output or b"", number_value(written, int) or 0
    new = total - seen
    if new <= 0:
        return "", seen, 0
    lost = max(0, new - len(data))
    return data[-new:].decode(errors="replace") if new <= len(data) else data.decode(errors="replace"), total, lost
