"""Where jobctl finds its Redis, its config files and its job modules: flags, then environment
(`REDIS_URL`, `JOBCTL_*`), then `queue.yml` / `recurring.yml` in the working directory, and
where each value came from (`jobctl config` shows it).

Importing it is cheap: Redis, YAML and the job registry are imported when a command first needs
them (`jobctl --help` needs none of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options.durations import format_exact

if TYPE_CHECKING:
    import redis

    from .queues import QueuesConfig, RecurringEntry

DEFAULT_CONFIG = "queue.yml"
DEFAULT_RECURRING = "recurring.yml"
DEFAULT_SOURCE = "default"

# `jobctl config` rows that job packages add after the core's (the built-in jobs' database_url):
# name -> what reads the row, {"value": ..., "source": ...}, when it is shown
_package_rows: dict[str, Callable[[], dict[str, Any]]] = {}


def config_row(name: str, read: Callable[[], dict[str, Any]]) -> None:
    """Show a job package's own setting in `jobctl config`, read by `read` each time it is shown."""
    _package_rows[name] = read


def flag_source(flag: str) -> str:
    return f"flag {flag}"


def env_source(variable: str) -> str:
    return f"env {variable}"


def setting_text(name: str, value: Any) -> str:
    """A queue setting as an operator writes it: 5m, 30d, off, [10s, 1m]."""
    # PyYAML (queues.py reads queue.yml): imported on first use, not at the CLI's start-up
    from .queues import DURATION_SETTINGS, WorkerRange

    if isinstance(value, WorkerRange):  # before the tuples: written 2..10
        return str(value)
    if value is None or value is False:
        return "off"
    if value is True:
        return "on"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(setting_text(name, item) for item in value) + "]"
    if name in DURATION_SETTINGS and isinstance(value, (int, float)):
        return format_exact(value)
    return str(value)


def entry_fields(entry: RecurringEntry) -> dict[str, Any]:
    """A recurring entry as `config --json` and `scheduler --list --json` show it."""
    return {
        "name": entry.name,
        "job": entry.job,
        "queue": entry.queue,
        "schedule": entry.schedule.text,
        "timezone": entry.timezone,
        "enabled": entry.enabled,
    }


@dataclass
class Settings:
    redis_url: str | None = None
    config_path: str = DEFAULT_CONFIG
    recurring_path: str = DEFAULT_RECURRING
    recurring_given: bool = False
    job_modules: str | None = None
    verbose: bool = False
    quiet: bool = False
    # setting name (redis_url, config_path, recurring_path, job_modules) -> flag_source(...),
    # env_source(...) or DEFAULT_SOURCE
    sources: dict[str, str] = field(default_factory=dict)
    _jobs_loaded: bool = field(default=False, repr=False)

    @cached_property
    def url(self) -> str:
        """The Redis URL in use (the embedded Redis's socket when none was given).

        The embedded Redis belongs to a project directory: it is only started once that
        directory's queue.yml is valid, so a mistyped directory leaves no server behind."""
        # redis-py: imported on first use, not at the CLI's start-up
        from ..store.connection import resolve_url

        if not self.redis_url:
            _ = self.queues  # loading queue.yml validates it before an embedded Redis is started
        return resolve_url(self.redis_url)

    @cached_property
    def connection(self) -> redis.Redis:
        # redis-py: imported on first use, not at the CLI's start-up
        from ..store.connection import connect

        return connect(self.url)

    @cached_property
    def queues(self) -> QueuesConfig:
        # PyYAML (queues.py reads queue.yml): imported on first use, not at the CLI's start-up
        from .queues import load_queues

        return load_queues(self.config_path)

    def load_jobs(self) -> None:
        if not self._jobs_loaded:
            # the job catalogue (and its cron parser): imported on first use, not at start-up
            from ..jobs import catalogue
            from .limits import check_breakers

            catalogue.load(self.job_modules)
            self._jobs_loaded = True
            if any(spec.breaker for spec in catalogue.all_jobs()):
                check_breakers(self.queues)  # a breaker a job names must be declared in queue.yml

    def recurring(self) -> list[RecurringEntry]:
        # PyYAML (queues.py reads queue.yml): imported on first use, not at the CLI's start-up
        from .queues import load_recurring

        self.load_jobs()
        return load_recurring(self.recurring_path, self.queues, required=self.recurring_given)

    def source(self, setting: str) -> str:
        return self.sources.get(setting, DEFAULT_SOURCE)

    def effective(self) -> dict[str, Any]:
        """The effective configuration, each value with where it came from; secrets masked.

        Validates queue.yml and recurring.yml on the way (a bad file raises ConfigError) but
        never connects to Redis or starts the embedded one."""
        # redis-py: imported on first use, not at the CLI's start-up
        from ..store.connection import embedded_socket, mask_url

        if self.redis_url:
            redis_value = mask_url(self.redis_url)
        else:
            redis_value = f"unix://{embedded_socket()} (embedded Redis, started on demand)"
        recurring_exists = Path(self.recurring_path).exists()
        entries = self.recurring()
        return {
            "redis_url": {"value": redis_value, "source": self.source("redis_url")},
            "config": {"value": str(Path(self.config_path).resolve()), "source": self.source("config_path")},
            "recurring": {
                "value": str(Path(self.recurring_path).resolve()),
                "source": self.source("recurring_path"),
                "exists": recurring_exists,
            },
            "jobs": {"value": self.job_modules, "source": self.source("job_modules")},
            **{name: read() for name, read in _package_rows.items()},
            "queues": self._queue_settings(),
            "recurring_entries": [entry_fields(e) for e in entries],
        }

    def _queue_settings(self) -> list[dict[str, Any]]:
        from dataclasses import fields

        # PyYAML (queues.py reads queue.yml): imported on first use, not at the CLI's start-up
        from . import yamlfile
        from .queues import QueueConfig, WorkerRange

        config = self.queues  # validated: the raw document below is known to be well-formed
        # the settings queue.yml can set: every QueueConfig field but the queue's identity
        names = [f.name for f in fields(QueueConfig) if f.name not in ("name", "priority")]
        document = yamlfile.read(config.path, None)
        defaults = document.get("defaults") or {}
        where = Path(config.path).name
        rows: list[dict[str, Any]] = []
        for queue in config.queues.values():
            own = document.get(queue.name) or {}
            settings: dict[str, dict[str, Any]] = {}
            for name in names:
                written = own if name in own else defaults if name in defaults else None
                if written is own:
                    source = f"file {where}: queue {queue.name!r}"
                elif written is defaults:
                    source = f"file {where}: defaults"
                else:
                    source = DEFAULT_SOURCE
                value = getattr(queue, name)
                text = setting_text(name, written[name] if written is not None else value)
                if isinstance(value, WorkerRange):
                    value = str(value)  # as written: 2..10
                settings[name] = {
                    "value": list(value) if isinstance(value, tuple) else value,
                    "text": text,
                    "source": source,
                }
            rows.append({"name": queue.name, "priority": queue.priority, "settings": settings})
        return rows
