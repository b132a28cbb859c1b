"""Where jobctl finds its Redis, its config files and its job modules: flags, then environment,
then the defaults in the working directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis

from . import registry
from .config import QueuesConfig, RecurringEntry, load_queues, load_recurring
from .connection import connect, resolve_url

DEFAULT_CONFIG = "queue.yml"
DEFAULT_RECURRING = "recurring.yml"


@dataclass
class Settings:
    redis_url: str | None = None
    config_path: str = DEFAULT_CONFIG
    recurring_path: str = DEFAULT_RECURRING
    recurring_given: bool = False
    job_modules: str | None = None
    verbose: bool = False
    _jobs_loaded: bool = field(default=False, repr=False)

    @cached_property
    def url(self) -> str:
        """The Redis URL in use (the embedded Redis's socket when none was given)."""
        return resolve_url(self.redis_url)

    @cached_property
    def connection(self) -> redis.Redis:
        return connect(self.url)

    @cached_property
    def queues(self) -> QueuesConfig:
        return load_queues(self.config_path)

    def load_jobs(self) -> None:
        if not self._jobs_loaded:
            registry.load(self.job_modules)
            self._jobs_loaded = True

    def recurring(self) -> list[RecurringEntry]:
        self.load_jobs()
        return load_recurring(self.recurring_path, self.queues, required=self.recurring_given)
