"""Running jobs inside tests: an in-process worker, inline enqueues, and a private redis-server.

    from jobctl.testing import Worker, inline

    def test_resize(jobctl_client):          # the pytest plugin's fixtures (pytest_plugin.py)
        handle = resize.enqueue("a.png")
        Worker().drain()                      # runs it here, as `jobctl work` would
        assert handle.result() == {...}

    def test_signup_sends_mail():
        with inline():                        # no Redis: enqueue runs the job at once
            signup("x@example.com")

Worker runs jobs through the same code as `jobctl work`'s worker processes (worker.Worker), in
this process and without a supervisor, until the queues are empty. inline() runs a job in the
caller, after the same argument check and the same JSON round trip as a real enqueue, so that
what passes inline does not fail for a reason a worker would find; but it does not retry, run
middlewares or queue limits, or isolate the job in another process: code that depends on those
needs Worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import json
import os
import signal
import socket
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from .api import batches, producer
from .api.client import Client, current_client, set_default
from .api.context import Execution, executing
from .api.handle import Handle, _Look
from .api.jobfunction import InlineRunner, inline_mode, not_json
from .errors import BlockingCall, NotJSON, ResultError
from .jobs import catalogue, signatures
from .runtime import worker
from .runtime.leasekill import PR_SET_PDEATHSIG
from .store import keys
from .store.connection import _redis_server_binary
from .store.jobdata import JobView, decode_payload, encode_payload, encode_result, new_job_id
from .store.locate import known_queues
from .store.transitions import Transitions

T = TypeVar("T")

PROMOTER_LEASE_MS = 1000
DRAIN_BATCH = 100_000  # jobs per worker.Worker run of drain(): more only cost a second run
WAIT_POLL = 0.1  # seconds: drain(wait=) looks again at least this often for jobs that may start


# --- the in-process worker -----------------------------------------------------------------------


class Worker:
    """A worker in this process, for tests: `queues` (names; default: every configured queue, or
    without a queue.yml every queue Redis knows), `concurrency` jobs at once, on `client`'s Redis
    (default: the default client's). One at a time per process: they share the process's
    worker name. What jobs print is not captured per attempt (`jobctl logs` shows nothing)."""

    def __init__(self, queues: Sequence[str] | None = None, concurrency: int = 1, client: Client | None = None):
        if isinstance(queues, str):
            queues = [queues]
        self.queue_names, self.concurrency, self._client = list(queues or []), concurrency, client

    @property
    def client(self) -> Client:
        return self._client or current_client()

    def drain(self, advance: float | timedelta = 0, wait: float | timedelta = 0) -> int:
        """Run jobs until the queues are empty and no scheduled job (delayed, waiting for its
        retry, or held back by a rate or concurrency limit) is due; `advance`: count as due
        those due within that many seconds (a job enqueued with enqueue_in("1h") runs with
        drain(advance=3600)); `wait`: wait up to that many seconds for the jobs that may not
        start yet and run each when it may (a retry after its real delay, a job held back by a
        limit as the limit lets it start), as `jobctl work --burst` waits up to a minute.
        Returns how many jobs ran."""
        ahead = _seconds(advance)
        deadline = time.time() + _seconds(wait)
        ran = 0
        while True:
            moved = self._promote(time.time() + ahead)
            started = self._run(max_jobs=DRAIN_BATCH)
            ran += started
            if moved or started:
                continue
            queued, due = self._waiting()
            now = time.time()
            if now >= deadline or not (queued or (due is not None and due - ahead <= deadline)):
                return ran
            # queued jobs a queue's rate limit holds: look again soon; else sleep until one is due
            pause = WAIT_POLL if queued or due is None else due - ahead - now
            time.sleep(min(max(pause, 0), WAIT_POLL, deadline - now))

    def run_one(self) -> bool:
        """Run the next job (due scheduled jobs included), if there is one; whether one ran."""
        self._promote(time.time())
        return self._run(max_jobs=1) == 1

    def _run(self, max_jobs: int) -> int:
        client = self.client
        client.refuse_in_event_loop("drain", "")
        with client.translated_errors():
            runner = worker.Worker(
                client.connection,
                client.config.select(self.queue_names or self._known_queues()),
                max_jobs=max_jobs,
                concurrency=self.concurrency,
                # a client made from a connection (fakeredis) has no URL of its own: resolving one
                # would start the embedded Redis in the working directory
                url=client.url if not client.given_connection else (client.settings.redis_url or ""),
                config=client.config,
                burst=True,
                capture_output=False,
                lease_ttl=client.settings.lease_ttl,
            )
            runner.run()
        return runner.started

    def _waiting(self) -> tuple[int, float | None]:
        """Jobs of the worker's queues still queued, and when the first scheduled one is due
        (unix time; None: none is)."""
        names = self.queue_names or self._known_queues()
        layout = keys.layout_of(self.client.connection)
        with self.client.translated_errors(), self.client.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(layout.queue(name))
                pipe.zrange(layout.scheduled(name), 0, 0, withscores=True)
            replies = pipe.execute()
        queued = sum(replies[0::2])
        firsts = [score for first in replies[1::2] for _member, score in first]
        return queued, min(firsts, default=None)

    def _known_queues(self) -> list[str]:
        return list(self.client.config.queues) or known_queues(self.client.connection)

    def _promote(self, now: float) -> int:
        """Queue the scheduled jobs due by `now` and the callbacks of the batches completed (as
        the supervisor does), then give the promoter's lease back at once."""
        client = self.client
        transitions = Transitions(client.connection)
        promoter, queues = f"testing.{os.getpid()}", self.queue_names or self._known_queues()
        with client.translated_errors():
            moved = transitions.promote_queues(promoter, PROMOTER_LEASE_MS, now, queues) or 0
            transitions.promote_queues(promoter, 0, now, queues)
            moved += batches.enqueue_due(client.connection, client.config, promoter)
        return moved


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# --- inline --------------------------------------------------------------------------------------


@contextlib.contextmanager
def inline() -> Iterator[None]:
    """Within the block, enqueue runs the job at once, in the caller, and returns a handle on its
    outcome (no Redis is used). See this module's docstring for what it does not do."""
    token = inline_mode.set(InlineRunner(run_inline, arun_inline))
    try:
        yield
    finally:
        inline_mode.reset(token)


class InlineHandle(Handle[T]):
    """The handle of a job run inline: its outcome is kept here, not in Redis."""

    def __init__(self, view: JobView, client: Client):
        super().__init__(view.id, client)
        self.view = view

    def _look_sync(self) -> _Look:
        return _Look(self.view, "0-0")

    async def _look_async(self) -> _Look:
        return _Look(self.view, "0-0")

    def cancel(self) -> bool:
        return False  # it has ended

    def requeue(self) -> bool:
        return False  # nothing to requeue: an inline job is never retried

    def report(self, percent: float, message: str | None) -> None:
        self.view.progress, self.view.progress_message = percent, message

    def ended(self, value: Any = None, error: BaseException | None = None) -> None:
        if error is None:
            try:
                stored = encode_result(value)  # what a worker stores is what result() reads back
            except ResultError as exc:
                error = exc
            else:
                self.view.state, self.view.result = "finished", json.loads(stored)
                return
        self.view.state = "dead"
        self.view.errors = [{"attempt": 1, "error": f"{type(error).__name__}: {error}"}]
        self.view.error = "".join(traceback.format_exception(error))


def _inline_job(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], client: Client
) -> tuple[InlineHandle[Any], Callable[..., Any], list[Any], dict[str, Any]]:
    spec = catalogue.resolve(name)
    signatures.check(spec, args, kwargs)
    queue = client.config.get(spec.queue, where=f"job {name!r}").name
    try:
        producer.check_arguments(name, args, kwargs)
    except NotJSON as refused:
        raise not_json(name, args, kwargs, refused) from None
    _, stored_args, stored_kwargs = decode_payload(encode_payload(name, args, kwargs))
    view = JobView(new_job_id(), name, queue, "started", stored_args, stored_kwargs, attempts=1)
    assert spec.func is not None  # resolve() loads it
    return InlineHandle(view, client), spec.func, stored_args, stored_kwargs


def run_inline(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], client: Client) -> Handle[Any]:
    handle, func, stored_args, stored_kwargs = _inline_job(name, args, kwargs, client)
    with executing(Execution(handle.id, name, handle.report, client)):
        try:
            value = func(*stored_args, **stored_kwargs)
            if inspect.iscoroutine(value):
                value = asyncio.run(value)
        except Exception as exc:  # noqa: BLE001 - whatever the job raised is its outcome
            handle.ended(error=exc)
        else:
            handle.ended(value)
    return handle


async def arun_inline(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], client: Client) -> Handle[Any]:
    handle, func, stored_args, stored_kwargs = _inline_job(name, args, kwargs, client)
    with executing(Execution(handle.id, name, handle.report, client)):
        try:
            value = func(*stored_args, **stored_kwargs)
            if inspect.isawaitable(value):
                value = await value
        except BlockingCall:
            raise  # a plain job that blocks, enqueued with aenqueue: the caller's mistake, not the job's
        except Exception as exc:  # noqa: BLE001 - whatever the job raised is its outcome
            handle.ended(error=exc)
        else:
            handle.ended(value)
    return handle


@contextlib.contextmanager
def default_client(client: Client) -> Iterator[Client]:
    """Make `client` the process's default client within the block."""
    previous = set_default(client)
    try:
        yield client
    finally:
        set_default(previous)


# --- a private redis-server ------------------------------------------------------------------------


def wait_for(condition: Callable[[], T], timeout: float = 15, interval: float = 0.05, message: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
_LAUNCHER = os.getpid()


def die_with_parent() -> None:
    """Run in a child before it executes a server: the kernel sends it SIGTERM when the process
    that started it dies, however it dies (Ctrl-C, a crash, SIGKILL), so no server outlives it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _LAUNCHER:  # it died before the request took effect
        os._exit(1)


def redis_server_binary() -> str:
    return _redis_server_binary()


class RedisServer:
    """A redis-server of the test's own on a spare port, stopped and restarted by its PID."""

    def __init__(self, directory: Path, *options: str, tls: bool = False, binary: str | None = None):
        self.directory, self.options, self.tls = directory, list(options), tls
        self.binary = binary or redis_server_binary()
        self.port = free_port()
        self.started_once = False  # a restart keeps its port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) the server. A first start whose spare port was
        taken meanwhile by another process tries another port."""
        for _ in range(3):
            ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
            with open(self.directory / "redis.out", "ab") as output:
                process = self.process = subprocess.Popen(
                    [
                        self.binary,
                        *ports,
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        str(self.directory),
                        "--save",
                        "",
                        *self.options,
                    ],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,  # it only calls prctl(2)
                    process_group=0,  # Ctrl-C reaches the tests, which then stop it, not the server
                )
            wait_for(
                lambda: self._ready(process) or process.poll() is not None,  # noqa: B023 - called at once, in this iteration
                message=f"redis-server on port {self.port}",
            )
            if process.poll() is None:
                self.started_once = True
                return self
            if self.started_once:
                break
            self.port = free_port()
        log = (self.directory / "redis.out").read_text(errors="replace")[-800:]
        raise AssertionError(f"redis-server did not start on port {self.port}: {log}")

    def _ready(self, process: subprocess.Popen[bytes]) -> bool:
        """Whether this process (not another that took the port meanwhile and answers on it, as
        a cluster node's start once found) logged that it accepts connections."""
        mine = f"{process.pid}:".encode()
        with open(self.directory / "redis.out", "rb") as log:
            return any(line.startswith(mine) and b"Ready to accept connections" in line for line in log)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
