"""Where jobctl finds its Redis, its config files and its job modules, and the process settings
every jobctl process shares (the liveness window, StatsD): flags, then environment (`REDIS_URL`,
`JOBCTL_*`), then `queue.yml` / `recurring.yml` in the working directory, with where each value
came from (`jobctl config` shows it).

One Settings object is built per process, by its entry point (the CLI's global options,
`jobctl.connect()` / `Client`), from the flags and the environment it is given
(`Settings.build`); the code below the entry points receives it, or the values it holds, and
never reads the environment itself.

Importing it is cheap: Redis, YAML and the job catalogue are imported when a command first needs
them (`jobctl --help` needs none of them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..options import cluster, replicas
from ..options.liveness import DEFAULT_LEASE_TTL, parse_lease_ttl

if TYPE_CHECKING:
    import redis

    from .queues import QueuesConfig, RecurringEntry

DEFAULT_CONFIG = "queue.yml"
DEFAULT_RECURRING = "recurring.yml"
DEFAULT_SOURCE = "default"
DEFAULT_STATSD_PREFIX = "jobctl"
# the environment variable of each setting the environment may give
ENVIRONMENT = {
    "redis_url": "REDIS_URL",
    "config_path": "JOBCTL_CONFIG",
    "recurring_path": "JOBCTL_RECURRING",
    "job_modules": "JOBCTL_JOBS",
    "lease_ttl": "JOBCTL_LEASE_TTL",
    "statsd_prefix": "JOBCTL_STATSD_PREFIX",
    "cluster": "JOBCTL_CLUSTER",
    "enqueue_replicas": "JOBCTL_ENQUEUE_REPLICAS",
    "enqueue_replicas_timeout": "JOBCTL_ENQUEUE_REPLICAS_TIMEOUT",
}


class PackageRows:
    """`jobctl config` rows that job packages add after the core's (the built-in jobs'
    database_url): name -> what reads the row, {"value": ..., "source": ...}, when it is shown."""

    def __init__(self) -> None:
        self._rows: dict[str, Callable[[], dict[str, Any]]] = {}

    def add(self, name: str, read: Callable[[], dict[str, Any]]) -> None:
        self._rows[name] = read

    def read(self) -> dict[str, dict[str, Any]]:
        """Each row as it reads now, in the order they were added."""
        return {name: read() for name, read in self._rows.items()}


package_rows = PackageRows()  # the process's: job packages add to it on import, `jobctl config` shows it


def config_row(name: str, read: Callable[[], dict[str, Any]]) -> None:
    """Show a job package's own setting in `jobctl config`, read by `read` each time it is shown."""
    package_rows.add(name, read)


def flag_source(flag: str) -> str:
    return f"flag {flag}"


def env_source(variable: str) -> str:
    return f"env {variable}"


@dataclass(frozen=True)
class StatsdTarget:
    """Where workers send StatsD metrics (middleware/statsd_metrics.py)."""

    host: str
    port: int
    prefix: str = DEFAULT_STATSD_PREFIX

    @classmethod
    def parse(cls, text: str, prefix: str = DEFAULT_STATSD_PREFIX) -> StatsdTarget:
        """host:port; raises ValueError."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port like 127.0.0.1:8125, got {text!r}")
        return cls(host.strip("[]"), int(port), prefix.strip() or DEFAULT_STATSD_PREFIX)


@dataclass
class Settings:
    """Everything a jobctl process is told from outside: where Redis, the config files and the
    job modules are, the liveness window, where StatsD is, and how much to log."""

    redis_url: str | None = None
    config_path: str = DEFAULT_CONFIG
    recurring_path: str = DEFAULT_RECURRING
    recurring_given: bool = False
    job_modules: str | None = None
    verbose: bool = False
    quiet: bool = False
    # seconds a process counts as alive without a sign of life (options/liveness.py)
    lease_ttl: int = DEFAULT_LEASE_TTL
    statsd: StatsdTarget | None = None  # None: no StatsD metrics (use_statsd)
    statsd_prefix: str = DEFAULT_STATSD_PREFIX
    cluster: cluster.ClusterMode = "auto"  # whether Redis is a Redis Cluster (options/cluster.py)
    # replicas every enqueue waits for (options/replicas.py)
    enqueue_replicas: replicas.Acknowledged = field(default_factory=replicas.Acknowledged)
    # setting name (redis_url, config_path, recurring_path, job_modules) -> flag_source(...),
    # env_source(...) or DEFAULT_SOURCE
    sources: dict[str, str] = field(default_factory=dict)
    _jobs_loaded: bool = field(default=False, repr=False)

    @classmethod
    def build(
        cls,
        environ: Mapping[str, str],
        *,
        redis_url: str | None = None,
        config_path: str | None = None,
        recurring_path: str | None = None,
        job_modules: str | None = None,
        verbose: bool = False,
        quiet: bool = False,
        sources: dict[str, str] | None = None,
    ) -> Settings:
        """The settings from the values given (flags, arguments), else from `environ` (the
        process's environment, read once here), else the defaults. `sources`: where the values
        given came from (the CLI's flags); those read from `environ` are recorded as such.
        Raises ConfigError for a value the environment gives that is not valid."""
        found = dict(sources or {})

        def pick(setting: str, given: str | None) -> str | None:
            if given:
                return given
            value = environ.get(ENVIRONMENT[setting], "").strip() or None
            if value is not None:
                found.setdefault(setting, env_source(ENVIRONMENT[setting]))
            return value

        lease_ttl = DEFAULT_LEASE_TTL
        if text := pick("lease_ttl", None):
            try:
                lease_ttl = parse_lease_ttl(text)
            except ValueError as exc:
                raise ConfigError(f"{ENVIRONMENT['lease_ttl']}: {exc}") from None
        cluster_mode: cluster.ClusterMode = "auto"
        if text := pick("cluster", None):
            try:
                cluster_mode = cluster.parse_cluster_mode(text)
            except ValueError as exc:
                raise ConfigError(f"{ENVIRONMENT['cluster']}: {exc}") from None
        # every client this process makes follows it (store/connection.py), whichever part makes it
        cluster.set_mode(cluster_mode)

        def parsed(setting: str, parse: Callable[[str], Any], default: Any) -> Any:
            text = pick(setting, None)
            try:
                return parse(text) if text else default
            except ValueError as exc:
                raise ConfigError(f"{ENVIRONMENT[setting]}: {exc}") from None

        acknowledged = replicas.Acknowledged(
            parsed("enqueue_replicas", replicas.parse_replicas, 0),
            parsed("enqueue_replicas_timeout", replicas.parse_timeout, replicas.DEFAULT_TIMEOUT),
        )
        replicas.set_wanted(acknowledged)  # as the cluster mode: every enqueue of this process
        recurring = pick("recurring_path", recurring_path)
        return cls(
            redis_url=pick("redis_url", redis_url),
            config_path=pick("config_path", config_path) or DEFAULT_CONFIG,
            recurring_path=recurring or DEFAULT_RECURRING,
            recurring_given=recurring is not None,
            job_modules=pick("job_modules", job_modules),
            verbose=verbose,
            quiet=quiet,
            lease_ttl=lease_ttl,
            statsd_prefix=pick("statsd_prefix", None) or DEFAULT_STATSD_PREFIX,
            cluster=cluster_mode,
            enqueue_replicas=acknowledged,
            sources=found,
        )

    def use_statsd(self, address: str | None) -> None:
        """Send StatsD metrics to `address` (host:port, `jobctl work --statsd` or JOBCTL_STATSD,
        which only `work` reads; None: send none). Raises ValueError."""
        self.statsd = StatsdTarget.parse(address, self.statsd_prefix) if address else None

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
        from ..store import keys
        from ..store.connection import connect
        from ..store.locate import remember_queues

        connection = connect(self.url)
        if keys.layout_of(connection).cluster:  # where a job's keys name its queue, look on queue.yml's too
            remember_queues(connection, self.queues.queues)
        return connection

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
