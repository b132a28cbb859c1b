"""What a running job can see of itself: its id and a way to report progress.

The worker opens an execution around each job; `jobctl.progress()` reports to it. Outside a
worker (a job function called directly, in a test or a shell) progress goes nowhere, unless a
caller opened an execution of its own with a listener.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import Client

ProgressListener = Callable[[float, "str | None"], None]


@dataclass(frozen=True)
class Execution:
    job_id: str
    job_name: str
    on_progress: ProgressListener
    client: Client | None = None  # what the job's own enqueues use: its worker's connection
    worker: str = ""  # the worker running it (a breaker's trial is tied to it: api/breakers.py)
    queue: str = ""  # its queue: on a Redis Cluster a breaker used in its code lives in that queue's slot


_current: ContextVar[Execution | None] = ContextVar("jobctl_execution", default=None)


@contextlib.contextmanager
def executing(execution: Execution) -> Iterator[Execution]:
    token = _current.set(execution)
    try:
        yield execution
    finally:
        _current.reset(token)


def current() -> Execution | None:
    """The job running in this context (thread or task), if any."""
    return _current.get()


def progress(percent: float, message: str | None = None) -> None:
    """Report how far the current job has got (0-100), with an optional short message."""
    percent = float(percent)
    if not 0 <= percent <= 100:
        raise ValueError(f"progress percent must be between 0 and 100, got {percent}")
    execution = _current.get()
    if execution is not None:
        execution.on_progress(percent, message)
