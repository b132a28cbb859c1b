"""The job registry: the only functions a worker will ever run, by name.

Payloads name a registered job; nothing in a payload is ever imported. User jobs are registered
by importing the modules named with `--jobs` / `JOBCTL_JOBS`. Built-in jobs are *declared* by
`jobctl.builtin` (name, module, queue) and their modules imported on first use, so that a command
such as `jobctl enqueue` does not pay for importing SQLAlchemy, and workers that never run a
built-in job never load it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .durations import parse_duration
from .errors import ConfigError, UnknownJob

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable | None  # None while only declared: see resolve()
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None  # None: the queue's max_retries
    timeout: float | None = None  # seconds; None: the queue's timeout
    module: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}{inspect.signature(resolve(self.name).func)}"


_jobs: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    queue: str = DEFAULT_QUEUE,
    max_retries: int | None = None,
    timeout: float | str | None = None,
) -> Callable[[Callable], Callable]:
    """Register a function as a job that `jobctl enqueue NAME ...` can run.

    `timeout` takes seconds or a duration such as "5m"; `max_retries` and `timeout` override
    the queue's settings for this job.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a job needs a non-empty string name")
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise ValueError(f"job {name!r}: max_retries must be a non-negative integer")
    seconds = parse_duration(timeout) if timeout is not None else None

    def register(func: Callable) -> Callable:
        spec = JobSpec(name, func, queue, max_retries, seconds, func.__module__)
        existing = _jobs.get(name)
        if existing and existing.func is None:
            if (existing.module, existing.queue, existing.max_retries, existing.timeout) != (
                spec.module, queue, max_retries, seconds
            ):
                raise ValueError(f"job {name!r} is declared differently from its @job in {spec.module}")
        elif existing and import_path(existing.func) != import_path(func):
            raise ValueError(
                f"job name {name!r} is already registered by {import_path(existing.func)}"
            )
        _jobs[name] = spec
        return func

    return register


def declare(
    name: str, module: str, *, queue: str = DEFAULT_QUEUE, max_retries: int | None = None, timeout: str | None = None
) -> None:
    """Register a job whose module is imported only when its function is needed (resolve());
    the module's own @job must say the same."""
    if name not in _jobs:
        seconds = parse_duration(timeout) if timeout is not None else None
        _jobs[name] = JobSpec(name, None, queue, max_retries, seconds, module)


def resolve(name: str) -> JobSpec:
    """The job's spec with its function, importing a declared job's module on first use."""
    spec = get(name)
    if spec.func is None:
        importlib.import_module(spec.module)
        spec = _jobs[name]
        if spec.func is None:
            raise ConfigError(f"module {spec.module} does not register the job {name!r} it was declared in")
    return spec


def import_path(func: Callable) -> str:
    """Where the function is found by import, as RQ names functions (`myapp.jobs.resize_image`)."""
    return f"{func.__module__}.{func.__qualname__}"


def get(name: str) -> JobSpec:
    try:
        return _jobs[name]
    except KeyError:
        known = ", ".join(sorted(_jobs)) or "none"
        raise UnknownJob(f"unknown job {name!r} (registered jobs: {known})") from None


def is_registered(name: str) -> bool:
    return name in _jobs


def all_jobs() -> list[JobSpec]:
    return sorted(_jobs.values(), key=lambda spec: spec.name)


def load(job_modules: str | None = None) -> None:
    """Register the built-in jobs and the user's modules (comma-separated dotted names)."""
    importlib.import_module("jobctl.builtin")
    modules = [m.strip() for m in (job_modules or "").split(",") if m.strip()]
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        # Like `python -m`, user modules are found relative to the working directory.
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--jobs/JOBCTL_JOBS: cannot import job module {module!r}: {exc}") from None
        except Exception as exc:  # a user module that fails on import must not show a traceback
            raise ConfigError(
                f"--jobs/JOBCTL_JOBS: job module {module!r} failed on import: "
                f"{type(exc).__name__}: {exc}"
            ) from None
