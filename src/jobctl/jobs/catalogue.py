"""The job catalogue: the only functions a worker will ever run, by name.

Payloads name a registered job; nothing in a payload is ever imported. Jobs are registered by
importing their modules: the built-in jobs' package (`jobctl.builtin`), then the modules named
with `--jobs` / `JOBCTL_JOBS`. They register into a Catalogue: the process's own (`default_catalogue`,
what @job, @callback and declare() add to, and what the module's functions below read) unless
given another; a test or a second app in one process may keep its own. A module registers a job with @job, or *declares* it (declare():
name, module, queue) so that the module is imported only when its function is needed: the
built-in jobs do, so that a command such as `jobctl enqueue` does not pay for importing
SQLAlchemy, and workers that never run a built-in job never load it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..errors import ConfigError, UnknownJob
from ..options.backoff import Backoff, parse_backoff
from ..options.durations import parse_duration
from ..options.rates import Rate, parse_rate
from ..options.schedule import CATCH_UP, parse_schedule

DEFAULT_QUEUE = "default"
# The built-in jobs: a job package like the user's, loaded first. Named, not imported: it
# depends on the core, never the reverse.
BUILTIN_JOBS = "jobctl.builtin"

Function = TypeVar("Function", bound=Callable[..., Any])  # @callback returns what it is given


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., Any] | None  # None while only declared: see resolve()
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None  # None: the queue's max_retries
    timeout: float | None = None  # seconds; None: the queue's timeout
    module: str = ""
    # the options below are @job's; the README's "Job options" table says what each one does
    backoff: Backoff | None = None  # None: the queue's
    retry_delay: float | None = None  # None: the queue's
    unique: bool = False  # the default of enqueue's --unique
    unique_for: float | None = None  # seconds a unique claim lasts; None: while the job is active
    keep_dead: bool = True
    rate_limit: Rate | None = None
    max_concurrency: int | None = None
    breaker: str | None = None  # a circuit breaker of queue.yml's `breakers:` (config/limits.py)
    on_success: Callable[[Any, Any], Any] | None = None
    on_failure: Callable[[Any, BaseException], Any] | None = None
    on_dead: Callable[[Any, BaseException], Any] | None = None
    schedule: Any = None  # jobctl.options.schedule.Schedule of `cron`: the job is also a recurring entry
    catch_up: str = "latest"


def job_options(
    *,
    backoff: Any,
    retry_delay: Any,
    unique: Any,
    keep_dead: Any,
    rate_limit: Any,
    max_concurrency: Any,
    breaker: Any,
    on_success: Any,
    on_failure: Any,
    on_dead: Any,
    cron: Any,
    timezone: Any,
    catch_up: Any,
) -> dict[str, Any]:
    """@job's options beyond queue, max_retries and timeout, checked: JobSpec's fields. Raises
    ValueError naming the option."""
    options: dict[str, Any] = {}
    if backoff is not None:
        options["backoff"] = backoff if callable(backoff) else _checked("backoff", parse_backoff, backoff)
    if retry_delay is not None:
        options["retry_delay"] = _checked("retry_delay", parse_duration, retry_delay)
    if unique is not False:
        options["unique"] = True
        if unique is not True:
            options["unique_for"] = _checked("unique", parse_duration, unique)
            if not options["unique_for"]:
                raise ValueError(f"unique: expected True or a duration longer than zero, got {unique!r}")
    if not isinstance(keep_dead, bool):
        raise ValueError(f"keep_dead: expected True or False, got {keep_dead!r}")
    options["keep_dead"] = keep_dead
    if rate_limit is not None:
        options["rate_limit"] = _checked("rate_limit", parse_rate, rate_limit)
    if max_concurrency is not None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency: expected a whole number >= 1, got {max_concurrency!r}")
        options["max_concurrency"] = max_concurrency
    if breaker is not None:
        if not isinstance(breaker, str) or not breaker:
            raise ValueError(f"breaker: expected the name of a breaker declared in queue.yml, got {breaker!r}")
        options["breaker"] = breaker
    for hook, value in (("on_success", on_success), ("on_failure", on_failure), ("on_dead", on_dead)):
        if value is not None and not callable(value):
            raise ValueError(f"{hook}: expected a function, got {value!r}")
        options[hook] = value
    if cron is not None:
        options["schedule"] = _checked("cron", lambda text: parse_schedule(str(text), str(timezone)), cron)
        if catch_up not in CATCH_UP:
            raise ValueError(f"catch_up: expected latest or none, got {catch_up!r}")
        options["catch_up"] = catch_up
    return options


def _checked(option: str, parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


class Catalogue:
    """Job names -> their JobSpecs, the import paths of their functions, and the functions
    registered with @callback."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobSpec] = {}
        self._by_import_path: dict[str, str] = {}  # RQ's name for a registered function -> its job name
        self._callbacks: dict[str, Callable[..., Any]] = {}  # import path -> function registered with @callback

    def add(self, spec: JobSpec) -> None:
        """Register `spec` (its function given): as declared, if it was; raises ValueError when its
        name is taken by another function or it differs from its declaration."""
        name, func = spec.name, cast("Callable[..., Any]", spec.func)
        existing = self._jobs.get(name)
        if existing and existing.func is None:
            if (existing.module, existing.queue, existing.max_retries, existing.timeout) != (
                spec.module,
                spec.queue,
                spec.max_retries,
                spec.timeout,
            ):
                raise ValueError(f"job {name!r} is declared differently from its @job in {spec.module}")
        elif existing and existing.func and import_path(existing.func) != import_path(func):
            raise ValueError(f"job name {name!r} is already registered by {import_path(existing.func)}")
        self._jobs[name] = spec
        self._by_import_path[import_path(func)] = name

    def callback(self, func: Function) -> Function:
        """Register a function that RQ's `on_success`, `on_failure` or `on_stopped` may name
        (`Callback(notify)` stores its import path): a worker runs only registered callbacks, and
        registered jobs, never a path read from Redis."""
        self._callbacks[import_path(func)] = func
        return func

    def declare(
        self,
        name: str,
        module: str,
        *,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        timeout: str | None = None,
    ) -> None:
        """Register a job whose module is imported only when its function is needed (resolve());
        the module's own @job must say the same."""
        if name not in self._jobs:
            seconds = parse_duration(timeout) if timeout is not None else None
            self._jobs[name] = JobSpec(name, None, queue, max_retries, seconds, module)

    def resolve(self, name: str) -> JobSpec:
        """The job's spec with its function, importing a declared job's module on first use."""
        spec = self.get(name)
        if spec.func is None:
            importlib.import_module(spec.module)
            spec = self._jobs[name]
            if spec.func is None:
                raise ConfigError(f"module {spec.module} does not register the job {name!r} it was declared in")
        return spec

    def stored(self, name: str) -> JobSpec | None:
        """The job a payload names, resolved with its function: by its job name, or, for a job RQ's
        producers enqueued by function reference (`q.enqueue(myapp.jobs.add, 1, 2)`), by the import
        path of the function it is registered from. None when no registered job matches."""
        if name not in self._jobs:
            module = name.rpartition(".")[0]
            for declared in [spec for spec in self._jobs.values() if spec.func is None and spec.module == module]:
                self.resolve(declared.name)  # a module jobctl declares, whose @job registers its path
            name = self._by_import_path.get(name, name)
        return self.resolve(name) if name in self._jobs else None

    def callback_function(self, name: str) -> Callable[..., Any] | None:
        """What an RQ callback name (an import path, or a job name) may run: a function registered
        with @callback or as a job; None for anything else."""
        if name in self._callbacks:
            return self._callbacks[name]
        spec = self.stored(name)
        return spec.func if spec else None

    def import_paths(self) -> dict[str, str]:
        """Import path -> job name, of the jobs whose functions are loaded."""
        return dict(self._by_import_path)

    def get(self, name: str) -> JobSpec:
        try:
            return self._jobs[name]
        except KeyError:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise UnknownJob(f"unknown job {name!r} (registered jobs: {known})") from None

    def __contains__(self, name: str) -> bool:
        return name in self._jobs

    def all_jobs(self) -> list[JobSpec]:
        return sorted(self._jobs.values(), key=lambda spec: spec.name)


default_catalogue = Catalogue()  # the process's: @job, @callback and declare() register into it

# the process's catalogue, as the rest of jobctl reads it
add = default_catalogue.add
callback = default_catalogue.callback
declare = default_catalogue.declare
resolve = default_catalogue.resolve
stored = default_catalogue.stored
callback_function = default_catalogue.callback_function
import_paths = default_catalogue.import_paths
get = default_catalogue.get
all_jobs = default_catalogue.all_jobs


def is_registered(name: str) -> bool:
    """Whether the process's catalogue has a job of that name."""
    return name in default_catalogue


def import_path(func: Callable[..., Any]) -> str:
    """Where the function is found by import, as RQ names functions (`myapp.jobs.resize_image`)."""
    return f"{func.__module__}.{func.__qualname__}"


def load(job_modules: str | None = None) -> None:
    """Register the built-in jobs and the user's modules (comma-separated dotted names)."""
    modules = [m.strip() for m in (job_modules or "").split(",") if m.strip()]
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        # Like `python -m`, user modules are found relative to the working directory.
        sys.path.insert(0, os.getcwd())
    for module in [BUILTIN_JOBS, *modules]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--jobs/JOBCTL_JOBS: cannot import job module {module!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a job module may raise anything on import: one clear line
            raise ConfigError(
                f"--jobs/JOBCTL_JOBS: job module {module!r} failed on import: {type(exc).__name__}: {exc}"
            ) from None
