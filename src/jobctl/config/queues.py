"""queue.yml and recurring.yml: loaded, validated, and turned into plain settings.

Every problem is reported as one line naming the file, the entry, the key and what was
expected; nothing starts on a bad file.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import BreakerOpen, ConfigError, JobStopped
from ..jobs import catalogue
from ..jobs.signatures import ArgumentMismatch, check
from ..options.backoff import EXPECTED as BACKOFF_EXPECTED
from ..options.backoff import backoff_delay, parse_backoff
from ..options.durations import parse_duration
from ..options.rates import Rate, parse_rate
from ..options.schedule import CATCH_UP, parse_schedule
from ..store import keys
from . import yamlfile

if TYPE_CHECKING:
    from ..options.schedule import Schedule

ENGINES = ("jobctl", "rq")
RQ_WORKER_CLASSES = ("Worker", "SimpleWorker")  # rq.Worker forks a work horse per job, as `rq worker` does
SERIALIZERS = ("pickle", "json")
MAX_PREFETCH = 100  # jobs reserved ahead: more would only keep them from other workers
MAX_WORKER_COUNT = 64  # worker processes per queue; more jobs in flight come from `concurrency`


class WorkerRange(NamedTuple):
    """`worker_count: 2..10`: the supervisor scales the queue's workers between these
    (scaling.py, Pool); a plain number is a fixed count."""

    minimum: int
    maximum: int

    def __str__(self) -> str:
        return f"{self.minimum}..{self.maximum}"


@dataclass(frozen=True)
class QueueConfig:
    name: str
    priority: int = 0  # position in queue.yml, 0 = highest
    worker_count: int | WorkerRange = 1  # a range: elastic, between its bounds (scaling.py)
    scale_up_latency: float = 5.0  # elastic: a worker is added when the oldest queued job waited this long
    scale_up_backlog: int = 20  # elastic: ... or when more jobs than this per worker are queued
    scale_down_idle: float = 60.0  # elastic: a worker idle this long is retired
    max_retries: int = 3
    timeout: float = 180.0
    backoff: str | tuple[float, ...] = "exponential"
    retry_delay: float = 10.0
    jitter: bool = False
    weight: int | None = None
    result_ttl: float = 3600.0
    failure_ttl: float = 30 * 86400.0
    max_jobs: int = 1000  # a worker process is recycled after this many jobs
    max_memory: int | None = None  # bytes of RSS above which a worker is recycled after its job
    shutdown_timeout: float = 25.0
    crash_limit: int = 3  # crashes of its worker after which a job is dead
    concurrency: int = 1  # jobs one worker process runs at once (threads, or tasks of one event loop)
    prefetch: int = 1  # concurrency 1: jobs a worker keeps reserved behind the one it runs (reservation.py)
    engine: str = "jobctl"  # "rq": served by real RQ workers (rq_engine.py)
    rq_worker_class: str = "Worker"
    serializer: str = "json"  # of an rq-engine queue's payloads; pickle is RQ's default
    rate_limit: Rate | None = None  # starts from this queue, across every host
    max_size: int | None = None  # queued jobs beyond which enqueue is refused

    @property
    def min_workers(self) -> int:
        return self.worker_count.minimum if isinstance(self.worker_count, WorkerRange) else self.worker_count

    @property
    def max_workers(self) -> int:
        return self.worker_count.maximum if isinstance(self.worker_count, WorkerRange) else self.worker_count

    @property
    def trusts_pickle(self) -> bool:
        """Pickled payloads of this queue may be unpickled: the operator chose RQ's pickle here,
        so whoever writes this Redis can run code in jobctl's processes."""
        return self.engine == "rq" and self.serializer == "pickle"

    def retry_delay_for(self, retry_number: int) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        return backoff_delay(self.backoff, self.retry_delay, retry_number, self.jitter)


# key -> (parser, what the parser expects); parsers raise ValueError on bad values
def _count(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError
        if maximum is not None and value > maximum:
            raise ValueError
        return value

    return parse


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def _size(value: Any) -> int:
    """Bytes from 500MB, 1.5GB, 800K or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        number = value.strip().rstrip("bBiI")  # 512MB, 512MiB and 512M mean the same here
        digits = number.rstrip("kKmMgG")
        unit = number[len(digits) :].lower()
        try:
            amount = float(digits)
        except ValueError:
            raise ValueError from None
        if amount > 0 and math.isfinite(amount) and unit in _SIZE_UNITS:
            return int(amount * _SIZE_UNITS[unit])
    raise ValueError


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError
        return value

    return parse


_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")
WORKER_COUNT_EXPECTED = (
    f"a whole number from 0 to {MAX_WORKER_COUNT}, or a range like 2..10 with 1 <= min <= max <= {MAX_WORKER_COUNT} "
    "(for more jobs in flight per process, set `concurrency`)"
)


def _worker_count(value: Any) -> int | WorkerRange:
    """A fixed count (0 to 64: 0 serves the queue on other hosts only) or a range `min..max`."""
    if isinstance(value, str) and (match := _RANGE.match(value)):
        minimum, maximum = int(match[1]), int(match[2])
        if not 1 <= minimum <= maximum <= MAX_WORKER_COUNT:
            raise ValueError
        return WorkerRange(minimum, maximum)
    return _count(0, MAX_WORKER_COUNT)(value)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError
    return seconds


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


_QUEUE_KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "worker_count": (_worker_count, WORKER_COUNT_EXPECTED),
    # 0 is refused: a threshold of 0 would add workers with nothing waiting, or retire busy ones
    "scale_up_latency": (_positive_duration, "a duration above 0 like 500ms, 5s, 1m"),
    "scale_up_backlog": (_count(1), "a whole number >= 1 (queued jobs per worker)"),
    "scale_down_idle": (_positive_duration, "a duration above 0 like 10s, 1m, 5m"),
    "max_retries": (_count(0), "a whole number >= 0"),
    # 0 is refused rather than read as "no limit": a job that never ends holds its worker forever
    "timeout": (_positive_duration, "a duration above 0 like 1500ms, 30s, 5m, 2h"),
    "backoff": (parse_backoff, BACKOFF_EXPECTED),
    "retry_delay": (parse_duration, "a duration like 500ms, 10s, 5m"),
    "jitter": (_flag, "true or false"),
    "weight": (_count(1), "a whole number >= 1"),
    "result_ttl": (parse_duration, "a duration like 1h, 1d"),
    "failure_ttl": (parse_duration, "a duration like 7d, 30d"),
    "max_jobs": (_count(1), "a whole number >= 1"),
    "max_memory": (_size, "a size like 512MB or 1GB"),
    "shutdown_timeout": (parse_duration, "a duration like 25s"),
    "crash_limit": (_count(1), "a whole number >= 1"),
    "concurrency": (_count(1), "a whole number >= 1"),
    "prefetch": (_count(0, MAX_PREFETCH), f"a whole number from 0 to {MAX_PREFETCH}"),
    "engine": (_one_of(ENGINES), "jobctl or rq"),
    "rq_worker_class": (_one_of(RQ_WORKER_CLASSES), "Worker or SimpleWorker"),
    "serializer": (_one_of(SERIALIZERS), "pickle or json"),
    "rate_limit": (parse_rate, "a rate like 10/s, 600/m or 1000/h"),
    "max_size": (_count(1), "a whole number >= 1"),
}
_RQ_ENGINE_KEYS = ("rq_worker_class", "serializer")  # meaningless for the jobctl engine

DURATION_SETTINGS = frozenset(
    key for key, (parser, _) in _QUEUE_KEYS.items() if parser in (parse_duration, _positive_duration, parse_backoff)
)


@dataclass(frozen=True)
class BreakerConfig:
    """A circuit breaker of queue.yml's `breakers:` (config/limits.py says how it works)."""

    name: str
    failures: int = 5  # failures within `window` that open it
    window: float = 60.0  # seconds
    cooldown: float = 30.0  # seconds it stays open before one trial job may run
    on: tuple[str, ...] = ()  # exception class names that count (along the MRO); none: every exception

    def counts(self, exc: BaseException) -> bool:
        """Whether `exc` is a failure this breaker counts: one of `on` (by class name along its
        MRO), or any exception without `on`; never a breaker refusing (BreakerOpen) or an
        operator stopping the job (JobStopped)."""
        if isinstance(exc, (BreakerOpen, JobStopped)):
            return False
        return not self.on or any(cls.__name__ in self.on for cls in type(exc).__mro__)


def _exception_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n.isidentifier() for n in value):
        raise ValueError
    return tuple(value)


_BREAKER_KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "failures": (_count(1), "a whole number >= 1"),
    "window": (_positive_duration, "a duration above 0 like 30s, 1m"),
    "cooldown": (_positive_duration, "a duration above 0 like 10s, 30s, 5m"),
    "on": (_exception_names, "a list of exception class names like [ConnectionError, TimeoutError]"),
}


@dataclass(frozen=True)
class QueuesConfig:
    path: str
    queues: dict[str, QueueConfig] = field(default_factory=dict)  # in priority order
    breakers: dict[str, BreakerConfig] = field(default_factory=dict)  # queue.yml's `breakers:`

    def get(self, name: str, where: str = "--queue") -> QueueConfig:
        try:
            return self.queues[name]
        except KeyError:
            raise ConfigError(
                f"{where}: queue {name!r} is not configured in {self.path} "
                f"(configured: {', '.join(self.queues)}); a job on a queue no worker serves would wait forever"
            ) from None

    @property
    def pickle_queues(self) -> frozenset[str]:
        """The queues whose pickled payloads jobctl may unpickle to show them."""
        return frozenset(name for name, queue in self.queues.items() if queue.trusts_pickle)

    def select(self, names: list[str] | None) -> list[QueueConfig]:
        return [self.get(n) for n in names] if names else list(self.queues.values())


CONFIG_MISSING = "run `jobctl init`, or pass --config / JOBCTL_CONFIG"
RECURRING_MISSING = "run `jobctl init`, or pass --recurring / JOBCTL_RECURRING"


def _check_keys(path: str | Path, entry: str, settings: dict[Any, Any], known: Collection[str]) -> None:
    for key in settings:
        if key not in known:
            # of the close matches, the one sharing the longest start: typos seldom hit the first letters
            close = sorted(
                difflib.get_close_matches(str(key), list(known), n=3),
                key=lambda k: -len(os.path.commonprefix([k, str(key)])),  # noqa: RUF071 - key names, not paths
            )
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
            raise ConfigError(f"{path}: {entry}: unknown key {key!r}{hint}")


def _parse_queue_settings(
    path: str | Path, entry: str, settings: Any, known: dict[str, tuple[Callable[[Any], Any], str]] = _QUEUE_KEYS
) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: {entry}: expected a mapping of settings, got {type(settings).__name__}")
    _check_keys(path, entry, settings, known)
    parsed = {}
    for key, value in settings.items():
        parser, expected = known[key]
        try:
            parsed[key] = parser(value)
        except ValueError:
            raise ConfigError(f"{path}: {entry}: key {key!r}: expected {expected}, got {value!r}") from None
    return parsed


def _check_name(path: str | Path, what: str, name: Any) -> None:
    # YAML reads bare on/off/yes/no/true and numbers as non-strings
    if not isinstance(name, str):
        raise ConfigError(f'{path}: {what} {name!r}: expected a string (quote it, e.g. "{str(name).lower()}":)')


def _engine_settings(path: str | Path, name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Check the engine-specific keys against the queue's engine; an rq-engine queue's payloads
    are pickled unless `serializer: json` (RQ's own default)."""
    if settings.get("engine", "jobctl") == "rq":
        return {"serializer": "pickle", **settings}
    for key in _RQ_ENGINE_KEYS:
        if key in settings:
            raise ConfigError(f"{path}: queue {name!r}: key {key!r} applies only to 'engine: rq' queues")
    return settings


def is_queue_name(name: str) -> bool:
    """Letters, digits, '_', '-' and '.': a queue name fits in its keys and on a command line."""
    return name.replace("_", "").replace("-", "").replace(".", "").isalnum()


def load_queues(path: str | Path) -> QueuesConfig:
    """Load queue.yml: queue name -> settings, highest priority first, plus optional `defaults:`."""
    document = yamlfile.read(path, CONFIG_MISSING)
    if not isinstance(document, dict) or not document:
        raise ConfigError(f"{path}: expected a mapping of queue name to settings, e.g. 'default: {{worker_count: 2}}'")
    defaults = _parse_queue_settings(path, "defaults", document.get("defaults"))
    queues: dict[str, QueueConfig] = {}
    for name, settings in document.items():
        if name in RESERVED_KEYS:
            continue
        _check_name(path, "queue name", name)
        if not is_queue_name(name):
            raise ConfigError(f"{path}: queue name {name!r}: expected letters, digits, '_', '-' or '.'")
        parsed = _parse_queue_settings(path, f"queue {name!r}", settings)
        queues[name] = QueueConfig(
            name=name, priority=len(queues), **_engine_settings(path, name, {**defaults, **parsed})
        )
    if not queues:
        raise ConfigError(f"{path}: no queues configured")
    return QueuesConfig(str(path), queues, _load_breakers(path, document.get("breakers")))


RESERVED_KEYS = ("defaults", "breakers")  # queue.yml's top-level keys that are not queues


def _load_breakers(path: str | Path, document: Any) -> dict[str, BreakerConfig]:
    """queue.yml's `breakers:`: name -> {failures, window, cooldown, on}."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: breakers: expected a mapping of breaker name to settings, got {type(document).__name__}"
        )
    breakers = {}
    for name, settings in document.items():
        _check_name(path, "breaker name", name)
        if not is_queue_name(name):
            raise ConfigError(f"{path}: breaker name {name!r}: expected letters, digits, '_', '-' or '.'")
        if isinstance(settings, dict):
            # YAML 1.1 (PyYAML) reads a bare `on:` key as true
            settings = {"on" if key is True else key: value for key, value in settings.items()}
        parsed = _parse_queue_settings(path, f"breaker {name!r}", settings, _BREAKER_KEYS)
        breakers[name] = BreakerConfig(name, **parsed)
    return breakers


# --- recurring.yml ---------------------------------------------------------------------------

_RECURRING_KEYS = {"job", "args", "kwargs", "queue", "schedule", "timezone", "enabled", "catch_up"}


@dataclass(frozen=True)
class RecurringEntry:
    name: str
    job: str
    schedule: Schedule
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    enabled: bool = True
    catch_up: str = "latest"


def load_recurring(path: str | Path, queues: QueuesConfig, required: bool = False) -> list[RecurringEntry]:
    """The recurring entries: recurring.yml's and those of jobs declared with @job(cron=...).
    Job names must be registered, queues configured and arguments fit the job's signature.
    `required`: a missing recurring.yml is an error, unless jobs declare entries of their own."""
    declared = {
        spec.name: RecurringEntry(
            spec.name,
            spec.name,
            spec.schedule,
            queues.get(spec.queue, where=f"job {spec.name!r} (cron=)").name,
            timezone=spec.schedule.timezone,
            catch_up=spec.catch_up,
        )
        for spec in catalogue.all_jobs()
        if spec.schedule is not None
    }
    entries = _load_recurring_file(path, queues, required and not declared)
    for entry in entries:
        if entry.name in declared:
            raise ConfigError(
                f"{path}: entry {entry.name!r}: the job {entry.name!r} declares a schedule of its own "
                "(@job(cron=...)) under the same name; rename the entry"
            )
    return entries + list(declared.values())


def _load_recurring_file(path: str | Path, queues: QueuesConfig, required: bool) -> list[RecurringEntry]:
    document = yamlfile.read(path, RECURRING_MISSING if required else None)
    if document is None:
        return []
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of entry name to a recurring job")
    entries = []
    for name, spec in document.items():
        _check_name(path, "entry", name)
        if not keys.JOB_ID.fullmatch(name):  # the entry names its runs' ids (keys.recurring_job_id)
            raise ConfigError(
                f"{path}: entry {name[:60]!r}: expected a name of 1 to 128 letters, digits, '_', '-' or '.'"
            )
        where = f"{path}: entry {name!r}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping with at least 'job' and 'schedule'")
        _check_keys(path, f"entry {name!r}", spec, dict.fromkeys(sorted(_RECURRING_KEYS)))
        for key in ("job", "schedule"):
            if key not in spec:
                raise ConfigError(f"{where}: missing key {key!r}")
        job_name = spec["job"]
        if not catalogue.is_registered(str(job_name)):
            known = ", ".join(s.name for s in catalogue.all_jobs())
            raise ConfigError(f"{where}: key 'job': unknown job {job_name!r} (registered jobs: {known})")
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not isinstance(args, list):
            raise ConfigError(f"{where}: key 'args': expected a list, got {args!r}")
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where}: key 'kwargs': expected a mapping, got {kwargs!r}")
        queue = spec.get("queue") or catalogue.get(job_name).queue
        if queue not in queues.queues:
            raise ConfigError(f"{where}: key 'queue': queue {queue!r} is not configured in {queues.path}")
        timezone = spec.get("timezone", "UTC")
        try:
            schedule = parse_schedule(str(spec["schedule"]), str(timezone))
        except ValueError as exc:
            key = "timezone" if str(exc).startswith("unknown timezone") else "schedule"
            raise ConfigError(f"{where}: key {key!r}: {exc}") from None
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: key 'enabled': expected true or false, got {enabled!r}")
        catch_up = spec.get("catch_up", "latest")
        if catch_up not in CATCH_UP:
            raise ConfigError(f"{where}: key 'catch_up': expected latest or none, got {catch_up!r}")
        try:
            check(catalogue.get(job_name), args, kwargs)
        except ArgumentMismatch as exc:
            raise ConfigError(f"{where}: keys 'args'/'kwargs': {exc}") from None
        entries.append(
            RecurringEntry(name, job_name, schedule, queue, tuple(args), kwargs, str(timezone), enabled, catch_up)
        )
    return entries


def with_overrides(config: QueuesConfig, **overrides: Any) -> QueuesConfig:
    """The same queues with some settings replaced on every queue (used by `jobctl demo`)."""
    return QueuesConfig(config.path, {n: replace(q, **overrides) for n, q in config.queues.items()})
