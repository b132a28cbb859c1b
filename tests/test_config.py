from pathlib import Path

import pytest

from jobctl.config.queues import QueueConfig, load_queues, load_recurring
from jobctl.errors import ConfigError
from jobctl.jobs import catalogue

SEED = """\
default:        {worker_count: 5,  max_retries: 3}
analytics:      {worker_count: 10, max_retries: 5}
recommendations: {worker_count: 3, max_retries: 3}
notifications:  {worker_count: 2,  max_retries: 2}
"""


def write(tmp_path: Path, text: str, name: str = "queue.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_seed_format_loads_unchanged(tmp_path):
    config = load_queues(write(tmp_path, SEED))
    assert list(config.queues) == ["default", "analytics", "recommendations", "notifications"]
    analytics = config.queues["analytics"]
    assert (analytics.worker_count, analytics.max_retries, analytics.priority) == (10, 5, 1)
    assert analytics.timeout == QueueConfig.timeout  # defaults fill the rest


def test_defaults_block_and_optional_keys(tmp_path):
    config = load_queues(
        write(
            tmp_path,
            """\
defaults: {timeout: 5m, retry_delay: 2s, backoff: linear, failure_ttl: 7d}
fast: {worker_count: 1, timeout: 500ms, weight: 3, result_ttl: 1h, jitter: true}
listed: {backoff: [10s, 1m, 10m], max_jobs: 50, shutdown_timeout: 30s, crash_limit: 5}
""",
        )
    )
    fast, listed = config.queues["fast"], config.queues["listed"]
    assert (fast.timeout, fast.retry_delay, fast.backoff, fast.weight, fast.result_ttl) == (0.5, 2, "linear", 3, 3600)
    assert fast.failure_ttl == 7 * 86400 and fast.jitter
    assert listed.backoff == (10, 60, 600) and listed.timeout == 300
    assert (listed.max_jobs, listed.shutdown_timeout, listed.crash_limit) == (50, 30, 5)


@pytest.mark.parametrize(
    "backoff, delays",
    [
        ("exponential", [10, 20, 40, 80]),
        ("linear", [10, 20, 30, 40]),
        ("fixed", [10, 10, 10, 10]),
        ((5, 60), [5, 60, 60, 60]),
    ],
)
def test_retry_delays(backoff, delays):
    queue = QueueConfig("q", backoff=backoff, retry_delay=10)
    assert [queue.retry_delay_for(n) for n in (1, 2, 3, 4)] == delays


def test_jitter_adds_up_to_a_quarter():
    queue = QueueConfig("q", backoff="fixed", retry_delay=10, jitter=True)
    delays = {queue.retry_delay_for(1) for _ in range(50)}
    assert all(10 <= d <= 12.5 for d in delays) and len(delays) > 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("default: {worker_count: 5\n  max_retries: 3", "queue.yml: malformed YAML at line 2"),
        (
            "default: {worker_count: -1}",
            "queue.yml: queue 'default': key 'worker_count': expected a whole number from 0 to 64, or a range like 2..10 with 1 <= min <= max <= 64 (for more jobs in flight per process, set `concurrency`), got -1",
        ),
        (
            "default: {worker_count: two}",
            "queue.yml: queue 'default': key 'worker_count': expected a whole number from 0 to 64, or a range like 2..10 with 1 <= min <= max <= 64 (for more jobs in flight per process, set `concurrency`), got 'two'",
        ),
        ("default: {worker_count: 1.5}", "key 'worker_count': expected a whole number from 0 to 64"),
        (
            "default: {prefetch: 101}",
            "queue.yml: queue 'default': key 'prefetch': expected a whole number from 0 to 100, got 101",
        ),
        ("default: {prefetch: -1}", "key 'prefetch': expected a whole number from 0 to 100, got -1"),
        ("default: {prefetch: true}", "key 'prefetch': expected a whole number from 0 to 100, got True"),
        ("default: {workers: 2}", "queue.yml: queue 'default': unknown key 'workers' (did you mean 'worker_count'?)"),
        (
            "default: {timeout: soon}",
            "queue.yml: queue 'default': key 'timeout': expected a duration above 0 like 1500ms, 30s, 5m, 2h, got 'soon'",
        ),
        ("default: {backoff: random}", "key 'backoff': expected exponential, linear, fixed or a list of durations"),
        ("defaults: {max_retries: -2}\ndefault: {}", "queue.yml: defaults: key 'max_retries'"),
        ("default: 5", "queue.yml: queue 'default': expected a mapping of settings, got int"),
        ("- default", "queue.yml: expected a mapping of queue name to settings"),
        ("on: {worker_count: 1}", 'queue.yml: queue name True: expected a string (quote it, e.g. "true":)'),
        ("", "queue.yml: expected a mapping of queue name to settings"),
    ],
)
def test_queue_errors_name_file_entry_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_queues(write(tmp_path, text))
    assert message in str(error.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in str(error.value)


def test_worker_count_range_and_scaling_thresholds(tmp_path):
    config = load_queues(
        write(
            tmp_path,
            """\
defaults: {worker_count: 1..4, scale_down_idle: 2m}
elastic: {scale_up_latency: 1500ms, scale_up_backlog: 5}
fixed: {worker_count: 3}
wide: {worker_count: " 2 .. 64 "}
""",
        )
    )
    elastic, fixed, wide = config.queues["elastic"], config.queues["fixed"], config.queues["wide"]
    assert (elastic.min_workers, elastic.max_workers, str(elastic.worker_count)) == (1, 4, "1..4")
    assert (elastic.scale_up_latency, elastic.scale_up_backlog, elastic.scale_down_idle) == (1.5, 5, 120)
    assert (fixed.worker_count, fixed.min_workers, fixed.max_workers) == (3, 3, 3)  # a queue's own key wins
    assert (wide.min_workers, wide.max_workers) == (2, 64)
    # the documented defaults
    assert (fixed.scale_up_latency, fixed.scale_up_backlog, fixed.scale_down_idle) == (5, 20, 120)
    assert (QueueConfig.scale_up_latency, QueueConfig.scale_up_backlog, QueueConfig.scale_down_idle) == (5, 20, 60)


RANGE_EXPECTED = (
    "expected a whole number from 0 to 64, or a range like 2..10 with 1 <= min <= max <= 64 "
    "(for more jobs in flight per process, set `concurrency`)"
)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "default: {worker_count: 5..2}",
            f"queue.yml: queue 'default': key 'worker_count': {RANGE_EXPECTED}, got '5..2'",
        ),
        (
            "default: {worker_count: 0..3}",
            f"queue.yml: queue 'default': key 'worker_count': {RANGE_EXPECTED}, got '0..3'",
        ),
        ("default: {worker_count: -2..3}", f"key 'worker_count': {RANGE_EXPECTED}, got '-2..3'"),
        ("default: {worker_count: 1..65}", f"key 'worker_count': {RANGE_EXPECTED}, got '1..65'"),
        ("default: {worker_count: 1.5..3}", f"key 'worker_count': {RANGE_EXPECTED}, got '1.5..3'"),
        ("default: {worker_count: 1...3}", f"key 'worker_count': {RANGE_EXPECTED}, got '1...3'"),
        ("default: {worker_count: 2-10}", f"key 'worker_count': {RANGE_EXPECTED}, got '2-10'"),
        ("defaults: {worker_count: 3..1}\ndefault: {}", "queue.yml: defaults: key 'worker_count'"),
        (
            "default: {scale_up_latency: 0s}",
            "queue.yml: queue 'default': key 'scale_up_latency': expected a duration above 0 like 500ms, 5s, 1m, got '0s'",
        ),
        ("default: {scale_up_latency: -5}", "queue.yml: queue 'default': key 'scale_up_latency': expected a duration"),
        (
            "default: {scale_up_backlog: 0}",
            "queue.yml: queue 'default': key 'scale_up_backlog': expected a whole number >= 1 (queued jobs per worker), got 0",
        ),
        ("default: {scale_up_backlog: 2.5}", "queue 'default': key 'scale_up_backlog': expected a whole number >= 1"),
        (
            "defaults: {scale_down_idle: 0}\ndefault: {}",
            "queue.yml: defaults: key 'scale_down_idle': expected a duration above 0",
        ),
        ("default: {scale_down_idle: never}", "queue 'default': key 'scale_down_idle': expected a duration above 0"),
        (
            "default: {scale_up_latncy: 5s}",
            "queue 'default': unknown key 'scale_up_latncy' (did you mean 'scale_up_latency'?)",
        ),
    ],
)
def test_bad_ranges_and_thresholds_name_file_entry_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_queues(write(tmp_path, text))
    assert message in str(error.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_queues(tmp_path / "nowhere.yml")
    assert (
        str(error.value) == f"nowhere.yml not found in {tmp_path} (run `jobctl init`, or pass --config / JOBCTL_CONFIG)"
    )


def test_recurring_entries(tmp_path):
    catalogue.load()
    queues = load_queues(write(tmp_path, SEED))
    entries = load_recurring(
        write(
            tmp_path,
            """\
sync_all_channels:
  job: channel_sync
  args: ["UC_x5XG1OV2P6uZZ5FSM9Ttw"]
  queue: default
  schedule: "*/15 * * * *"
  timezone: UTC
digest:
  job: notifications
  kwargs: {channel_id: "UC1"}
  schedule: every 2 hours
  catch_up: none
  enabled: false
""",
            "recurring.yml",
        ),
        queues,
    )
    sync, digest = entries
    assert (sync.job, sync.args, sync.queue, sync.schedule.text) == (
        "channel_sync",
        ("UC_x5XG1OV2P6uZZ5FSM9Ttw",),
        "default",
        "*/15 * * * *",
    )
    assert (digest.queue, digest.kwargs, digest.catch_up, digest.enabled) == (
        "notifications",
        {"channel_id": "UC1"},
        "none",
        False,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: {job: channel_sync, schedule: '61 * * * *'}", "recurring.yml: entry 'x': key 'schedule':"),
        ("x: {job: nope, schedule: every 5 minutes}", "recurring.yml: entry 'x': key 'job': unknown job 'nope'"),
        ("x: {job: channel_sync}", "recurring.yml: entry 'x': missing key 'schedule'"),
        (
            "x: {job: channel_sync, schedule: every 5 minutes, timezone: Mars/Base}",
            "recurring.yml: entry 'x': key 'timezone': unknown timezone 'Mars/Base'",
        ),
        (
            "x: {job: channel_sync, schedule: every 5 minutes, queue: nowhere}",
            "recurring.yml: entry 'x': key 'queue': queue 'nowhere' is not configured",
        ),
        (
            "x: {job: channel_sync, schedule: every 5 minutes, args: 5}",
            "recurring.yml: entry 'x': key 'args': expected a list",
        ),
        (
            "x: {job: channel_sync, schedule: every 5 minutes, every: 1}",
            "recurring.yml: entry 'x': unknown key 'every'",
        ),
        ("2024: {job: channel_sync, schedule: every 5 minutes}", "recurring.yml: entry 2024: expected a string"),
    ],
)
def test_recurring_errors(tmp_path, text, message):
    catalogue.load()
    queues = load_queues(write(tmp_path, SEED))
    with pytest.raises(ConfigError) as error:
        load_recurring(write(tmp_path, text, "recurring.yml"), queues)
    assert message in str(error.value).replace(str(tmp_path) + "/", "")


def test_missing_recurring_file_is_empty_unless_named(tmp_path):
    queues = load_queues(write(tmp_path, SEED))
    assert load_recurring(tmp_path / "recurring.yml", queues) == []
    with pytest.raises(ConfigError, match=r"recurring.yml not found in .* \(run `jobctl init`, or pass --recurring"):
        load_recurring(tmp_path / "recurring.yml", queues, required=True)


def test_settings_take_the_values_given_over_the_environment_and_say_where_each_came_from():
    from jobctl.config.settings import Settings

    environ = {"REDIS_URL": "redis://env:6379/0", "JOBCTL_JOBS": "myapp.jobs", "JOBCTL_LEASE_TTL": "1"}
    settings = Settings.build(environ, redis_url="redis://flag:6379/0", sources={"redis_url": "flag --redis-url"})
    assert (settings.redis_url, settings.job_modules, settings.lease_ttl) == ("redis://flag:6379/0", "myapp.jobs", 2)
    assert settings.source("redis_url") == "flag --redis-url" and settings.source("job_modules") == "env JOBCTL_JOBS"
    assert Settings.build({}).lease_ttl == 20 and Settings.build({}).source("job_modules") == "default"
    with pytest.raises(ConfigError, match="JOBCTL_LEASE_TTL: expected whole seconds"):
        Settings.build({"JOBCTL_LEASE_TTL": "soon"})


def test_a_client_builds_its_settings_as_the_cli_does(monkeypatch, tmp_path):
    from jobctl.api.client import Client

    monkeypatch.setenv("REDIS_URL", "redis://env-host:6379/0")
    monkeypatch.setenv("JOBCTL_LEASE_TTL", "7")
    monkeypatch.setenv("JOBCTL_CONFIG", str(write(tmp_path, SEED)))
    client = Client()
    assert (client.url, client.settings.lease_ttl) == ("redis://env-host:6379/0", 7)
    assert list(client.config.queues) == ["default", "analytics", "recommendations", "notifications"]
    assert Client("redis://given:6379/0").url == "redis://given:6379/0"


# --- breakers: ------------------------------------------------------------------------------------


def test_breakers_are_read_with_their_defaults_and_are_no_queue(tmp_path):
    config = load_queues(
        write(
            tmp_path,
            "default: {}\nbreakers:\n  store: {failures: 3, window: 2m, cooldown: 10s, on: [ConnectionError]}\n  any: {}\n",
        )
    )
    assert list(config.queues) == ["default"]
    store, default = config.breakers["store"], config.breakers["any"]
    assert (store.failures, store.window, store.cooldown, store.on) == (3, 120.0, 10.0, ("ConnectionError",))
    assert (default.failures, default.window, default.cooldown, default.on) == (5, 60.0, 30.0, ())
    # `on` matches along the exception's MRO; without `on`, every exception counts
    assert store.counts(ConnectionRefusedError()) and not store.counts(ValueError())
    assert default.counts(ValueError())


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "breakers: {store: {failures: 0}}",
            "queue.yml: breaker 'store': key 'failures': expected a whole number >= 1, got 0",
        ),
        (
            "breakers: {store: {failures: -5}}",
            "queue.yml: breaker 'store': key 'failures': expected a whole number >= 1, got -5",
        ),
        ("breakers: {store: {window: soon}}", "queue.yml: breaker 'store': key 'window': expected a duration above 0"),
        (
            "breakers: {store: {cooldown: 0s}}",
            "queue.yml: breaker 'store': key 'cooldown': expected a duration above 0",
        ),
        (
            "breakers: {store: {on: ConnectionError}}",
            "queue.yml: breaker 'store': key 'on': expected a list of exception",
        ),
        ("breakers: {store: {fails: 3}}", "queue.yml: breaker 'store': unknown key 'fails' (did you mean 'failures'?)"),
        ("breakers: {store: 3}", "queue.yml: breaker 'store': expected a mapping of settings, got int"),
        ("breakers: [store]", "queue.yml: breakers: expected a mapping of breaker name to settings, got list"),
        ("breakers: {'a b': {}}", "queue.yml: breaker name 'a b': expected letters, digits"),
    ],
)
def test_breaker_errors_name_file_entry_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_queues(write(tmp_path, "default: {}\n" + text))
    assert message in str(error.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("returned", [float("inf"), float("nan"), "soon"])
def test_a_backoff_callable_returning_no_finite_delay_falls_back_to_the_queues(returned, tmp_path):
    import logging

    from jobctl import job
    from jobctl.middleware.retries import retry_delay

    @job("backoff_nonsense", backoff=lambda attempt, exception: returned)
    def backoff_nonsense() -> None: ...

    queue = load_queues(write(tmp_path, "default: {retry_delay: 3s, backoff: fixed}\n")).queues["default"]
    assert retry_delay("backoff_nonsense", queue, 1, ValueError(), logging.getLogger("test"), "j") == 3.0


def test_prefetch_is_one_unless_set_and_may_be_none(tmp_path):
    config = load_queues(write(tmp_path, "plain: {}\nnone: {prefetch: 0}\nmany: {prefetch: 100}\n"))
    assert [config.queues[name].prefetch for name in ("plain", "none", "many")] == [1, 0, 100]
