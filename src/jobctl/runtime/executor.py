"""Calling a job function: in the worker's main thread, in a pool thread, or on an event loop.

A worker process runs `concurrency` jobs at once (queue.yml). Plain functions run in the thread
that fetched them: the main thread when `concurrency` is 1 (the fastest path), otherwise one of
the worker's pool threads. `async def` jobs run as tasks on one asyncio event loop per process,
in a thread of its own, while the thread that fetched them waits for their outcome.

A running job is interrupted (its timeout passed, or an operator asked to stop it) by an
exception raised inside it, so its `finally` blocks run:
- main thread: SIGALRM, whose handler raises; it also ends a blocking call such as sleep();
- pool thread: an exception set asynchronously on that thread (PyThreadState_SetAsyncExc),
  raised at its next Python instruction, so a blocking call ends first;
- event loop: the task is cancelled and the CancelledError becomes the interruption.
A job that ignores it (stuck in C code) is killed with its worker process by the supervisor
after a grace period (lua/overdue.lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .. import threads
from ..api.context import Execution, executing
from ..errors import JobStopped, JobTimeout


@dataclass
class Running:
    """One job in flight in this process, as the executor and the worker's control thread see it."""

    job_id: str
    timeout: float
    thread: int = field(default_factory=threading.get_ident)
    in_main_thread: bool = field(default_factory=lambda: threading.current_thread() is threading.main_thread())
    deadline: float = 0.0  # monotonic; 0 = none
    since: float = field(default_factory=time.monotonic)
    task: asyncio.Task[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    in_user_code: bool = False
    interruption: type[BaseException] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Executor:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._main: Running | None = None  # the job the main thread runs, for the SIGALRM handler
        self._alarm_installed = False

    # --- running -------------------------------------------------------------------------------

    def call(
        self,
        func: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        execution: Execution,
        running: Running,
        output: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> Any:
        """Run the job to its end in the calling thread's name; raises what the job raised,
        JobTimeout or JobStopped. `output()` is opened where the job's code runs (its output
        capture: joboutput.py), so that each job's prints stay its own."""
        if inspect.iscoroutinefunction(func):
            return self._await(func(*args, **kwargs), execution, running, output)
        if running.timeout > 0:
            running.deadline = time.monotonic() + running.timeout
        with executing(execution), output():
            result = self._call_sync(func, args, kwargs, running)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            running.deadline = 0.0
            return self._await(result, execution, running, output)
        return result

    def _call_sync(self, func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], running: Running) -> Any:
        if running.in_main_thread:
            self._main = running
            if not self._alarm_installed:  # once: signal.signal per job costs more than the job's bookkeeping
                signal.signal(signal.SIGALRM, self._on_alarm)
                self._alarm_installed = True
            if running.timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, running.timeout)
        try:
            with running.lock:
                running.in_user_code = True
                if running.interruption is not None:  # asked to stop before it began
                    raise running.interruption()
            try:
                return func(*args, **kwargs)
            finally:
                # a pending interruption fires here at the latest (the lock's calls check for it),
                # inside the caller's handlers
                with running.lock:
                    running.in_user_code = False
        finally:
            if running.in_main_thread:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self._main = None

    def _await(
        self,
        awaitable: Awaitable[Any],
        execution: Execution,
        running: Running,
        output: Callable[[], contextlib.AbstractContextManager[object]],
    ) -> Any:
        loop = self._event_loop()

        async def supervised() -> Any:
            running.task = asyncio.current_task()
            running.loop = loop
            if running.interruption is not None:
                raise running.interruption()
            with executing(execution), output():
                try:
                    if running.timeout > 0:
                        async with asyncio.timeout(running.timeout):
                            return await awaitable
                    return await awaitable
                except TimeoutError:
                    if running.interruption is None:
                        raise JobTimeout() from None
                    raise
                except asyncio.CancelledError:
                    raise (running.interruption or JobStopped)() from None

        return asyncio.run_coroutine_threadsafe(supervised(), loop).result()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The process's one event loop for async jobs, started in its own thread on first use."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._run_loop, name="jobctl-event-loop", daemon=True).start()
            return self._loop

    def _run_loop(self) -> None:
        threads.leave_signals_to_the_main_thread()
        assert self._loop is not None  # set before the thread starts
        self._loop.run_forever()

    # --- interrupting (from the worker's control thread) ----------------------------------------

    def interrupt(self, running: Running, exception: type[BaseException]) -> None:
        """Raise `exception` inside the running job, once."""
        with running.lock:
            if running.interruption is not None:
                return
            running.interruption = exception
            if running.task is not None and running.loop is not None:
                running.loop.call_soon_threadsafe(running.task.cancel)
            elif not running.in_user_code:
                return  # raised when it starts (see _call_sync)
            elif running.in_main_thread:
                signal.setitimer(signal.ITIMER_REAL, 0.001)
            else:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(running.thread), ctypes.py_object(exception))

    def interrupt_overdue(self, jobs: list[Running]) -> None:
        """Time out the pool threads' jobs past their deadline (the main thread's have SIGALRM,
        async ones their own timer)."""
        now = time.monotonic()
        for running in jobs:
            if running.deadline and now > running.deadline and not running.in_main_thread and running.task is None:
                self.interrupt(running, JobTimeout)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        running = self._main
        if running is not None and running.in_user_code:
            raise (running.interruption or JobTimeout)()
